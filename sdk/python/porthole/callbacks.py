"""Command results, run contexts and callbacks, with SmolVM's semantics.

- Callbacks run in registration order.
- on_pre_run may veto: if it raises, the command is aborted, never reaches
  the gateway, and the exception reaches the caller of run(). Later
  on_pre_run hooks are not called; on_run_error is not called either (no
  run happened).
- on_post_run sees ctx.result after a completed command (non-zero exit
  included); on_run_error sees ctx.error when the run failed (a gateway
  policy block, a timeout, a lost connection...), and the original error
  still reaches the caller. An exception in either observer is logged and
  swallowed.

Beyond SmolVM's command hooks: on_start/on_stop/on_snapshot observe a sandbox's
lifecycle, and on_pre_file (veto), on_post_file and on_file_error frame
every file transfer, with the same rules. With AsyncSandbox any hook may be
a coroutine function; it is awaited.
"""

import asyncio
import inspect
import logging
from dataclasses import dataclass
from typing import Any, Iterable, List, Optional

log = logging.getLogger("porthole.callbacks")


@dataclass(frozen=True)
class CommandResult:
    """Result of one command in a guest."""

    exit_code: int
    stdout: str
    stderr: str
    duration_ms: Optional[int] = None
    stdout_truncated: bool = False
    stderr_truncated: bool = False

    @property
    def ok(self) -> bool:
        """True when exit_code == 0."""
        return self.exit_code == 0

    @property
    def output(self) -> str:
        """stdout with surrounding whitespace stripped."""
        return self.stdout.strip()


@dataclass
class RunContext:
    """What every run hook receives: one command in flight."""

    vm_id: str
    command: str
    shell: str
    timeout: int
    result: Optional[CommandResult] = None
    error: Optional[BaseException] = None


@dataclass
class LifecycleContext:
    """on_start: event "start" or "resume"; on_stop: "stop", "pause" or
    "delete"; on_snapshot: "snapshot", with the new snapshot's id."""

    vm_id: str
    event: str
    status: Optional[str] = None
    snapshot_id: Optional[str] = None


@dataclass
class FileContext:
    """One file transfer: direction "push" (host to guest) or "pull"."""

    vm_id: str
    direction: str
    remote_path: str
    local_path: Optional[str] = None
    size: Optional[int] = None
    error: Optional[BaseException] = None


class Callback:
    """Subclass and override the hooks you need; the others do nothing."""

    def on_pre_run(self, ctx: RunContext) -> None:
        """Before the command is sent. Raise (CommandBlockedError) to veto."""

    def on_post_run(self, ctx: RunContext) -> None:
        """After a completed command; ctx.result is set."""

    def on_run_error(self, ctx: RunContext) -> None:
        """After a failed run; ctx.error is set and is re-raised after."""

    def on_start(self, ctx: LifecycleContext) -> None:
        """After the sandbox was created, started or resumed and is ready."""

    def on_stop(self, ctx: LifecycleContext) -> None:
        """After the sandbox was stopped, paused or deleted."""

    def on_snapshot(self, ctx: LifecycleContext) -> None:
        """After a snapshot of the sandbox was taken (ctx.snapshot_id)."""

    def on_pre_file(self, ctx: FileContext) -> None:
        """Before a file transfer. Raise to veto it."""

    def on_post_file(self, ctx: FileContext) -> None:
        """After a completed transfer (ctx.size is set)."""

    def on_file_error(self, ctx: FileContext) -> None:
        """After a failed transfer; ctx.error is set."""


class CallbackList:
    """The ordered hooks of one sandbox."""

    def __init__(self, callbacks: Optional[Iterable[Callback]] = None) -> None:
        self._items: List[Callback] = []
        for cb in callbacks or ():
            self.add(cb)

    def add(self, cb: Callback) -> None:
        if cb is None:
            raise TypeError("callback must not be None")
        self._items.append(cb)

    def __iter__(self):
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    # Sync dispatch.
    def veto(self, hook: str, ctx: Any) -> None:
        for cb in self:
            fn = getattr(cb, hook, None)
            if fn is None:
                continue
            r = fn(ctx)
            if inspect.isawaitable(r):
                _close(r)
                raise TypeError("%s.%s is a coroutine: use AsyncSandbox for async callbacks" %
                                (type(cb).__name__, hook))

    def observe(self, hook: str, ctx: Any) -> None:
        for cb in self:
            fn = getattr(cb, hook, None)
            if fn is None:
                continue
            try:
                r = fn(ctx)
                if inspect.isawaitable(r):
                    _close(r)
                    raise TypeError("%s.%s is a coroutine: use AsyncSandbox for async "
                                    "callbacks" % (type(cb).__name__, hook))
            except Exception:
                log.exception("callback %s.%s failed (ignored)", type(cb).__name__, hook)

    # Async dispatch: coroutine hooks are awaited, plain ones called.
    async def aveto(self, hook: str, ctx: Any) -> None:
        for cb in self:
            fn = getattr(cb, hook, None)
            if fn is None:
                continue
            r = fn(ctx)
            if inspect.isawaitable(r):
                await r

    async def aobserve(self, hook: str, ctx: Any) -> None:
        for cb in self:
            fn = getattr(cb, hook, None)
            if fn is None:
                continue
            try:
                r = fn(ctx)
                if inspect.isawaitable(r):
                    await r
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("callback %s.%s failed (ignored)", type(cb).__name__, hook)


def _close(awaitable: Any) -> None:
    close = getattr(awaitable, "close", None)
    if close:
        close()
