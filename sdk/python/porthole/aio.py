"""AsyncSandbox: the Sandbox API on asyncio.

    async with AsyncSandbox() as sb:
        r = await sb.run("uname -r")

Callbacks are the same Callback classes; a hook that is a coroutine
function is awaited, a plain one called. Requests go over asyncio streams
(HTTP/1.1, one connection per request), so many sandboxes can be driven
from one event loop without threads.
"""

import asyncio
import json
import os
import ssl
from typing import Any, Dict, Iterable, List, Optional, Tuple
from urllib.parse import urlencode

from . import _api
from .callbacks import (Callback, CallbackList, CommandResult, FileContext, LifecycleContext,
                        RunContext)
from .client import BOOT_TIMEOUT_S, DEFAULT_TIMEOUT_S, Body, Client, Response
from .discover import parse_url
from .errors import (CommandExecutionUnavailableError, GatewayUnavailableError,
                     OperationTimeoutError, PortholeError, SandboxNotFoundError, TransportError,
                     ValidationError)

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 512 * 1024 * 1024


class AsyncClient:
    """The asyncio twin of Client. Discovery (which may start a local
    gateway) runs in a thread once, at the first request."""

    def __init__(self, url: Optional[str] = None, token: Optional[str] = None, *,
                 state_dir: Optional[str] = None, autostart: bool = True,
                 porthole_bin: Optional[str] = None) -> None:
        self._sync = Client(url, token, state_dir=state_dir, autostart=autostart,
                            porthole_bin=porthole_bin)
        self._resolved: Optional[Tuple[str, Optional[str]]] = None

    async def _resolve(self) -> Tuple[str, Optional[str]]:
        if self._resolved is None:
            loop = asyncio.get_running_loop()
            self._resolved = await loop.run_in_executor(
                None, lambda: (self._sync.url, self._sync.token))
        return self._resolved

    async def request(self, method: str, path: str, body: Body = None, *,
                      query: Optional[Dict[str, Any]] = None,
                      timeout: float = DEFAULT_TIMEOUT_S, what: str = "") -> Response:
        url, token = await self._resolve()
        try:
            resp = await asyncio.wait_for(self._roundtrip(url, token, method, path, body, query),
                                          timeout)
        except asyncio.TimeoutError:
            raise OperationTimeoutError(what or "%s %s" % (method, path), timeout,
                                        message="no answer from the gateway within %ss (%s %s)"
                                                % (timeout, method, path)) from None
        except ConnectionRefusedError as e:
            raise GatewayUnavailableError("no gateway answers at %s: %s" % (url, e),
                                          {"url": url}) from None
        except (OSError, ValueError, asyncio.IncompleteReadError) as e:
            raise TransportError("%s %s: connection to the gateway failed: %s" %
                                 (method, path, e), {"url": url}) from None
        if 200 <= resp.status < 300:
            return resp
        raise self._sync._error(resp, what or "%s %s" % (method, path))

    async def json(self, method: str, path: str, body: Body = None, **kw: Any) -> Any:
        return (await self.request(method, path, body, **kw)).json()

    @staticmethod
    async def _roundtrip(url: str, token: Optional[str], method: str, path: str, body: Body,
                         query: Optional[Dict[str, Any]]) -> Response:
        scheme, host, port, prefix = parse_url(url)
        full = prefix + path
        if query:
            full += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        if isinstance(body, (dict, list)):
            data: Optional[bytes] = json.dumps(body).encode()
            ctype: Optional[str] = "application/json"
        else:
            data = body
            ctype = "application/octet-stream" if body is not None else None
        head = ["%s %s HTTP/1.1" % (method, full), "Host: %s:%d" % (host, port),
                "Accept: application/json", "Connection: close"]
        if token:
            head.append("Authorization: Bearer " + token)
        if ctype:
            head.append("Content-Type: " + ctype)
        if data is not None or method in ("POST", "PUT"):
            head.append("Content-Length: %d" % len(data or b""))
        ctx = ssl.create_default_context() if scheme == "https" else None
        reader, writer = await asyncio.open_connection(host, port, ssl=ctx,
                                                       limit=MAX_HEADER_BYTES)
        try:
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
            if data:
                writer.write(data)
            await writer.drain()
            status_line = await reader.readline()
            parts = status_line.decode("latin-1").split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
                raise ValueError("not an HTTP answer: %r" % status_line[:80])
            status = int(parts[1])
            headers: Dict[str, str] = {}
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b"\n", b""):
                    break
                k, _, v = line.decode("latin-1").partition(":")
                headers[k.strip().lower()] = v.strip()
            if headers.get("transfer-encoding", "").lower() == "chunked":
                payload = b""
                while True:
                    size = int((await reader.readline()).split(b";")[0].strip(), 16)
                    if size == 0:
                        await reader.readline()
                        break
                    if len(payload) + size > MAX_BODY_BYTES:
                        raise ValueError("answer larger than %d bytes" % MAX_BODY_BYTES)
                    payload += await reader.readexactly(size)
                    await reader.readline()
            elif "content-length" in headers:
                n = int(headers["content-length"])
                if n > MAX_BODY_BYTES:
                    raise ValueError("answer larger than %d bytes" % MAX_BODY_BYTES)
                payload = await reader.readexactly(n)
            else:
                payload = await reader.read(MAX_BODY_BYTES)
            return Response(status, headers, payload)
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except (OSError, ssl.SSLError):
                pass


class AsyncSandbox:
    """The asyncio form of Sandbox, with the same options and callbacks."""

    def __init__(self, vm_id: Optional[str] = None, *, vcpu_count: Optional[int] = None,
                 mem_size_mib: Optional[int] = None, disk_size_mib: Optional[int] = None,
                 env_vars: Optional[Dict[str, str]] = None, timeout_minutes: Optional[int] = None,
                 image: Optional[str] = None, callbacks: Optional[Iterable[Callback]] = None,
                 client: Optional[AsyncClient] = None, url: Optional[str] = None,
                 token: Optional[str] = None, state_dir: Optional[str] = None,
                 network: Optional[str] = None, allowed_domains: Optional[List[str]] = None,
                 from_snapshot: Optional[str] = None, **kw: Any) -> None:
        if "id" in kw:
            if vm_id is not None:
                raise ValidationError("give vm_id or id, not both")
            vm_id = kw.pop("id")
        sizes = _api.sizing(kw, vcpu_count, mem_size_mib, disk_size_mib)
        if kw:
            raise TypeError("AsyncSandbox() got unexpected options: %s" % ", ".join(sorted(kw)))
        self._wanted_id = _api.check_id(vm_id) if vm_id is not None else None
        self._sizes = sizes
        self._env = _api.check_env(env_vars)
        self._network = _api.check_network(network, allowed_domains)
        self._timeout_minutes = timeout_minutes
        self._image = image
        self._from_snapshot = from_snapshot
        self._callbacks = CallbackList(callbacks)
        self._client = client or AsyncClient(url, token, state_dir=state_dir)
        self._id: Optional[str] = None
        self._info: Dict[str, Any] = {}
        self._attached = False

    @classmethod
    async def from_id(cls, vm_id: str, *, callbacks: Optional[Iterable[Callback]] = None,
                      client: Optional[AsyncClient] = None, url: Optional[str] = None,
                      token: Optional[str] = None,
                      state_dir: Optional[str] = None) -> "AsyncSandbox":
        sb = cls(callbacks=callbacks, client=client, url=url, token=token, state_dir=state_dir)
        sb._id = vm_id
        sb._attached = True
        await sb.refresh()
        return sb

    @property
    def id(self) -> Optional[str]:
        return self._id

    vm_id = id

    @property
    def attached(self) -> bool:
        return self._attached

    @property
    def info(self) -> Dict[str, Any]:
        """The last known view of the sandbox (refresh() updates it)."""
        return dict(self._info)

    def add_callback(self, cb: Callback) -> "AsyncSandbox":
        self._callbacks.add(cb)
        return self

    @property
    def callbacks(self) -> List[Callback]:
        return list(self._callbacks)

    def _require_id(self) -> str:
        if self._id is None:
            raise CommandExecutionUnavailableError(
                "(not created)", "the sandbox has not been started",
                "await start() or use the sandbox as an async context manager first")
        return self._id

    async def refresh(self) -> Dict[str, Any]:
        vm_id = self._require_id()
        try:
            self._info = await self._client.json("GET", _api.sandbox_path(vm_id))
        except PortholeError as e:
            raise _api.lookup_error(e, vm_id) from None
        return self._info

    async def status(self) -> str:
        if self._id is None:
            return "not_created"
        return str((await self.refresh()).get("status"))

    async def start(self) -> "AsyncSandbox":
        if self._id is None:
            body = _api.create_body(self._wanted_id, self._sizes["vcpus"],
                                    self._sizes["mem_mib"], self._sizes["disk_mib"], self._env,
                                    self._timeout_minutes, self._image, self._network,
                                    self._from_snapshot)
            try:
                self._info = await self._client.json("POST", "/v1/sandboxes", body,
                                                     timeout=BOOT_TIMEOUT_S,
                                                     what="create sandbox")
            except PortholeError as e:
                raise _api.create_error(e, body) from None
            self._id = self._info["id"]
        else:
            status = (await self.refresh()).get("status")
            if status in ("ready", "running", "starting"):
                return self
            try:
                self._info = await self._client.json(
                    "POST", _api.sandbox_path(self._id, "/start"), {}, timeout=BOOT_TIMEOUT_S,
                    what="start sandbox")
            except PortholeError as e:
                raise _api.feature_error(e, _api.FEATURE_START, self._id) from None
        await self._callbacks.aobserve("on_start", LifecycleContext(
            self._id, "start", self._info.get("status")))
        return self

    async def _power(self, call: "_api.PowerCall") -> Dict[str, Any]:
        try:
            answer = await self._client.json("POST", call.path, call.body,
                                             timeout=BOOT_TIMEOUT_S, what=call.what)
        except PortholeError as e:
            raise _api.feature_error(e, call.feature, call.vm_id) from None
        if call.op != "snapshot":
            self._info = answer
        await self._callbacks.aobserve(call.hook, call.context(answer))
        return answer

    async def pause(self, to_disk: bool = False) -> "AsyncSandbox":
        """As Sandbox.pause."""
        await self._power(_api.PowerCall(self._require_id(), "pause", to_disk))
        return self

    async def resume(self) -> "AsyncSandbox":
        """As Sandbox.resume."""
        await self._power(_api.PowerCall(self._require_id(), "resume"))
        return self

    async def snapshot(self) -> Dict[str, Any]:
        """As Sandbox.snapshot."""
        return await self._power(_api.PowerCall(self._require_id(), "snapshot"))

    async def stop(self) -> "AsyncSandbox":
        vm_id = self._require_id()
        try:
            self._info = await self._client.json("POST", _api.sandbox_path(vm_id, "/stop"), {},
                                                 timeout=BOOT_TIMEOUT_S, what="stop sandbox")
        except PortholeError as e:
            raise _api.feature_error(e, _api.FEATURE_STOP, vm_id) from None
        await self._callbacks.aobserve("on_stop", LifecycleContext(
            vm_id, "stop", self._info.get("status")))
        return self

    async def delete(self) -> None:
        vm_id = self._require_id()
        try:
            await self._client.json("DELETE", _api.sandbox_path(vm_id), timeout=BOOT_TIMEOUT_S,
                                    what="delete sandbox")
        except PortholeError as e:
            raise _api.lookup_error(e, vm_id) from None
        await self._callbacks.aobserve("on_stop", LifecycleContext(vm_id, "delete", "deleted"))

    async def close(self) -> None:
        """Detaches; the sandbox keeps running."""

    async def wait_for_ssh(self, timeout: float = 60.0) -> "AsyncSandbox":
        vm_id = self._require_id()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            info = await self.refresh()
            if info.get("status") in ("ready", "running"):
                return self
            if info.get("status") == "error":
                raise CommandExecutionUnavailableError(
                    vm_id, info.get("error") or "the sandbox failed", _api.REMEDIATION)
            if loop.time() >= deadline:
                raise OperationTimeoutError("wait_for_ssh", timeout)
            await asyncio.sleep(0.5)

    async def __aenter__(self) -> "AsyncSandbox":
        if not self._attached:
            await self.start()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._attached or self._id is None:
            await self.close()
            return
        try:
            await self.delete()
        except SandboxNotFoundError:
            pass

    async def run(self, command: str, shell: str = "login",
                  timeout: float = _api.DEFAULT_RUN_TIMEOUT) -> CommandResult:
        t = _api.check_run_args(command, shell, timeout)
        vm_id = self._require_id()
        ctx = RunContext(vm_id=vm_id, command=command, shell=shell, timeout=t)
        await self._callbacks.aveto("on_pre_run", ctx)
        try:
            try:
                d = await self._client.json("POST", _api.sandbox_path(vm_id, "/exec"),
                                            _api.exec_body(command, shell, t),
                                            timeout=t + _api.RUN_HTTP_MARGIN_S, what="run")
            except PortholeError as e:
                raise _api.exec_error(e, vm_id, command, t) from None
            result = _api.result_from_json(d)
        except Exception as e:
            ctx.error = e
            await self._callbacks.aobserve("on_run_error", ctx)
            raise
        ctx.result = result
        await self._callbacks.aobserve("on_post_run", ctx)
        return result

    async def _transfer(self, direction: str, remote_path: str, local_path: Optional[str], fn):
        vm_id = self._require_id()
        ctx = FileContext(vm_id=vm_id, direction=direction, remote_path=remote_path,
                          local_path=local_path)
        await self._callbacks.aveto("on_pre_file", ctx)
        try:
            out = await fn(ctx)
        except Exception as e:
            ctx.error = e
            await self._callbacks.aobserve("on_file_error", ctx)
            raise
        await self._callbacks.aobserve("on_post_file", ctx)
        return out

    async def write_file(self, remote_path: str, data: Any) -> int:
        payload = data.encode() if isinstance(data, str) else bytes(data)

        async def put(ctx: FileContext) -> int:
            ctx.size = len(payload)
            try:
                await self._client.json("PUT", _api.sandbox_path(ctx.vm_id, "/files"), payload,
                                        query={"path": remote_path}, timeout=300,
                                        what="push file")
            except PortholeError as e:
                raise _api.lookup_error(e, ctx.vm_id) from None
            return len(payload)
        return await self._transfer("push", remote_path, None, put)

    async def read_file(self, remote_path: str) -> bytes:
        async def get(ctx: FileContext) -> bytes:
            try:
                resp = await self._client.request("GET", _api.sandbox_path(ctx.vm_id, "/files"),
                                                  query={"path": remote_path}, timeout=300,
                                                  what="pull file")
            except PortholeError as e:
                raise _api.lookup_error(e, ctx.vm_id) from None
            ctx.size = len(resp.body)
            return resp.body
        return await self._transfer("pull", remote_path, None, get)

    async def push_file(self, local_path: str, remote_path: str) -> int:
        with open(local_path, "rb") as f:
            data = f.read()
        return await self.write_file(remote_path, data)

    async def pull_file(self, remote_path: str, local_path: str) -> int:
        data = await self.read_file(remote_path)
        tmp = "%s.part%d" % (local_path, os.getpid())
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, local_path)
        return len(data)

    async def get_env(self) -> Dict[str, str]:
        vm_id = self._require_id()
        try:
            d = await self._client.json("GET", _api.sandbox_path(vm_id, "/env"))
        except PortholeError as e:
            raise _api.lookup_error(e, vm_id) from None
        return dict(d.get("env_vars") or {})

    async def set_env(self, env_vars: Dict[str, str], *, merge: bool = True) -> Dict[str, str]:
        vm_id = self._require_id()
        new = _api.check_env(env_vars)
        if merge:
            cur = await self.get_env()
            cur.update(new)
            new = cur
        try:
            d = await self._client.json("PUT", _api.sandbox_path(vm_id, "/env"),
                                        {"env_vars": new}, timeout=120, what="set env")
        except PortholeError as e:
            raise _api.lookup_error(e, vm_id) from None
        return dict(d.get("env_vars") or {})

    async def expose_local(self, guest_port: int, host_port: Optional[int] = None,
                           guest_loopback: bool = False) -> int:
        vm_id = self._require_id()
        body = _api.ports_body(guest_port, host_port, guest_loopback)
        try:
            d = await self._client.json("POST", _api.sandbox_path(vm_id, "/ports"), body,
                                        timeout=60, what="expose port")
        except PortholeError as e:
            raise _api.feature_error(e, _api.FEATURE_PORTS, vm_id) from None
        return _api.port_from_json(d)

    async def ports(self) -> List[Dict[str, Any]]:
        vm_id = self._require_id()
        try:
            d = await self._client.json("GET", _api.sandbox_path(vm_id, "/ports"), timeout=60,
                                        what="list ports")
        except PortholeError as e:
            raise _api.feature_error(e, _api.FEATURE_PORTS, vm_id) from None
        return list(d.get("ports") or [])

    async def close_port(self, guest_port: int) -> None:
        vm_id = self._require_id()
        try:
            await self._client.json("DELETE", _api.port_path(vm_id, guest_port), timeout=60,
                                    what="close port")
        except PortholeError as e:
            raise _api.feature_error(e, _api.FEATURE_PORTS, vm_id) from None

    def __repr__(self) -> str:
        return "<AsyncSandbox %s>" % (self._id or "(not created)")
