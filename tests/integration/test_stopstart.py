#!/usr/bin/python3
"""stopstart: POST .../stop powers a sandbox off and keeps its disk, POST
.../start boots it again from that disk: files written before the stop are
there, exposed ports come back, commands on a stopped sandbox are refused
with a clear error, and deleting a stopped sandbox removes its disk."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture  # noqa: E402
from fixture import check, check_eq, check_error  # noqa: E402

fx = fixture.ensure()
MARK = "kept-%d" % os.getpid()
sid = None
state = {}


def test_stop():
    global sid
    sid = fx.create_sandbox(timeout_minutes=30)["id"]
    # Written and not synced by the test: the stop must get it to the disk.
    fx.exec("echo %s > /root/kept.txt; mkdir -p /opt/tool && echo v1 > /opt/tool/version" % MARK,
            sandbox=sid)
    state["port"] = fx.api("POST", "/v1/sandboxes/%s/ports" % sid, {"guest_port": 8200},
                           expect=201)["host_port"]
    state["qemu"] = fx.qemu_pid(sid)
    got = fx.api("POST", "/v1/sandboxes/%s/stop" % sid, {})
    check_eq(got["status"], "stopped", "status in the stop reply")
    check(not fixture.pid_alive(state["qemu"]), "QEMU %d still runs after stop", state["qemu"])
    check(os.path.exists(os.path.join(fx.run_dir(sid), "disk.qcow2")), "the disk is gone")
    check_eq(fx.api("GET", "/v1/sandboxes/" + sid)["status"], "stopped", "status after stop")
    check_eq(fx.api("GET", "/v1/sandboxes/%s/ports" % sid), {"ports": []},
             "no forward while stopped")
    check_eq(fx.record(sid)["status"], "stopped", "the saved record")


def test_refused_while_stopped():
    check(sid, "no sandbox (the first case failed)")
    check_error(fx.exec_raw("true", sandbox=sid), 409, "conflict", "exec on a stopped sandbox",
                "start it first")
    r = fx.req("GET", "/v1/sandboxes/%s/files?path=/root/kept.txt" % sid)
    check_error(r, 409, "conflict", "file read on a stopped sandbox")
    check_eq(fx.api("POST", "/v1/sandboxes/%s/stop" % sid)["status"], "stopped",
             "a second stop (no body)")
    check_error(fx.req("POST", "/v1/sandboxes/%s/stop" % sid, {"force": True}), 400,
                "bad_request", "stop with an unknown field")
    check_error(fx.req("POST", "/v1/sandboxes/sb-000000000000/start", {}), 404, "not_found",
                "start of an unknown sandbox")


def test_start():
    check(sid, "no sandbox (the first case failed)")
    got = fx.api("POST", "/v1/sandboxes/%s/start" % sid, {}, timeout=fixture.BOOT_TIMEOUT_S + 60)
    check_eq(got["status"], "ready", "status in the start reply")
    check(fx.qemu_pid(sid) != state["qemu"], "the same QEMU after start")
    res = fx.exec("cat /root/kept.txt /opt/tool/version", sandbox=sid)
    check_eq(res["stdout"], "%s\nv1\n" % MARK, "files written before the stop")
    ports = fx.api("GET", "/v1/sandboxes/%s/ports" % sid)["ports"]
    check_eq([(p["guest_port"], p["host_port"]) for p in ports], [(8200, state["port"])],
             "exposed ports after start")
    check(fixture.port_listening(state["port"]), "the exposed port does not listen after start")
    check_eq(fx.api("POST", "/v1/sandboxes/%s/start" % sid, {})["status"], "ready",
             "start of a ready sandbox")


def cli(*args):
    env = dict(os.environ, PORTHOLE_URL=fx.url, PORTHOLE_TOKEN=fx.token)
    p = subprocess.run([fixture.EXE] + list(args), env=env, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=fixture.BOOT_TIMEOUT_S + 60)
    return p.returncode, p.stdout, p.stderr


def test_cli():
    check(sid, "no sandbox (the first case failed)")
    check_eq(cli("sandbox", "stop", sid), (0, "%s stopped\n" % sid, ""), "porthole sandbox stop")
    rc, out, err = cli("sandbox", "exec", sid, "--", "true")
    check(rc != 0 and "start it first" in err, "exec on a stopped sandbox: %d %r", rc, err)
    check_eq(cli("sandbox", "start", sid), (0, "%s ready\n" % sid, ""), "porthole sandbox start")
    check_eq(cli("sandbox", "exec", sid, "--", "cat /root/kept.txt")[:2], (0, MARK + "\n"),
             "file after a CLI stop and start")


def test_delete_stopped():
    check(sid, "no sandbox (the first case failed)")
    check_eq(fx.api("POST", "/v1/sandboxes/%s/stop" % sid, {})["status"], "stopped", "stop again")
    check_eq(fx.delete_sandbox(sid).status, 200, "delete of a stopped sandbox")
    check(not os.path.exists(fx.run_dir(sid)), "the run dir outlives the deleted sandbox")
    check_eq(fx.req("GET", "/v1/sandboxes/" + sid).status, 404, "GET after delete")


fixture.run([test_stop, test_refused_while_stopped, test_start, test_cli, test_delete_stopped])
