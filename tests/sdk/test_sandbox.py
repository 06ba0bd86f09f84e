#!/usr/bin/python3
"""The SDK on a real gateway with a real guest (the fixture's shared
sandbox): callback rules, the gateway's own block, CommandResult, timeout,
files, env, from_id, the async path; and the gateway features the SDK uses
when present (ids, stop/start, images, ports), probed, skipped when absent."""

import asyncio
import hashlib
import os
import secrets
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sdkfixture  # noqa: E402
from sdkfixture import Skip, TestFailure, check, check_eq  # noqa: E402

import porthole  # noqa: E402
from probes import gateway_has, gateway_has_ids, gateway_has_images  # noqa: E402
from porthole import AsyncSandbox, Callback, CommandBlockedError, Sandbox  # noqa: E402

FX = sdkfixture.ensure()
SID = FX.shared_sandbox_id()


class Recorder(Callback):
    def __init__(self, name, log, veto_word=None, post_raises=False):
        self.name, self.log, self.veto_word, self.post_raises = name, log, veto_word, post_raises

    def on_pre_run(self, ctx):
        self.log.append((self.name, "pre", ctx.command, ctx.shell, ctx.timeout, ctx.vm_id))
        if self.veto_word and self.veto_word in ctx.command:
            raise CommandBlockedError("guard %s refuses it" % self.name, vm_id=ctx.vm_id,
                                      command=ctx.command)

    def on_post_run(self, ctx):
        self.log.append((self.name, "post", ctx.command, ctx.result.exit_code))
        if self.post_raises:
            raise ValueError("observer %s is buggy" % self.name)

    def on_run_error(self, ctx):
        self.log.append((self.name, "error", ctx.command, type(ctx.error).__name__))


def test_callbacks_on_a_real_guest():
    log = []
    word = "sdkveto" + secrets.token_hex(4)
    marker = "/tmp/sdk-marker-%s" % secrets.token_hex(4)
    sb = Sandbox.from_id(SID, client=FX.client(), callbacks=[
        Recorder("first", log, post_raises=True), Recorder("guard", log, veto_word=word),
        Recorder("last", log)])
    r = sb.run("echo live-ok", shell="raw", timeout=20)
    check_eq(r.output, "live-ok", "output")
    check_eq([e[:2] for e in log], [("first", "pre"), ("guard", "pre"), ("last", "pre"),
                                    ("first", "post"), ("guard", "post"), ("last", "post")],
             "order with a raising first observer")
    check_eq(log[0][2:], ("echo live-ok", "raw", 20, SID), "run context fields")
    # The veto: the command would create a file; it must never get there.
    log.clear()
    vetoed = "touch %s && echo %s" % (marker, word)
    try:
        sb.run(vetoed)
        raise TestFailure("the guard did not block")
    except CommandBlockedError as e:
        check_eq(e.command, vetoed, "blocked command")
        check_eq(e.vm_id, SID, "blocked vm_id")
    check_eq([e[:2] for e in log], [("first", "pre"), ("guard", "pre")], "hooks after veto")
    probe = sb.run("test -e %s; echo $?" % marker)
    check_eq(probe.output, "1", "the vetoed command's file exists in the guest")
    check_eq(FX.audit_for(vetoed), [], "the gateway's audit log saw the vetoed command")
    check(FX.audit_for("test -e %s; echo $?" % marker, SID, wait=5),
          "the audit log should show the probe that did run")


def test_server_policy_block():
    log = []
    sb = Sandbox.from_id(SID, client=FX.client(), callbacks=[Recorder("obs", log)])
    cmd = "echo %s %s" % (sdkfixture.SERVER_DENY, secrets.token_hex(3))
    try:
        sb.run(cmd)
        raise TestFailure("the gateway's deny list did not block")
    except CommandBlockedError as e:
        check_eq(e.code, "blocked", "API code")
        check_eq(e.status, 403, "HTTP status")
        check(sdkfixture.SERVER_DENY in e.message, "reason names the rule: %r", e.message)
        check_eq((e.details["vm_id"], e.details["command"]), (SID, cmd), "details")
    check_eq(log, [("obs", "pre", cmd, "login", 30, SID), ("obs", "error", cmd,
                                                           "CommandBlockedError")],
             "the block reaches on_run_error")
    lines = FX.audit_for(cmd, SID, wait=5)
    check(lines and lines[0].get("event") == "blocked", "audit: %r", lines)
    check_eq(sb.run("echo still usable").output, "still usable", "after a block")


def test_command_result_fields():
    sb = Sandbox.from_id(SID, client=FX.client())
    r = sb.run("printf 'out\\n'; printf 'err\\n' >&2; exit 7")
    check_eq((r.exit_code, r.stdout, r.stderr), (7, "out\n", "err\n"), "fields")
    check(not r.ok, "ok for exit 7")
    check_eq(r.output, "out", "output")
    check(isinstance(r.duration_ms, int) and r.duration_ms >= 0, "duration_ms %r", r.duration_ms)
    ok = sb.run("whoami")
    check(ok.ok and ok.output == "root", "whoami: %r", ok)


def test_timeout_then_a_working_command():
    sb = Sandbox.from_id(SID, client=FX.client())
    t0 = time.monotonic()
    try:
        sb.run("sleep 60", timeout=2)
        raise TestFailure("no timeout")
    except porthole.CommandTimeoutError as e:
        check(isinstance(e, porthole.OperationTimeoutError), "class")
        check_eq(e.command, "sleep 60", "command")
    took = time.monotonic() - t0
    check(took < 30, "a 2 s timeout took %.1f s", took)
    check_eq(sb.run("echo after timeout").output, "after timeout", "after a timeout")


def test_run_streams_output():
    # on_output sees each piece while the command still runs (its last step
    # has not happened when the first piece arrives); the result has it all;
    # callbacks see the streamed command as any other.
    log = []
    sb = Sandbox.from_id(SID, client=FX.client()).add_callback(Recorder("r", log))
    other = Sandbox.from_id(SID, client=FX.client())
    done = "/tmp/sdk-stream-%s" % secrets.token_hex(4)
    seen = []

    def on_output(stream, text):
        if not seen:
            seen.append(("running", other.run("test -e %s" % done).exit_code))
        seen.append((stream, text))

    res = sb.run("echo a; sleep 2; echo b >&2; touch %s; echo c" % done, on_output=on_output)
    check_eq(seen[0], ("running", 1), "the command ended before its first output arrived")
    check_eq([p for p in seen[1:] if p[0] == "stdout"], [("stdout", "a\n"), ("stdout", "c\n")],
             "stdout pieces")
    check_eq([p for p in seen[1:] if p[0] == "stderr"], [("stderr", "b\n")], "stderr pieces")
    check_eq((res.exit_code, res.stdout, res.stderr), (0, "a\nc\n", "b\n"), "the result")
    check_eq([e[:2] for e in log], [("r", "pre"), ("r", "post")], "callbacks of a streamed run")
    try:
        sb.run("echo x; sleep 60", timeout=2, on_output=lambda s, t: None)
        raise TestFailure("no timeout")
    except porthole.CommandTimeoutError as e:
        check_eq(e.command, "echo x; sleep 60", "command of the timeout")
    check_eq(log[-1][:2] + log[-1][3:], ("r", "error", "CommandTimeoutError"),
             "on_run_error of a streamed timeout")
    try:
        sb.run("true; rm -rf /", on_output=lambda s, t: None)
        raise TestFailure("not blocked")
    except CommandBlockedError:
        pass


def test_file_round_trip():
    sb = Sandbox.from_id(SID, client=FX.client())
    data = os.urandom(300 * 1024) + b"\0end"
    path = "/root/sdk-%s.bin" % secrets.token_hex(4)
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        src, dst = os.path.join(d, "src"), os.path.join(d, "dst")
        with open(src, "wb") as f:
            f.write(data)
        check_eq(sb.push_file(src, path), len(data), "pushed")
        guest_sum = sb.run("sha256sum %s" % path).output.split()[0]
        check_eq(guest_sum, hashlib.sha256(data).hexdigest(), "sha256 in the guest")
        check_eq(sb.pull_file(path, dst), len(data), "pulled")
        with open(dst, "rb") as f:
            check(f.read() == data, "pulled bytes differ")
    sb.write_file("/root/sdk-text.txt", "héllo\n")
    check_eq(sb.read_file("/root/sdk-text.txt"), "héllo\n".encode(), "text round trip")
    try:
        sb.read_file("/root/does-not-exist-%s" % secrets.token_hex(3))
        raise TestFailure("no error for a missing file")
    except porthole.NotFoundError:
        pass


def test_env_vars():
    sb = Sandbox.from_id(SID, client=FX.client())
    check_eq(sb.env, sdkfixture.SHARED_ENV, "env at create")
    value = "v-%s it's \"q\" $x" % secrets.token_hex(3)
    env = sb.set_env({"SDK_ENV_TEST": value})
    check_eq(env["SDK_ENV_TEST"], value, "env after set")
    check_eq(sb.run('printf %s "$SDK_ENV_TEST"', shell="login").stdout, value,
             "login shell sees the variable")
    sb.unset_env(["SDK_ENV_TEST"])
    check_eq(sb.env, sdkfixture.SHARED_ENV, "env after unset")


def test_from_id_exit_does_not_delete():
    with Sandbox.from_id(SID, client=FX.client()) as sb:
        check(sb.attached, "attached")
        sb.run("true")
    check_eq(Sandbox.from_id(SID, client=FX.client()).status, "ready", "after exit")
    try:
        Sandbox.from_id("sb-000000000000", client=FX.client())
        raise TestFailure("no error for an unknown id")
    except porthole.SandboxNotFoundError as e:
        check_eq(e.vm_id, "sb-000000000000", "vm_id")


def test_async_path():
    log = []

    class AsyncAudit(Callback):
        async def on_pre_run(self, ctx):
            await asyncio.sleep(0)
            log.append(("pre", ctx.command))
            if "async-veto" in ctx.command:
                raise CommandBlockedError("async guard", vm_id=ctx.vm_id, command=ctx.command)

        async def on_post_run(self, ctx):
            log.append(("post", ctx.command, ctx.result.exit_code))

        async def on_run_error(self, ctx):
            log.append(("error", ctx.command, type(ctx.error).__name__))

    async def main():
        sb = await AsyncSandbox.from_id(SID, url=FX.url, token=FX.token, callbacks=[AsyncAudit()])
        r = await sb.run("echo async-ok")
        check_eq(r.output, "async-ok", "async output")
        a, b = await asyncio.gather(sb.run("echo one"), sb.run("echo two"))
        check_eq((a.output, b.output), ("one", "two"), "concurrent runs")
        try:
            await sb.run("touch /tmp/async-marker-file # async-veto")
            raise TestFailure("no async veto")
        except CommandBlockedError:
            pass
        try:
            await sb.run("echo %s" % sdkfixture.SERVER_DENY)
            raise TestFailure("no server block")
        except CommandBlockedError as e:
            check_eq(e.code, "blocked", "code")
        try:
            await sb.run("sleep 30", timeout=1)
            raise TestFailure("no async timeout")
        except porthole.CommandTimeoutError:
            pass
        check_eq((await sb.run("test -e /tmp/async-marker-file; echo $?")).output, "1",
                 "vetoed async command reached the guest")
        await sb.write_file("/tmp/async.txt", b"async bytes")
        check_eq(await sb.read_file("/tmp/async.txt"), b"async bytes", "async file")

    asyncio.run(main())
    check_eq(log[0], ("pre", "echo async-ok"), "first")
    check(("post", "echo async-ok", 0) in log, "post seen")
    check(("error", "echo %s" % sdkfixture.SERVER_DENY, "CommandBlockedError") in log,
          "async on_run_error saw the block: %r", log)
    check(("error", "sleep 30", "CommandTimeoutError") in log, "async timeout observed")
    check(not any(e[0] == "post" and "async-veto" in e[1] for e in log), "veto ran")


# ---- gateway features, probed ----------------------------------------------


def test_user_chosen_id():
    sdkfixture.skip_unless(gateway_has_ids(), 'the gateway has no user-chosen ids (POST '
                           '/v1/sandboxes answers 400 unknown field "id")')
    name = "sdk-named-" + secrets.token_hex(3)
    with Sandbox(name, client=FX.client()) as sb:
        check_eq(sb.id, name, "id")
        try:
            Sandbox(name, client=FX.client()).start()
            raise TestFailure("a taken id was accepted")
        except porthole.SandboxExistsError as e:
            check_eq(e.vm_id, name, "conflict id")


def test_network_none():
    # The guest's one way out is the gateway's proxy, which refuses every
    # connection of a "none" sandbox before any lookup: the name below is
    # never resolved, and .test names nothing anyway.
    with Sandbox(client=FX.client(), network="none") as sb:
        net = sb.info.get("network") or {}
        check_eq(net.get("mode"), "none", "network mode in the sandbox's JSON")
        r = sb.run("curl -sS -m 20 -o /dev/null -w '%{http_code}' http://blocked.test/ || true",
                   timeout=60)
        check(not r.stdout.strip().startswith("2"), "a none sandbox fetched a page: %r" % (r.output,))
        check((sb.info.get("network") or {}).get("refused", 0) >= 1,
              "the refusal is counted: %r" % (sb.info.get("network"),))


def test_stop_start_keeps_disk():
    sdkfixture.skip_unless(gateway_has("stop") and gateway_has("start"),
                           "the gateway has no POST /v1/sandboxes/{id}/stop and /start")
    with Sandbox(client=FX.client()) as sb:
        sb.write_file("/root/kept.txt", "kept across stop\n")
        sb.stop()
        check_eq(sb.status, "stopped", "after stop")
        sb.start()
        check_eq(sb.read_file("/root/kept.txt"), b"kept across stop\n", "disk kept")


class Lifecycle(Callback):
    def __init__(self):
        self.events = []

    def on_start(self, ctx):
        self.events.append(("start", ctx.event, ctx.status))

    def on_stop(self, ctx):
        self.events.append(("stop", ctx.event, ctx.status))

    def on_snapshot(self, ctx):
        self.events.append(("snapshot", ctx.event, ctx.snapshot_id))


def test_pause_resume_snapshot():
    sdkfixture.skip_unless(gateway_has("pause") and gateway_has("snapshot"),
                           "the gateway has no POST /v1/sandboxes/{id}/pause and /snapshot")
    life = Lifecycle()
    client = FX.client()
    # One at a time beside the shared sandbox: the gateway takes two VMs.
    with Sandbox(client=client, callbacks=[life]) as sb:
        sb.run("nohup sleep 600 >/dev/null 2>&1 & echo $! > /root/bg.pid; "
               "echo before > /root/f.txt")
        sb.pause()
        check_eq(sb.status, "paused", "status after pause")
        try:
            sb.run("true")
            raise TestFailure("a command ran in a paused sandbox")
        except porthole.PortholeError as e:
            sdkfixture.log("run while paused: %s: %s" % (type(e).__name__, e))
        sb.resume()
        check_eq(sb.status, "ready", "status after resume")
        check_eq(sb.run("kill -0 $(cat /root/bg.pid) && echo alive").stdout, "alive\n",
                 "the process after resume")
        snap = sb.snapshot()
        snap_id = snap["snapshot_id"]
        check(snap_id.startswith("snap-"), "snapshot id %r", snap_id)
        sb.write_file("/root/f.txt", "after\n")
        vm_id = sb.id
    # The source is gone: the snapshot alone carries that instant.
    with Sandbox(from_snapshot=snap_id, client=client) as clone:
        check_eq(clone.info.get("served_from"), "snapshot", "served_from")
        check_eq(clone.read_file("/root/f.txt"), b"before\n", "the file as it was")
        check_eq(clone.run("kill -0 $(cat /root/bg.pid) && echo alive").stdout, "alive\n",
                 "the process carries on in the new sandbox")
    check_eq(life.events, [("start", "start", "ready"), ("stop", "pause", "paused"),
                           ("start", "resume", "ready"), ("snapshot", "snapshot", snap_id),
                           ("stop", "delete", "deleted")], "lifecycle hooks")
    client.json("DELETE", "/v1/snapshots/" + snap_id)
    check(vm_id, "sandbox id")
    check(not [x for x in client.json("GET", "/v1/snapshots")["snapshots"]
               if x["snapshot_id"] == snap_id], "the snapshot is deleted")

    # The async path: the same calls, awaited.
    async def go():
        async with AsyncSandbox(url=FX.url, token=FX.token) as asb:
            await asb.pause()
            check_eq(asb.info.get("status"), "paused", "async pause")
            await asb.resume()
            check_eq((await asb.run("echo back")).stdout, "back\n", "async resume")
    asyncio.run(go())


def test_custom_image():
    sdkfixture.skip_unless(gateway_has_images(), 'the gateway has no custom images (POST '
                           '/v1/sandboxes answers 400 unknown field "image")')
    try:
        Sandbox(image="sdk-no-such-image", client=FX.client()).start()
        raise TestFailure("an unknown image was accepted")
    except porthole.PortholeError as e:
        check(not isinstance(e, porthole.FeatureUnavailableError), "feature present: %r", e)


def test_expose_local():
    sdkfixture.skip_unless(gateway_has("ports"), "the gateway has no POST "
                           "/v1/sandboxes/{id}/ports")
    import urllib.request
    sb = Sandbox.from_id(SID, client=FX.client())
    sb.run("mkdir -p /srv/sdk; echo sdk-port > /srv/sdk/index.html; (cd /srv/sdk && exec "
           "python3 -m http.server 8123 --bind 127.0.0.1) >/dev/null 2>&1 </dev/null &")
    sb.run("for i in $(seq 100); do curl -sf localhost:8123/ && exit 0; sleep 0.2; done; exit 1")
    port = sb.expose_local(guest_port=8123, guest_loopback=True)
    try:
        body = urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=20).read()
        check_eq(body, b"sdk-port\n", "page through the exposed port")
        check_eq([(p["guest_port"], p["host_port"]) for p in sb.ports()], [(8123, port)],
                 "ports()")
    finally:
        sb.close_port(8123)
        sb.run("pkill -f 'http.server 8123'", timeout=30)
    check_eq(sb.ports(), [], "ports() after close_port")
    try:
        urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=5).read()
        raise TestFailure("the port still answers after close_port")
    except OSError:
        pass


def test_missing_features_raise_typed_errors():
    sb = Sandbox.from_id(SID, client=FX.client())
    missing = []
    if not gateway_has("stop"):
        try:
            sb.stop()
            raise TestFailure("stop() did not raise")
        except porthole.FeatureUnavailableError as e:
            check("/stop" in e.needs, "needs %r", e.needs)
            missing.append("stop")
    if not gateway_has("ports"):
        try:
            sb.expose_local(8080)
            raise TestFailure("expose_local() did not raise")
        except porthole.FeatureUnavailableError as e:
            check("/ports" in e.needs, "needs %r", e.needs)
            missing.append("ports")
    if not gateway_has_ids():
        try:
            Sandbox("sdk-wanted-id", client=FX.client()).start()
            raise TestFailure("an id was silently dropped")
        except porthole.FeatureUnavailableError as e:
            check('"id"' in e.needs, "needs %r", e.needs)
            missing.append("id")
    if not missing:
        raise Skip("the gateway has every feature; nothing missing to report")
    check_eq(sb.status, "ready", "the sandbox after the feature errors")


if __name__ == "__main__":
    sdkfixture.run([
        test_callbacks_on_a_real_guest,
        test_server_policy_block,
        test_command_result_fields,
        test_timeout_then_a_working_command,
        test_run_streams_output,
        test_file_round_trip,
        test_env_vars,
        test_from_id_exit_does_not_delete,
        test_async_path,
        test_user_chosen_id,
        test_network_none,
        test_stop_start_keeps_disk,
        test_pause_resume_snapshot,
        test_custom_image,
        test_expose_local,
        test_missing_features_raise_typed_errors,
    ])
