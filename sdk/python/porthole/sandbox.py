"""Sandbox: one command sandbox (a microVM) on the gateway.

    with Sandbox(mem_size_mib=1024, env_vars={"FOO": "bar"}) as sb:
        r = sb.run("echo $FOO")
        print(r.exit_code, r.output)

The context manager creates the sandbox on enter and deletes it on exit.
Sandbox.from_id(id) attaches to one that exists; leaving its `with` block
(or close()) only detaches, the sandbox keeps running.
"""

import os
import time
from typing import Any, Callable, Dict, Iterable, List, Optional

from . import _api
from .callbacks import (Callback, CallbackList, CommandResult, FileContext, LifecycleContext,
                        RunContext)
from .client import BOOT_TIMEOUT_S, Client, error_is_missing_route
from .errors import (CommandExecutionUnavailableError, OperationTimeoutError, PortholeError,
                     SandboxNotFoundError, ValidationError)


class Sandbox:
    """A command sandbox. Nothing happens on the gateway until start() (or
    entering the `with` block) creates it."""

    def __init__(self, vm_id: Optional[str] = None, *, vcpu_count: Optional[int] = None,
                 mem_size_mib: Optional[int] = None, disk_size_mib: Optional[int] = None,
                 env_vars: Optional[Dict[str, str]] = None, timeout_minutes: Optional[int] = None,
                 image: Optional[str] = None, callbacks: Optional[Iterable[Callback]] = None,
                 client: Optional[Client] = None, url: Optional[str] = None,
                 token: Optional[str] = None, state_dir: Optional[str] = None,
                 network: Optional[str] = None, allowed_domains: Optional[List[str]] = None,
                 from_snapshot: Optional[str] = None, **kw: Any) -> None:
        if "id" in kw:
            if vm_id is not None:
                raise ValidationError("give vm_id or id, not both")
            vm_id = kw.pop("id")
        sizes = _api.sizing(kw, vcpu_count, mem_size_mib, disk_size_mib)
        if kw:
            raise TypeError("Sandbox() got unexpected options: %s" % ", ".join(sorted(kw)))
        self._wanted_id = _api.check_id(vm_id) if vm_id is not None else None
        self._sizes = sizes
        self._env = _api.check_env(env_vars)
        self._network = _api.check_network(network, allowed_domains)
        self._timeout_minutes = timeout_minutes
        self._image = image
        self._from_snapshot = from_snapshot
        self._callbacks = CallbackList(callbacks)
        self._client = client or Client(url, token, state_dir=state_dir)
        self._id: Optional[str] = None
        self._info: Dict[str, Any] = {}
        self._attached = False
        self._closed = False

    # ---- identity and state ---------------------------------------------

    @classmethod
    def from_id(cls, vm_id: str, *, callbacks: Optional[Iterable[Callback]] = None,
                client: Optional[Client] = None, url: Optional[str] = None,
                token: Optional[str] = None, state_dir: Optional[str] = None) -> "Sandbox":
        """Attaches to an existing sandbox. Leaving `with` only detaches."""
        sb = cls(callbacks=callbacks, client=client, url=url, token=token, state_dir=state_dir)
        sb._id = vm_id
        sb._attached = True
        sb.refresh()
        return sb

    @classmethod
    def list(cls, *, client: Optional[Client] = None) -> List[Dict[str, Any]]:
        """The gateway's sandboxes, as the API describes them."""
        c = client or Client()
        return c.json("GET", "/v1/sandboxes").get("sandboxes", [])

    @property
    def id(self) -> Optional[str]:
        """The sandbox id; None until it is created."""
        return self._id

    @property
    def vm_id(self) -> Optional[str]:
        return self._id

    @property
    def client(self) -> Client:
        return self._client

    @property
    def attached(self) -> bool:
        """True for a sandbox from from_id(): exit detaches, never deletes."""
        return self._attached

    @property
    def info(self) -> Dict[str, Any]:
        """The gateway's current view of the sandbox."""
        return dict(self.refresh())

    @property
    def status(self) -> str:
        """"starting", "ready", "stopping", "error" (and "stopped" on
        gateways that can stop sandboxes); "not_created" before start()."""
        if self._id is None:
            return "not_created"
        return str(self.refresh().get("status"))

    def refresh(self) -> Dict[str, Any]:
        vm_id = self._require_id()
        try:
            self._info = self._client.json("GET", _api.sandbox_path(vm_id))
        except PortholeError as e:
            raise _api.lookup_error(e, vm_id) from None
        return self._info

    def _require_id(self) -> str:
        if self._id is None:
            raise CommandExecutionUnavailableError(
                "(not created)", "the sandbox has not been started",
                "call start() or use the sandbox as a context manager first")
        return self._id

    def add_callback(self, cb: Callback) -> "Sandbox":
        """Adds a callback after those already registered; returns self."""
        self._callbacks.add(cb)
        return self

    @property
    def callbacks(self) -> List[Callback]:
        return list(self._callbacks)

    # ---- lifecycle -------------------------------------------------------

    def create(self) -> "Sandbox":
        """Creates and boots the sandbox; returns once it is ready."""
        if self._id is not None:
            raise ValidationError("sandbox %s exists already" % self._id)
        body = _api.create_body(self._wanted_id, self._sizes["vcpus"], self._sizes["mem_mib"],
                                self._sizes["disk_mib"], self._env, self._timeout_minutes,
                                self._image, self._network,
                                self._from_snapshot)
        try:
            self._info = self._client.json("POST", "/v1/sandboxes", body,
                                           timeout=BOOT_TIMEOUT_S, what="create sandbox")
        except PortholeError as e:
            raise _api.create_error(e, body) from None
        self._id = self._info["id"]
        self._callbacks.observe("on_start", LifecycleContext(self._id, "start",
                                                             self._info.get("status")))
        return self

    def start(self) -> "Sandbox":
        """Creates the sandbox if it does not exist yet; starts it again if it
        was stopped; does nothing when it runs."""
        if self._id is None:
            return self.create()
        status = self.refresh().get("status")
        if status in ("ready", "running", "starting"):
            return self
        try:
            self._info = self._client.json("POST", _api.sandbox_path(self._id, "/start"), {},
                                           timeout=BOOT_TIMEOUT_S, what="start sandbox")
        except PortholeError as e:
            raise _api.feature_error(e, _api.FEATURE_START, self._id) from None
        self._callbacks.observe("on_start", LifecycleContext(self._id, "start",
                                                             self._info.get("status")))
        return self

    def stop(self) -> "Sandbox":
        """Powers the sandbox off and keeps its disk (start() boots it again).
        Needs a gateway with POST /v1/sandboxes/{id}/stop."""
        vm_id = self._require_id()
        try:
            self._info = self._client.json("POST", _api.sandbox_path(vm_id, "/stop"), {},
                                           timeout=BOOT_TIMEOUT_S, what="stop sandbox")
        except PortholeError as e:
            raise _api.feature_error(e, _api.FEATURE_STOP, vm_id) from None
        self._callbacks.observe("on_stop", LifecycleContext(vm_id, "stop",
                                                            self._info.get("status")))
        return self

    def _power(self, call: "_api.PowerCall") -> Dict[str, Any]:
        try:
            answer = self._client.json("POST", call.path, call.body, timeout=BOOT_TIMEOUT_S,
                                       what=call.what)
        except PortholeError as e:
            raise _api.feature_error(e, call.feature, call.vm_id) from None
        if call.op != "snapshot":
            self._info = answer
        self._callbacks.observe(call.hook, call.context(answer))
        return answer

    def pause(self, to_disk: bool = False) -> "Sandbox":
        """Stops its vCPUs: no CPU used, memory and processes kept, commands
        refused until resume(). With to_disk its memory goes to disk and its
        QEMU ends, so it holds no RAM either."""
        self._power(_api.PowerCall(self._require_id(), "pause", to_disk))
        return self

    def resume(self) -> "Sandbox":
        """Runs a paused sandbox again (from disk if it was paused to disk)."""
        self._power(_api.PowerCall(self._require_id(), "resume"))
        return self

    def snapshot(self) -> Dict[str, Any]:
        """Saves its memory and disk as they are now (it runs on after) and
        returns the snapshot ({"snapshot_id", "size_bytes", ...}):
        Sandbox(from_snapshot=id) starts a new sandbox that carries on from
        that instant."""
        return self._power(_api.PowerCall(self._require_id(), "snapshot"))

    def delete(self) -> None:
        """Deletes the sandbox and its disk."""
        vm_id = self._require_id()
        try:
            self._client.json("DELETE", _api.sandbox_path(vm_id), timeout=BOOT_TIMEOUT_S,
                              what="delete sandbox")
        except PortholeError as e:
            raise _api.lookup_error(e, vm_id) from None
        self._callbacks.observe("on_stop", LifecycleContext(vm_id, "delete", "deleted"))

    def close(self) -> None:
        """Releases this client's hold; the sandbox keeps running."""
        self._closed = True
        self._client.close()

    def wait_for_ssh(self, timeout: float = 60.0) -> "Sandbox":
        """Waits until commands can run (the sandbox is ready)."""
        vm_id = self._require_id()
        deadline = time.monotonic() + timeout
        while True:
            info = self.refresh()
            status = info.get("status")
            if status in ("ready", "running"):
                return self
            if status == "error":
                raise CommandExecutionUnavailableError(
                    vm_id, info.get("error") or "the sandbox failed", _api.REMEDIATION)
            if time.monotonic() >= deadline:
                raise OperationTimeoutError("wait_for_ssh", timeout)
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))

    def can_run_commands(self) -> bool:
        """True when the sandbox is ready for run()."""
        try:
            return self._id is not None and self.refresh().get("status") in ("ready", "running")
        except PortholeError:
            return False

    def __enter__(self) -> "Sandbox":
        if not self._attached:
            self.start()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._attached or self._id is None:
            self.close()
            return
        try:
            self.delete()
        except SandboxNotFoundError:
            pass
        finally:
            self.close()

    # ---- commands ----------------------------------------------------------

    def run(self, command: str, shell: str = "login", timeout: float = _api.DEFAULT_RUN_TIMEOUT,
            on_output: Optional[Callable[[str, str], None]] = None) -> CommandResult:
        """Runs one command; returns its CommandResult (non-zero exits
        included). Raises CommandBlockedError when a callback or the
        gateway's policy refuses it, CommandTimeoutError past timeout.
        With on_output, output is handed over as the command prints it:
        on_output("stdout" or "stderr", text); the result has all of it."""
        t = _api.check_run_args(command, shell, timeout)
        vm_id = self._require_id()
        ctx = RunContext(vm_id=vm_id, command=command, shell=shell, timeout=t)
        self._callbacks.veto("on_pre_run", ctx)
        try:
            path = _api.sandbox_path(vm_id, "/exec")
            stream = _api.ExecStream(on_output) if on_output else None
            try:
                if stream:
                    self._client.request("POST", path, _api.exec_body(command, shell, t, True),
                                         timeout=t + _api.RUN_HTTP_MARGIN_S, what="run",
                                         on_line=stream.line)
                else:
                    d = self._client.json("POST", path, _api.exec_body(command, shell, t),
                                          timeout=t + _api.RUN_HTTP_MARGIN_S, what="run")
            except PortholeError as e:
                raise _api.exec_error(e, vm_id, command, t) from None
            result = stream.result(vm_id, command, t) if stream else _api.result_from_json(d)
        except Exception as e:
            ctx.error = e
            self._callbacks.observe("on_run_error", ctx)
            raise
        ctx.result = result
        self._callbacks.observe("on_post_run", ctx)
        return result

    # ---- files -------------------------------------------------------------

    def _transfer(self, direction: str, remote_path: str, local_path: Optional[str], fn):
        vm_id = self._require_id()
        ctx = FileContext(vm_id=vm_id, direction=direction, remote_path=remote_path,
                          local_path=local_path)
        self._callbacks.veto("on_pre_file", ctx)
        try:
            out = fn(ctx)
        except Exception as e:
            ctx.error = e
            self._callbacks.observe("on_file_error", ctx)
            raise
        self._callbacks.observe("on_post_file", ctx)
        return out

    def write_file(self, remote_path: str, data: Any) -> int:
        """Writes bytes (or str, as UTF-8) to an absolute path in the guest;
        returns the byte count."""
        payload = data.encode() if isinstance(data, str) else bytes(data)

        def put(ctx: FileContext) -> int:
            ctx.size = len(payload)
            try:
                self._client.json("PUT", _api.sandbox_path(ctx.vm_id, "/files"), payload,
                                  query={"path": remote_path}, timeout=300, what="push file")
            except PortholeError as e:
                raise _api.lookup_error(e, ctx.vm_id) from None
            return len(payload)
        return self._transfer("push", remote_path, None, put)

    def read_file(self, remote_path: str) -> bytes:
        """The bytes of a file in the guest."""
        def get(ctx: FileContext) -> bytes:
            try:
                body = self._client.request("GET", _api.sandbox_path(ctx.vm_id, "/files"),
                                            query={"path": remote_path}, timeout=300,
                                            what="pull file").body
            except PortholeError as e:
                raise _api.lookup_error(e, ctx.vm_id) from None
            ctx.size = len(body)
            return body
        return self._transfer("pull", remote_path, None, get)

    def push_file(self, local_path: str, remote_path: str) -> int:
        """Copies a host file into the guest; returns the byte count."""
        with open(local_path, "rb") as f:
            payload = f.read()

        def put(ctx: FileContext) -> int:
            ctx.size = len(payload)
            try:
                self._client.json("PUT", _api.sandbox_path(ctx.vm_id, "/files"), payload,
                                  query={"path": remote_path}, timeout=300, what="push file")
            except PortholeError as e:
                raise _api.lookup_error(e, ctx.vm_id) from None
            return len(payload)
        return self._transfer("push", remote_path, os.fspath(local_path), put)

    def pull_file(self, remote_path: str, local_path: str) -> int:
        """Copies a guest file to the host; returns the byte count."""
        def get(ctx: FileContext) -> int:
            try:
                body = self._client.request("GET", _api.sandbox_path(ctx.vm_id, "/files"),
                                            query={"path": remote_path}, timeout=300,
                                            what="pull file").body
            except PortholeError as e:
                raise _api.lookup_error(e, ctx.vm_id) from None
            tmp = "%s.part%d" % (local_path, os.getpid())
            with open(tmp, "wb") as f:
                f.write(body)
            os.replace(tmp, local_path)
            ctx.size = len(body)
            return len(body)
        return self._transfer("pull", remote_path, os.fspath(local_path), get)

    # ---- environment -------------------------------------------------------

    @property
    def env(self) -> Dict[str, str]:
        """The sandbox's environment variables (login shells see them)."""
        vm_id = self._require_id()
        try:
            return dict(self._client.json("GET", _api.sandbox_path(vm_id, "/env"))
                        .get("env_vars") or {})
        except PortholeError as e:
            raise _api.lookup_error(e, vm_id) from None

    @env.setter
    def env(self, env_vars: Dict[str, str]) -> None:
        self.set_env(env_vars, merge=False)

    def set_env(self, env_vars: Dict[str, str], *, merge: bool = True) -> Dict[str, str]:
        """Sets variables (merged into the current ones unless merge=False);
        returns the sandbox's variables afterwards."""
        vm_id = self._require_id()
        new = _api.check_env(env_vars)
        if merge:
            cur = self.env
            cur.update(new)
            new = cur
        try:
            d = self._client.json("PUT", _api.sandbox_path(vm_id, "/env"), {"env_vars": new},
                                  timeout=120, what="set env")
        except PortholeError as e:
            raise _api.lookup_error(e, vm_id) from None
        return dict(d.get("env_vars") or {})

    def unset_env(self, names: Iterable[str]) -> Dict[str, str]:
        cur = self.env
        for n in names:
            cur.pop(n, None)
        return self.set_env(cur, merge=False)

    # ---- ports -------------------------------------------------------------

    def expose_local(self, guest_port: int, host_port: Optional[int] = None,
                     guest_loopback: bool = False) -> int:
        """Makes a guest TCP port reachable on the host's 127.0.0.1; returns
        the host port (a free one unless host_port is given). A service bound
        to the guest's 127.0.0.1 is reached too (guest_loopback is accepted
        for SmolVM's signature; the forward is the same). No guest can reach
        it; it lasts until close_port() or the sandbox's deletion."""
        vm_id = self._require_id()
        body = _api.ports_body(guest_port, host_port, guest_loopback)
        try:
            d = self._client.json("POST", _api.sandbox_path(vm_id, "/ports"), body, timeout=60,
                                  what="expose port")
        except PortholeError as e:
            raise _api.feature_error(e, _api.FEATURE_PORTS, vm_id) from None
        return _api.port_from_json(d)

    def ports(self) -> List[Dict[str, Any]]:
        """The exposed ports: [{"guest_port", "host_port", "host", ...}]."""
        vm_id = self._require_id()
        try:
            d = self._client.json("GET", _api.sandbox_path(vm_id, "/ports"), timeout=60,
                                  what="list ports")
        except PortholeError as e:
            raise _api.feature_error(e, _api.FEATURE_PORTS, vm_id) from None
        return list(d.get("ports") or [])

    def close_port(self, guest_port: int) -> None:
        """Ends the forward of guest_port; its connections close."""
        vm_id = self._require_id()
        try:
            self._client.json("DELETE", _api.port_path(vm_id, guest_port), timeout=60,
                              what="close port")
        except PortholeError as e:
            raise _api.feature_error(e, _api.FEATURE_PORTS, vm_id) from None

    def __repr__(self) -> str:
        return "<Sandbox %s%s>" % (self._id or "(not created)",
                                   " attached" if self._attached else "")


def gateway_has_route(client: Client, method: str, path: str) -> bool:
    """Probe: True unless the gateway answers that it has no such endpoint.
    Callers pass a path with an id that cannot exist, so nothing changes."""
    try:
        client.request(method, path, {} if method in ("POST", "PUT") else None, timeout=10)
        return True
    except PortholeError as e:
        return not error_is_missing_route(e)
