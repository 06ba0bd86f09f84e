#!/usr/bin/python3
"""delete: DELETE answers once the VM is gone: no QEMU, no run dir, no port,
no record."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture  # noqa: E402
from fixture import check, check_eq, check_error  # noqa: E402

fx = fixture.ensure()


def snapshot(sid):
    pid = fx.qemu_pid(sid)
    run_dir = fx.run_dir(sid)
    port = fx.ssh_port(sid)
    check(fixture.pid_alive(pid), "QEMU pid %d of %s is not running", pid, sid)
    check(any(fx.state_dir in a for a in fixture.cmdline(pid)),
          "pid %d does not look like %s's QEMU: %r", pid, sid, fixture.cmdline(pid)[:3])
    check(os.path.isdir(run_dir), "run dir %s missing", run_dir)
    check(isinstance(port, int) and port > 0, "ssh_port in state.db: %r", port)
    check(fixture.port_listening(port), "nothing listens on ssh port %d before delete", port)
    return pid, run_dir, port


def check_gone(sid, pid, run_dir, port):
    # DELETE answered after the VM was gone: no waiting here beyond a
    # moment for the kernel to reap (a zombie would still count as there).
    gone = fixture.wait_until(lambda: not fixture.pid_alive(pid), 2)
    check(gone, "QEMU pid %d still exists after DELETE returned (%r)", pid,
          fixture.cmdline(pid)[:2])
    check(not os.path.exists(run_dir), "run dir %s still exists: %r", run_dir,
          os.listdir(run_dir) if os.path.isdir(run_dir) else None)
    check(not fixture.port_listening(port), "something still listens on ssh port %d", port)
    check_error(fx.req("GET", "/v1/sandboxes/" + sid), 404, "not_found", "GET after DELETE")
    check_error(fx.req("DELETE", "/v1/sandboxes/" + sid), 404, "not_found", "second DELETE")
    check_error(fx.exec_raw("true", sandbox=sid), 404, "not_found", "exec after DELETE")
    check(fx.record(sid) is None, "state.db still has a record for %s", sid)
    ids = [s["id"] for s in fx.api("GET", "/v1/sandboxes")["sandboxes"]]
    check(sid not in ids, "%s still listed", sid)


def test_delete_idle():
    sb = fx.create_sandbox(timeout_minutes=20)
    sid = sb["id"]
    check_eq(fx.api("GET", "/v1/sandboxes/" + sid)["status"], "ready", "status before delete")
    fx.exec("echo alive", sandbox=sid)
    pid, run_dir, port = snapshot(sid)
    r = fx.delete_sandbox(sid)
    check_eq(r.status, 200, "DELETE status (%r)" % r.body[:300])
    check_eq(r.json(), {"id": sid, "status": "deleted"}, "DELETE reply")
    check_gone(sid, pid, run_dir, port)


def test_delete_while_running():
    # A command still running does not hold the delete up for its own
    # timeout: it fails at once and the delete completes.
    sb = fx.create_sandbox(timeout_minutes=20)
    sid = sb["id"]
    pid, run_dir, port = snapshot(sid)
    result = {}

    def long_exec():
        t0 = time.monotonic()
        try:
            result["resp"] = fx.exec_raw("sleep 120", sandbox=sid, timeout=150)
        except Exception as e:
            result["resp"] = e
        result["elapsed"] = time.monotonic() - t0

    t = threading.Thread(target=long_exec)
    t.start()
    # Give the command time to start; nothing else is asked of the sandbox
    # meanwhile, so the delete is what ends it.
    time.sleep(5)
    check(t.is_alive(), "the long command ended early: %r", result.get("resp"))
    t0 = time.monotonic()
    r = fx.delete_sandbox(sid)
    took = time.monotonic() - t0
    t.join(180)
    check_eq(r.status, 200, "DELETE during a command (%r)" % r.body[:300])
    check(took < 60, "DELETE during a command took %.1f s", took)
    resp = result.get("resp")
    check(isinstance(resp, fixture.Response) and resp.status >= 400,
          "the running command's reply: %r", resp)
    check(result["elapsed"] < 100, "the running command's reply came after %.1f s",
          result["elapsed"])
    check_gone(sid, pid, run_dir, port)


fixture.run([test_delete_idle, test_delete_while_running])
