#!/usr/bin/python3
"""restart: a gateway killed with SIGKILL leaves its VMs running; a new one on
the same state dir re-attaches to them. Not parallel: it kills the shared
gateway."""
import http.client
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture  # noqa: E402
from fixture import check, check_eq  # noqa: E402

fx = fixture.ensure()
CONTENT = ("written before the kill %d %f\n" % (os.getpid(), time.time())).encode() + b"\0\xff"
PATH = "/root/restart-marker-%d" % os.getpid()


def exposed_get(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request("GET", "/restart-mark")
        return c.getresponse().read()
    finally:
        c.close()


def test_kill_and_reattach():
    r = fx.req("PUT", "/v1/sandboxes/%s/files?path=%s" % (fx.sandbox, PATH), CONTENT)
    check_eq(r.status, 200, "upload before the kill")
    # An exposed port, which the new gateway opens again on the same host port.
    fx.exec("mkdir -p /srv/restart; echo %d > /srv/restart/restart-mark; (cd /srv/restart && "
            "exec python3 -m http.server 8100) >/dev/null 2>&1 </dev/null &" % os.getpid())
    fx.exec("for i in $(seq 100); do curl -sf localhost:8100/restart-mark && exit 0; "
            "sleep 0.2; done; exit 1")
    exposed = fx.api("POST", "/v1/sandboxes/%s/ports" % fx.sandbox, {"guest_port": 8100},
                     expect=201)["host_port"]
    check_eq(exposed_get(exposed), b"%d\n" % os.getpid(), "exposed port before the kill")
    before = fx.api("GET", "/v1/sandboxes/" + fx.sandbox)
    qemu = fx.qemu_pid()
    check(fixture.pid_alive(qemu), "QEMU %d not running before the kill", qemu)

    with fixture.locked():
        info = fixture.load_info()
        gw = info["gateway_pid"]
        check(fixture.pid_alive(gw), "gateway %d not running", gw)
        os.kill(gw, signal.SIGKILL)
        fixture.wait_until(lambda: fixture.gateway_exit_status(gw) is not None, 15)
        status = fixture.gateway_exit_status(gw)
        check_eq(status, -signal.SIGKILL, "gateway exit status after SIGKILL")
        check(not fixture.healthy(fx.port, timeout=2), "something still answers on port %d",
              fx.port)

        # The VM outlives its gateway.
        time.sleep(1)
        check(fixture.pid_alive(qemu), "QEMU %d died with the gateway", qemu)

        pid, sup = fixture.start_gateway(fx.port)
        info.update(gateway_pid=pid, supervisor_pid=sup)
        fixture.save_info(info)

    deadline = time.monotonic() + 120
    while True:
        sb = fx.api("GET", "/v1/sandboxes/" + fx.sandbox)
        if sb["status"] == "ready" or time.monotonic() > deadline:
            break
        check(sb["status"] == "starting", "sandbox after restart: %r", sb)
        time.sleep(0.5)
    check_eq(sb["status"], "ready", "status after restart")
    for key in ("created_at", "expires_at", "env_vars", "vcpus", "mem_mib", "timeout_minutes"):
        check_eq(sb.get(key), before.get(key), "%s after restart" % key)
    check_eq(fx.qemu_pid(), qemu, "QEMU pid after restart (a new VM was booted)")

    res = fx.exec('echo "$PH_TEST_GREETING"')
    check_eq(res["stdout"], fixture.SANDBOX_ENV["PH_TEST_GREETING"] + "\n",
             "env var after restart")
    r = fx.req("GET", "/v1/sandboxes/%s/files?path=%s" % (fx.sandbox, PATH))
    check_eq((r.status, r.body), (200, CONTENT), "file written before the kill")
    res = fx.exec("cat %s | wc -c" % PATH, shell="raw")
    check_eq(res["stdout"].strip(), str(len(CONTENT)), "file size in the guest")
    # Policies are back too.
    r = fx.exec_raw("echo %s" % fixture.HOOK_WORD)
    check_eq(r.status, 403, "hook after restart")
    r = fx.exec_raw("true; rm -rf /")
    check_eq(r.status, 403, "deny list after restart")
    marker = "restart-audit-%d" % os.getpid()
    fx.exec("echo " + marker)
    check(fixture.find_audit(lambda a: a.get("command") == "echo " + marker),
          "the new gateway does not write the audit log")
    check_eq([(p["guest_port"], p["host_port"]) for p in
              fx.api("GET", "/v1/sandboxes/%s/ports" % fx.sandbox)["ports"]], [(8100, exposed)],
             "exposed ports after restart")
    check_eq(exposed_get(exposed), b"%d\n" % os.getpid(), "exposed port after the restart")
    fx.api("DELETE", "/v1/sandboxes/%s/ports/8100" % fx.sandbox)
    fx.exec("pkill -f 'http.server 8100'", expect_exit=None)


def restart_gateway(sig, timeout_s):
    """Stops the shared gateway with sig, checks how it exited, starts a new
    one on the same state dir. Returns the old one's exit status."""
    with fixture.locked():
        info = fixture.load_info()
        gw = info["gateway_pid"]
        check(fixture.pid_alive(gw), "gateway %d not running", gw)
        os.kill(gw, sig)
        fixture.wait_until(lambda: fixture.gateway_exit_status(gw) is not None, timeout_s)
        status = fixture.gateway_exit_status(gw)
        pid, sup = fixture.start_gateway(fx.port)
        info.update(gateway_pid=pid, supervisor_pid=sup)
        fixture.save_info(info)
    return status


def test_sigterm_during_boot():
    # A boot job still runs on a worker when SIGTERM comes: the gateway
    # finishes it before it frees what the job uses (under ASan a
    # use-after-free aborts the gateway, which shows in its exit status),
    # exits 0, and the next gateway serves the sandbox.
    r = fx.req("POST", "/v1/sandboxes", {"wait": False, "timeout_minutes": 10})
    check_eq(r.status, 201, "create without waiting")
    sid = r.json()["id"]
    check_eq(r.json()["status"], "starting", "status right after create")
    time.sleep(1)
    status = restart_gateway(signal.SIGTERM, 300)
    check_eq(status, 0, "gateway exit status after SIGTERM during a boot\n" +
             fixture.tail(fixture.GATEWAY_LOG))
    deadline = time.monotonic() + 300
    while True:
        sb = fx.api("GET", "/v1/sandboxes/" + sid)
        if sb["status"] != "starting" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    check_eq(sb["status"], "ready", "sandbox booted across the restart")
    res = fx.exec("echo across", sandbox=sid)
    check_eq(res["stdout"], "across\n", "command in the sandbox after the restart")
    check_eq(fx.delete_sandbox(sid).status, 200, "delete")


def test_stopped_across_restart():
    # A stopped sandbox (its disk kept, no QEMU) stays stopped under the new
    # gateway, is not reaped as unrecorded, and starts from its disk.
    sid = fx.create_sandbox(timeout_minutes=20)["id"]
    fx.exec("echo across-%d > /root/stopped.txt" % os.getpid(), sandbox=sid)
    check_eq(fx.api("POST", "/v1/sandboxes/%s/stop" % sid, {})["status"], "stopped", "stop")
    check_eq(restart_gateway(signal.SIGTERM, 120), 0, "gateway exit status")
    check_eq(fx.api("GET", "/v1/sandboxes/" + sid)["status"], "stopped", "status after restart")
    check(os.path.exists(os.path.join(fx.run_dir(sid), "disk.qcow2")),
          "the stopped sandbox's disk is gone after the restart")
    got = fx.api("POST", "/v1/sandboxes/%s/start" % sid, {}, timeout=fixture.BOOT_TIMEOUT_S + 60)
    check_eq(got["status"], "ready", "start after the restart")
    check_eq(fx.exec("cat /root/stopped.txt", sandbox=sid)["stdout"],
             "across-%d\n" % os.getpid(), "file written before the stop and the restart")
    check_eq(fx.delete_sandbox(sid).status, 200, "delete")


def paused_across_restart(body, sig, want_exit, to_disk):
    """Pauses a new sandbox with body, restarts the gateway with sig, and
    checks it is still paused there, then resumes it."""
    sid = fx.create_sandbox(timeout_minutes=20)["id"]
    fx.exec("echo paused-%d > /root/paused.txt" % os.getpid(), sandbox=sid)
    got = fx.api("POST", "/v1/sandboxes/%s/pause" % sid, body, timeout=300)
    check_eq(got["status"], "paused", "pause %r" % body)
    check_eq(restart_gateway(sig, 120), want_exit, "gateway exit status")
    fixture.wait_until(lambda: fx.api("GET", "/v1/sandboxes/" + sid)["status"] != "starting", 60)
    got = fx.api("GET", "/v1/sandboxes/" + sid)
    check_eq((got["status"], got.get("paused_to_disk")), ("paused", to_disk),
             "status after restart")
    if to_disk:
        check(os.path.exists(os.path.join(fx.run_dir(sid), "memory.state")),
              "the saved memory is gone after the restart")
    got = fx.api("POST", "/v1/sandboxes/%s/resume" % sid, {}, timeout=300)
    check_eq(got["status"], "ready", "resume after the restart")
    check_eq(fx.exec("cat /root/paused.txt", sandbox=sid)["stdout"],
             "paused-%d\n" % os.getpid(), "file written before the pause and the restart")
    check_eq(fx.delete_sandbox(sid).status, 200, "delete")


def test_paused_across_restart():
    # A paused sandbox (QEMU running, its vCPUs stopped) is re-attached as
    # paused: the new gateway does not wait for its guest to answer, and a
    # resume connects it.
    paused_across_restart({}, signal.SIGTERM, 0, False)


def test_paused_to_disk_across_restart():
    # Paused to disk, a sandbox has no QEMU: the new gateway keeps its record
    # and its saved memory (not reaped as unrecorded), and resume loads it.
    paused_across_restart({"to_disk": True}, signal.SIGKILL, -signal.SIGKILL, True)


def test_unrecorded_run_dir_reaped():
    # A run dir that no record names (its record never written, or removed
    # before its VM was gone): the next gateway ends its process and removes
    # it. The stand-in process names the run dir and "qemu" on its command
    # line, as a real QEMU of that dir does; a process that does not is
    # left alone.
    run_dir = os.path.join(fixture.STATE_DIR, "vms", "vm-orphan%d" % os.getpid())
    os.makedirs(run_dir)
    code = "import time; time.sleep(600)"
    orphan = subprocess.Popen([sys.executable, "-c", code, "qemu", run_dir],
                              stdin=subprocess.DEVNULL, start_new_session=True)
    bystander = subprocess.Popen([sys.executable, "-c", code, "not-it"],
                                 stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        with open(os.path.join(run_dir, "qemu.pid"), "w") as f:
            f.write("%d\n" % orphan.pid)
        status = restart_gateway(signal.SIGTERM, 120)
        check_eq(status, 0, "gateway exit status")
        fixture.wait_until(lambda: orphan.poll() is not None, 30)
        check(orphan.poll() is not None, "the unrecorded VM's process still runs")
        check(not os.path.exists(run_dir), "the unrecorded run dir is still there")
        check(bystander.poll() is None, "a process that is not the dir's QEMU was killed")
        # The recorded sandbox is re-attached, not reaped.
        fixture.wait_until(
            lambda: fx.api("GET", "/v1/sandboxes/" + fx.sandbox)["status"] != "starting", 120)
        check_eq(fx.api("GET", "/v1/sandboxes/" + fx.sandbox)["status"], "ready",
                 "the recorded sandbox after the restart")
    finally:
        for p in (orphan, bystander):
            if p.poll() is None:
                p.kill()
            p.wait()


fixture.run([test_kill_and_reattach, test_sigterm_during_boot, test_stopped_across_restart,
             test_paused_across_restart, test_paused_to_disk_across_restart,
             test_unrecorded_run_dir_reaped])
