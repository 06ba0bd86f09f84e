#!/usr/bin/python3
"""pause: a paused sandbox's vCPUs stop (QEMU's CPU time stays flat, the
guest's processes make no progress), commands are refused until it resumes,
and after resume its processes carry on where they were, with the guest's
clock set to the host's. Paused to disk, its QEMU is gone and the same
processes carry on after resume."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture  # noqa: E402
from fixture import check, check_eq, check_error  # noqa: E402

fx = fixture.ensure()
PAUSE_S = 5
TICK_S = 0.2


def cpu_seconds(pid):
    """utime + stime of a process, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_pause_resume():
    sid = fx.create_sandbox(timeout_minutes=20)["id"]
    try:
        # A counter that ticks five times a second, and a busy loop that
        # keeps a vCPU at a full core while it runs (an idle guest uses
        # next to nothing, paused or not).
        fx.exec("(i=0; while :; do i=$((i+1)); echo $i > /root/count; sleep %s; done) "
                ">/dev/null 2>&1 </dev/null & "
                "(while :; do :; done) >/dev/null 2>&1 </dev/null & echo $! > /root/busy.pid"
                % TICK_S, sandbox=sid)
        time.sleep(1)
        before = int(fx.exec("cat /root/count", sandbox=sid)["stdout"])

        got = fx.api("POST", "/v1/sandboxes/%s/pause" % sid, {})
        check_eq(got["status"], "paused", "status in the pause answer")
        check_eq(fx.api("GET", "/v1/sandboxes/" + sid)["status"], "paused", "status shown")
        check_eq(fx.api("POST", "/v1/sandboxes/%s/pause" % sid, {})["status"], "paused",
                 "pausing a paused sandbox")
        check_error(fx.exec_raw("echo no", sandbox=sid), 409, "conflict", "exec while paused",
                    message_contains="paused")
        check_error(fx.req("POST", "/v1/sandboxes/%s/stop" % sid, {}), 409, "conflict",
                    "stop while paused")

        pid = fx.qemu_pid(sid)
        cpu0 = cpu_seconds(pid)
        time.sleep(PAUSE_S)
        used = cpu_seconds(pid) - cpu0
        fixture.log("paused QEMU used %.2f s of CPU in %d s" % (used, PAUSE_S))
        check(used < 0.1 * PAUSE_S, "a paused QEMU used %.2f s of CPU in %d s", used, PAUSE_S)

        got = fx.api("POST", "/v1/sandboxes/%s/resume" % sid, {}, timeout=120)
        check_eq(got["status"], "ready", "status in the resume answer")
        res = fx.exec("cat /root/count; date +%s.%N; kill $(cat /root/busy.pid)", sandbox=sid)
        after, guest_now = res["stdout"].split()
        ticks = int(after) - before
        # PAUSE_S of running would have been PAUSE_S / TICK_S ticks.
        check(ticks < PAUSE_S / TICK_S / 2, "the counter went on while paused: %d ticks", ticks)
        check(abs(float(guest_now) - time.time()) < 2, "the guest's clock after resume: %s, "
              "host %.3f", guest_now, time.time())
        time.sleep(1)
        later = int(fx.exec("cat /root/count", sandbox=sid)["stdout"])
        check(later > int(after), "the counter runs again after resume (%d, then %d)",
              int(after), later)
        check_eq(fx.api("POST", "/v1/sandboxes/%s/resume" % sid, {})["status"], "ready",
                 "resuming a running sandbox")
    finally:
        check_eq(fx.delete_sandbox(sid).status, 200, "delete")


def test_pause_to_disk():
    sid = fx.create_sandbox(timeout_minutes=20)["id"]
    try:
        fx.exec("(i=0; while :; do i=$((i+1)); echo $i > /root/count; sleep %s; done) "
                ">/dev/null 2>&1 </dev/null & echo kept-%d > /root/on-disk.txt"
                % (TICK_S, os.getpid()), sandbox=sid)
        pid = fx.qemu_pid(sid)
        got = fx.api("POST", "/v1/sandboxes/%s/pause" % sid, {"to_disk": True}, timeout=300)
        check_eq((got["status"], got.get("paused_to_disk")), ("paused", True), "pause to disk")
        check(not fixture.pid_alive(pid), "QEMU (pid %d) still runs after a pause to disk", pid)
        state = os.path.join(fx.run_dir(sid), "memory.state")
        check(os.path.getsize(state) > 0, "no saved memory at %s", state)
        fixture.log("saved memory: %.1f MiB" % (os.path.getsize(state) / 1048576))
        check_error(fx.exec_raw("echo no", sandbox=sid), 409, "conflict", "exec while on disk",
                    message_contains="paused")
        time.sleep(2)

        got = fx.api("POST", "/v1/sandboxes/%s/resume" % sid, {}, timeout=300)
        check_eq(got["status"], "ready", "resume from disk")
        check(not os.path.exists(state), "the saved memory outlived the resume")
        res = fx.exec("cat /root/on-disk.txt /root/count; date +%s.%N", sandbox=sid)
        text, count, guest_now = res["stdout"].split()
        check_eq(text, "kept-%d" % os.getpid(), "a file written before the pause")
        check(abs(float(guest_now) - time.time()) < 2, "the guest's clock after resume: %s",
              guest_now)
        # The process that ran before the pause is the one still counting.
        time.sleep(1)
        later = int(fx.exec("cat /root/count", sandbox=sid)["stdout"])
        check(later > int(count), "the counter runs on after a resume from disk")
    finally:
        check_eq(fx.delete_sandbox(sid).status, 200, "delete")


def test_delete_while_paused():
    sid = fx.create_sandbox(timeout_minutes=20)["id"]
    pid = fx.qemu_pid(sid)
    check_eq(fx.api("POST", "/v1/sandboxes/%s/pause" % sid, {})["status"], "paused", "pause")
    check_eq(fx.delete_sandbox(sid).status, 200, "delete a paused sandbox")
    check(not fixture.pid_alive(pid), "its QEMU (pid %d) still runs", pid)
    check(not os.path.exists(fx.run_dir(sid)), "its run dir is still there")


def test_unknown_and_bad_body():
    check_error(fx.req("POST", "/v1/sandboxes/sb-nosuch/pause", {}), 404, "not_found", "unknown")
    check_error(fx.req("POST", "/v1/sandboxes/%s/pause" % fx.sandbox, {"to": 1}), 400,
                "bad_request", "an unknown field")
    check_error(fx.req("POST", "/v1/sandboxes/%s/pause" % fx.sandbox, {"to_disk": "yes"}), 400,
                "bad_request", "to_disk not a boolean")


fixture.run([test_pause_resume, test_pause_to_disk, test_delete_while_paused,
             test_unknown_and_bad_body])
