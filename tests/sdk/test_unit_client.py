#!/usr/bin/python3
"""Unit tests of the SDK's client side against a scripted gateway on
127.0.0.1 (fakegateway.py): callback order and rules, error mapping,
missing gateway features, the async path, discovery, option checks."""

import asyncio
import io
import json
import logging
import os
import stat
import sys
import tempfile
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sdkfixture  # noqa: E402  (puts sdk/python on sys.path)
from sdkfixture import check, check_eq, TestFailure  # noqa: E402
from fakegateway import FakeGateway, blocked, drop, timed_out  # noqa: E402

import porthole  # noqa: E402
from porthole import (AsyncSandbox, Callback, CommandBlockedError, Sandbox,  # noqa: E402
                      FeatureUnavailableError)
from porthole import discover  # noqa: E402


def expect_raises(cls, fn, *a, **kw):
    try:
        fn(*a, **kw)
    except cls as e:
        return e
    except Exception as e:
        raise TestFailure("expected %s, got %r" % (cls.__name__, e))
    raise TestFailure("expected %s, nothing was raised" % cls.__name__)


class Recorder(Callback):
    def __init__(self, name, log, veto=None, post_raises=False, error_raises=False):
        self.name, self.log, self.veto = name, log, veto
        self.post_raises, self.error_raises = post_raises, error_raises

    def on_pre_run(self, ctx):
        self.log.append((self.name, "pre", ctx.command))
        if self.veto and self.veto in ctx.command:
            raise CommandBlockedError("%s refuses %r" % (self.name, ctx.command),
                                      vm_id=ctx.vm_id, command=ctx.command)

    def on_post_run(self, ctx):
        self.log.append((self.name, "post", ctx.command, ctx.result.exit_code))
        if self.post_raises:
            raise RuntimeError("buggy observer %s" % self.name)

    def on_run_error(self, ctx):
        self.log.append((self.name, "error", ctx.command, type(ctx.error).__name__))
        if self.error_raises:
            raise RuntimeError("buggy error observer %s" % self.name)


class CaptureLog:
    def __enter__(self):
        self.buf = io.StringIO()
        self.h = logging.StreamHandler(self.buf)
        logging.getLogger("porthole").addHandler(self.h)
        return self

    def __exit__(self, *a):
        logging.getLogger("porthole").removeHandler(self.h)

    @property
    def text(self):
        return self.buf.getvalue()


def test_callback_order_and_post_run():
    with FakeGateway() as g:
        log = []
        cbs = [Recorder("a", log), Recorder("b", log), Recorder("c", log)]
        with Sandbox(url=g.url, token=g.token, callbacks=cbs[:2]) as sb:
            check(sb.add_callback(cbs[2]) is sb, "add_callback must return the sandbox")
            r = sb.run("echo hi")
            check_eq(r.stdout, "ran: echo hi\n", "stdout")
        check_eq(log, [("a", "pre", "echo hi"), ("b", "pre", "echo hi"), ("c", "pre", "echo hi"),
                       ("a", "post", "echo hi", 0), ("b", "post", "echo hi", 0),
                       ("c", "post", "echo hi", 0)], "hook order")


def test_veto_never_reaches_gateway():
    with FakeGateway() as g:
        log = []
        with Sandbox(url=g.url, token=g.token,
                     callbacks=[Recorder("a", log), Recorder("b", log, veto="danger"),
                                Recorder("c", log)]) as sb:
            e = expect_raises(CommandBlockedError, sb.run, "run danger now")
            check_eq(e.command, "run danger now", "blocked command")
            check_eq(e.details, {"vm_id": sb.id, "command": "run danger now"}, "details")
            check_eq(e.vm_id, sb.id, "vm_id")
            check("b refuses" in str(e), "message: %r", str(e))
            check_eq(g.execs(), [], "commands that reached the gateway")
            # Later pre hooks, post hooks and error hooks are not called.
            check_eq(log, [("a", "pre", "run danger now"), ("b", "pre", "run danger now")],
                     "hooks after a veto")
            # The sandbox stays usable.
            check_eq(sb.run("echo after").exit_code, 0, "exit after veto")
            check_eq(g.execs(), ["echo after"], "commands after the veto")


def test_observer_errors_swallowed_and_logged():
    with FakeGateway() as g:
        g.on_exec("blockme", blocked("command matches deny rule \"blockme\""))
        log = []
        with CaptureLog() as cap, Sandbox(url=g.url, token=g.token, callbacks=[
                Recorder("a", log, post_raises=True, error_raises=True),
                Recorder("b", log)]) as sb:
            r = sb.run("echo ok")
            check_eq(r.exit_code, 0, "run with a raising observer")
            check_eq(log[-1], ("b", "post", "echo ok", 0), "later observer still called")
            e = expect_raises(CommandBlockedError, sb.run, "blockme")
            check_eq(e.message, 'command matches deny rule "blockme"', "server message")
            check_eq(e.details["vm_id"], sb.id, "vm_id in details")
            check_eq(e.details["command"], "blockme", "command in details")
            check_eq(log[-2:], [("a", "error", "blockme", "CommandBlockedError"),
                                ("b", "error", "blockme", "CommandBlockedError")],
                     "on_run_error sees the server block")
        check("buggy observer a" in cap.text and "buggy error observer a" in cap.text,
              "observer errors must be logged: %r", cap.text)


def test_timeout_and_transport_errors():
    with FakeGateway() as g:
        g.on_exec("^sleep", timed_out)
        g.on_exec("^drop", drop)
        seen = []

        class Err(Callback):
            def on_run_error(self, ctx):
                seen.append(ctx.error)

        with Sandbox(url=g.url, token=g.token, callbacks=[Err()]) as sb:
            e = expect_raises(porthole.CommandTimeoutError, sb.run, "sleep 99", timeout=2)
            check(isinstance(e, porthole.OperationTimeoutError), "timeout class")
            check("within 2 s" in e.message, "message %r", e.message)
            check_eq(json.loads(g.requests[-1][3])["timeout"], 2, "timeout sent")
            e2 = expect_raises(porthole.TransportError, sb.run, "drop it")
            check_eq([type(x).__name__ for x in seen], ["CommandTimeoutError", "TransportError"],
                     "errors seen by on_run_error")
            check(seen[0] is e and seen[1] is e2, "the observer sees the raised error itself")
            # A fractional timeout rounds up, never to zero.
            sb.run("echo x", timeout=0.2)
            check_eq(json.loads(g.requests[-1][3])["timeout"], 1, "rounded timeout")


def test_error_mapping():
    with FakeGateway() as g:
        e = expect_raises(porthole.SandboxNotFoundError, Sandbox.from_id, "sb-nope",
                          url=g.url, token=g.token)
        check_eq(e.vm_id, "sb-nope", "vm_id")
        check(isinstance(e, porthole.NotFoundError), "not found class")
        expect_raises(porthole.AuthenticationError, Sandbox(url=g.url, token="wrong").start)
        expect_raises(porthole.CommandExecutionUnavailableError,
                      Sandbox(url=g.url, token=g.token).run, "x")
        sb = Sandbox(url=g.url, token=g.token).start()
        expect_raises(porthole.ValidationError, sb.run, "x", shell="bash")
        expect_raises(porthole.ValidationError, sb.run, "")
        expect_raises(porthole.ValidationError, sb.run, "x", timeout=0)
        e = expect_raises(porthole.NotFoundError, sb.read_file, "/nope")
        check("no such file" in e.message, "message %r", e.message)
        sb.delete()
        expect_raises(porthole.SandboxNotFoundError, sb.run, "echo gone")


def test_missing_gateway_features():
    with FakeGateway() as g:
        e = expect_raises(FeatureUnavailableError, Sandbox("agent-workspace", url=g.url,
                                                           token=g.token).start)
        check("user-chosen sandbox ids" in e.message and '"id"' in e.message, "msg %r",
              e.message)
        e = expect_raises(FeatureUnavailableError, Sandbox(image="py", url=g.url,
                                                           token=g.token).start)
        check("custom images" in e.message, "msg %r", e.message)
        with Sandbox(url=g.url, token=g.token) as sb:
            e = expect_raises(FeatureUnavailableError, sb.stop)
            check("POST /v1/sandboxes/{id}/stop" in e.message, "msg %r", e.message)
            e = expect_raises(FeatureUnavailableError, sb.expose_local, 8080)
            check("/ports" in e.message, "msg %r", e.message)
            check(sb.status == "ready", "sandbox still there")
        expect_raises(porthole.ValidationError, Sandbox, "Bad_ID!")
        # With the feature present, the same calls go through.
        g.routes_extra.update({"stop", "start"})
        g.known_fields.add("id")
        with Sandbox(url=g.url, token=g.token) as sb:
            sb.stop()
            check_eq(sb.status, "stopped", "after stop")
            sb.start()
            check_eq(sb.status, "ready", "after start")


def test_from_id_exit_detaches():
    with FakeGateway() as g:
        sb = Sandbox(url=g.url, token=g.token).start()
        with Sandbox.from_id(sb.id, url=g.url, token=g.token) as again:
            check(again.attached, "from_id is attached")
            again.run("echo hi")
        check(sb.id in g.sandboxes, "exit of an attached sandbox must not delete it")
        with sb:
            pass
        check(sb.id not in g.sandboxes, "exit of an owned sandbox deletes it")


def test_files_env_and_hooks():
    with FakeGateway() as g:
        events = []

        class Hooks(Callback):
            def on_start(self, ctx):
                events.append(("start", ctx.event))

            def on_stop(self, ctx):
                events.append(("stop", ctx.event))

            def on_pre_file(self, ctx):
                events.append(("pre_file", ctx.direction, ctx.remote_path))
                if ctx.remote_path.startswith("/etc/"):
                    raise PermissionError("no writes under /etc")

            def on_post_file(self, ctx):
                events.append(("post_file", ctx.direction, ctx.size))

        with tempfile.TemporaryDirectory() as d:
            src = os.path.join(d, "in.bin")
            with open(src, "wb") as f:
                f.write(bytes(range(256)))
            with Sandbox(url=g.url, token=g.token, callbacks=[Hooks()],
                         env_vars={"A": "1"}) as sb:
                check_eq(sb.push_file(src, "/root/in.bin"), 256, "pushed bytes")
                check_eq(sb.pull_file("/root/in.bin", os.path.join(d, "out.bin")), 256, "pull")
                with open(os.path.join(d, "out.bin"), "rb") as f:
                    check_eq(f.read(), bytes(range(256)), "round trip")
                n = len(g.requests)
                expect_raises(PermissionError, sb.write_file, "/etc/passwd", "x")
                check_eq(len(g.requests), n, "a vetoed transfer sends nothing")
                check_eq(sb.env, {"A": "1"}, "env")
                check_eq(sb.set_env({"B": "2"}), {"A": "1", "B": "2"}, "merged env")
                sb.env = {"C": "3"}
                check_eq(sb.env, {"C": "3"}, "replaced env")
        check_eq(events, [("start", "start"), ("pre_file", "push", "/root/in.bin"),
                          ("post_file", "push", 256), ("pre_file", "pull", "/root/in.bin"),
                          ("post_file", "pull", 256), ("pre_file", "push", "/etc/passwd"),
                          ("stop", "delete")], "lifecycle and file hooks")


def test_network_policy_in_the_body():
    with FakeGateway() as g:
        with Sandbox(url=g.url, token=g.token, allowed_domains=["pypi.org", "*.pythonhosted.org"]):
            pass
        with Sandbox(url=g.url, token=g.token, network="none"):
            pass
        bodies = [json.loads(b) for m, p, q, b in g.requests if m == "POST" and p == "/v1/sandboxes"]
        check_eq([b.get("allowed_domains") for b in bodies],
                 [["pypi.org", "*.pythonhosted.org"], None], "allowed_domains sent")
        check_eq([b.get("network") for b in bodies], [None, "none"], "network sent")
    expect_raises(porthole.ValidationError, Sandbox, network="offline")
    expect_raises(porthole.ValidationError, Sandbox, allowed_domains="pypi.org")
    expect_raises(porthole.ValidationError, Sandbox, network="none", allowed_domains=["a.test"])
    expect_raises(porthole.ValidationError, AsyncSandbox, network="offline")


def test_async_sandbox():
    with FakeGateway() as g:
        g.on_exec("blockme", blocked("denied by policy"))
        log = []

        class AsyncHook(Callback):
            async def on_pre_run(self, ctx):
                await asyncio.sleep(0)
                log.append(("async", "pre", ctx.command))
                if "veto" in ctx.command:
                    raise CommandBlockedError("async veto", vm_id=ctx.vm_id, command=ctx.command)

            async def on_post_run(self, ctx):
                log.append(("async", "post", ctx.result.exit_code))
                raise RuntimeError("async observer bug")

            async def on_run_error(self, ctx):
                log.append(("async", "error", type(ctx.error).__name__))

        async def main():
            async with AsyncSandbox(url=g.url, token=g.token,
                                    callbacks=[AsyncHook(), Recorder("sync", log)]) as sb:
                r = await sb.run("echo a")
                check_eq(r.stdout, "ran: echo a\n", "async stdout")
                try:
                    await sb.run("please veto")
                    raise TestFailure("no veto")
                except CommandBlockedError:
                    pass
                try:
                    await sb.run("blockme")
                    raise TestFailure("no server block")
                except CommandBlockedError as e:
                    check_eq(e.details["command"], "blockme", "details")
                results = await asyncio.gather(*(sb.run("echo %d" % i) for i in range(5)))
                check_eq(sorted(r.stdout for r in results),
                         sorted("ran: echo %d\n" % i for i in range(5)), "concurrent runs")
                await sb.write_file("/tmp/f", b"data")
                check_eq(await sb.read_file("/tmp/f"), b"data", "async file")
                return sb.id

        with CaptureLog() as cap:
            sid = asyncio.run(main())
        check("async observer bug" in cap.text, "async observer error logged")
        check(sid not in g.sandboxes, "async exit deletes")
        check_eq(log[:6], [("async", "pre", "echo a"), ("sync", "pre", "echo a"),
                           ("async", "post", 0), ("sync", "post", "echo a", 0),
                           ("async", "pre", "please veto"), ("async", "pre", "blockme")],
                 "async hook order")
        check_eq(log[6:9], [("sync", "pre", "blockme"), ("async", "error", "CommandBlockedError"),
                            ("sync", "error", "blockme", "CommandBlockedError")],
                 "server block reaches both observers")
        check("please veto" not in g.execs(), "async veto reached the gateway")


def test_coroutine_hook_on_sync_sandbox():
    with FakeGateway() as g:
        class AsyncOnly(Callback):
            async def on_pre_run(self, ctx):
                pass
        with Sandbox(url=g.url, token=g.token, callbacks=[AsyncOnly()]) as sb:
            e = expect_raises(TypeError, sb.run, "echo x")
            check("AsyncSandbox" in str(e), "message %r", str(e))
            check_eq(g.execs(), [], "nothing sent")


def _fake_porthole(path, record, url_file):
    """A stand-in `porthole` that does what `porthole gateway --ready-fd N`
    does: serves /healthz, writes gateway.json and the ready line."""
    script = r'''#!/usr/bin/python3
import json, os, sys, threading
from http.server import BaseHTTPRequestHandler, HTTPServer
argv = sys.argv[1:]
open(%r, "w").write(json.dumps(argv))
state = argv[argv.index("--state-dir") + 1]
fd = int(argv[argv.index("--ready-fd") + 1])
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        b = json.dumps({"status": "ok"}).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(b)))
        self.end_headers(); self.wfile.write(b)
srv = HTTPServer(("127.0.0.1", 0), H)
url = "http://127.0.0.1:%%d" %% srv.server_address[1]
json.dump({"url": url, "pid": os.getpid()}, open(os.path.join(state, "gateway.json"), "w"))
open(%r, "w").write(url)
os.write(fd, ("ready %%s\n" %% url).encode()); os.close(fd)
srv.handle_request(); srv.handle_request()
''' % (record, url_file)
    with open(path, "w") as f:
        f.write(script)
    os.chmod(path, stat.S_IRWXU)


def test_discovery():
    saved = {k: os.environ.pop(k, None) for k in ("PORTHOLE_URL", "PORTHOLE_TOKEN",
                                                   "PORTHOLE_STATE_DIR", "PORTHOLE_BIN")}
    try:
        with tempfile.TemporaryDirectory() as d:
            state = os.path.join(d, "state")
            record, url_file = os.path.join(d, "argv.json"), os.path.join(d, "url")
            exe = os.path.join(d, "porthole")
            _fake_porthole(exe, record, url_file)
            os.environ["PORTHOLE_STATE_DIR"] = state
            check_eq(discover.default_state_dir(), state, "PORTHOLE_STATE_DIR")
            e = expect_raises(porthole.GatewayUnavailableError, discover.discover,
                              autostart=False)
            check("no local gateway answers" in e.message, "message %r", e.message)
            os.makedirs(state)
            with open(os.path.join(state, "token"), "w") as f:
                f.write("state-dir-token\n")
            url, token = discover.discover(porthole_bin=exe)
            argv = json.load(open(record))
            check_eq(argv[:6], ["gateway", "--state-dir", state, "--listen", "127.0.0.1:8790",
                                "--ready-fd"], "gateway argv")
            check_eq(url, open(url_file).read(), "url from the ready line")
            check_eq(token, "state-dir-token", "token from the state dir")
            # A second discovery finds the running one through gateway.json.
            os.unlink(record)
            url2, _ = discover.discover(porthole_bin=exe)
            check_eq(url2, url, "found again")
            check(not os.path.exists(record), "must not start a second gateway")
            os.environ["PORTHOLE_TOKEN"] = "env-token"
            check_eq(discover.discover(porthole_bin=exe)[1], "env-token",
                     "PORTHOLE_TOKEN wins over the state dir's token")
            del os.environ["PORTHOLE_TOKEN"]
            os.environ["PORTHOLE_URL"] = "http://127.0.0.1:9/"
            check_eq(discover.discover(), ("http://127.0.0.1:9", None),
                     "PORTHOLE_URL never gets the state dir's token")
            os.environ["PORTHOLE_URL"] = "ftp://x"
            expect_raises(porthole.ValidationError, discover.discover)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_browser_config_validation():
    from porthole import BrowserSessionConfig as C
    cases = [
        (dict(record_video=True), "record_video requires a visible browser or desktop sandbox"),
        (dict(profile_mode="persistent"), "profile_id is required when profile_mode='persistent'"),
        (dict(viewport={"width": 100, "height": 720}),
         "viewport_width: Input should be greater than or equal to 640"),
        (dict(viewport={"width": 1280, "height": 5000}),
         "viewport_height: Input should be less than or equal to 4320"),
        (dict(viewport=[1, 2]), "viewport must be a mapping with width/height values"),
        (dict(timeout_minutes=0), "timeout_minutes: Input should be greater than or equal to 1"),
        (dict(timeout_minutes=241), "timeout_minutes: Input should be less than or equal to 240"),
        (dict(mem_size_mib=256), "mem_size_mib: Input should be greater than or equal to 512"),
        (dict(disk_size_mib=1000), "disk_size_mib: Input should be greater than or equal to 2048"),
        (dict(mode="x"), "mode: Input should be 'headless', 'live' or 'desktop'"),
        (dict(env_vars={"1X": "v"}), "Invalid environment variable name: '1X'"),
    ]
    for kw, msg in cases:
        e = expect_raises(ValueError, C, **kw)
        check_eq(str(e), msg, "message for %r" % (kw,))
    e = expect_raises(porthole.UnsupportedOptionError, C, network_policy_id="p")
    check_eq(e.option, "network_policy_id", "option named")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        c = C(mode="live", backend="firecracker", viewport={"width": 1440, "height": 900},
              record_video=True, allowed_domains=["example.com"])
        check(any("firecracker" in str(x.message) for x in w), "backend warning")
    check_eq(c.to_api()["viewport"], {"width": 1440, "height": 900}, "viewport body")
    check_eq(c.to_api()["allowed_domains"], ["example.com"], "allowed_domains body")
    check("backend" not in c.to_api(), "backend is not sent")


def test_smolvm_compat_options():
    from porthole.smolvm import SmolVM, VMConfig, VMState
    from porthole.smolvm import exceptions as ex
    e = expect_raises(porthole.UnsupportedOptionError, VMConfig, rootfs_path="/x.ext4")
    check_eq(e.option, "rootfs_path", "option named")
    check("image build" in e.message, "points at images: %r", e.message)
    e = expect_raises(porthole.UnsupportedOptionError, SmolVM, port_forwards=[1])
    check_eq(e.option, "port_forwards", "option named")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        vm = SmolVM(VMConfig(vm_id="agent-workspace", vcpu_count=2, mem_size_mib=2048),
                    backend="firecracker", ssh_key_path="/k")
        check_eq(len(w), 2, "two warnings (backend, ssh_key_path)")
    check_eq(vm.config.mem_size_mib, 2048, "config kept")
    check_eq(vm.status, VMState.CREATED, "status before start")
    check_eq(VMConfig(memory=512).mem_size_mib, 512, "memory alias")
    expect_raises(TypeError, VMConfig, no_such_option=1)
    t = ex.OperationTimeoutError("run", 30)
    check_eq(t.message, "Operation 'run' timed out after 30s", "timeout message")
    u = ex.CommandExecutionUnavailableError("vm1", "ssh down", "wait for boot")
    check_eq((u.reason, u.remediation), ("ssh down", "wait for boot"), "unavailable fields")
    check(issubclass(ex.VMNotFoundError, ex.SmolVMError), "hierarchy")
    check(ex.SmolVMError is porthole.PortholeError, "SmolVMError is the SDK's base")
    with FakeGateway() as g:
        os.environ["PORTHOLE_URL"], os.environ["PORTHOLE_TOKEN"] = g.url, g.token
        with SmolVM() as vm:
            check_eq(vm.status, VMState.RUNNING, "status of a ready sandbox")
            check_eq(vm.set_env_vars({"API_KEY": "secret-123"}), ["API_KEY"], "set_env_vars")
            vm_id = vm.vm_id
            again = SmolVM.from_id(vm_id)
            again.close()
            check(vm_id in g.sandboxes, "close keeps the VM")
        check(vm_id not in g.sandboxes, "exit deletes")
        e = expect_raises(ex.VMNotFoundError, SmolVM.from_id, vm_id)
        check_eq(e.vm_id, vm_id, "not found id")


if __name__ == "__main__":
    sdkfixture.run([
        test_callback_order_and_post_run,
        test_veto_never_reaches_gateway,
        test_observer_errors_swallowed_and_logged,
        test_timeout_and_transport_errors,
        test_error_mapping,
        test_missing_gateway_features,
        test_from_id_exit_detaches,
        test_files_env_and_hooks,
        test_network_policy_in_the_body,
        test_async_sandbox,
        test_coroutine_hook_on_sync_sandbox,
        test_discovery,
        test_browser_config_validation,
        test_smolvm_compat_options,
    ])
