#!/usr/bin/python3
"""timeout: a command past its timeout is killed with its children, the caller
gets 504 timeout, and the sandbox stays usable."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture  # noqa: E402
from fixture import check, check_eq, check_error  # noqa: E402

fx = fixture.ensure()


def sleepers():
    """Guest processes that are a 'sleep 300' (ps lists args only)."""
    res = fx.exec("ps -eo args=", shell="raw")
    return [line for line in res["stdout"].splitlines() if line.strip() == "sleep 300"]


def wait_no_sleepers():
    # The kill is asynchronous in the guest; give it a few seconds at most.
    left = fixture.wait_until(lambda: not sleepers(), 10, interval=0.5)
    return left


def timed_out(shell):
    t0 = time.monotonic()
    r = fx.exec_raw("sleep 300 & sleep 300", shell=shell, timeout=2, http_timeout=120)
    elapsed = time.monotonic() - t0
    check_error(r, 504, "timeout", "exec past its timeout (%s)" % shell)
    check(elapsed < 20, "timeout of 2 s took %.1f s to report", elapsed)
    fx.exec("true")
    check(wait_no_sleepers(), "sleep 300 left running in the guest after a %s timeout: %r",
          shell, sleepers())


def test_timeout_login():
    timed_out("login")


def test_timeout_raw():
    timed_out("raw")


def test_timeout_audited():
    cmd = "sleep 300 & sleep 300 # audit-%d" % os.getpid()
    r = fx.exec_raw(cmd, timeout=1)
    check_error(r, 504, "timeout", "exec past its timeout")
    lines = fixture.find_audit(lambda a: a.get("command") == cmd)
    check(lines, "no audit line for the timed-out command")
    check_eq(lines[-1].get("event"), "error", "audit event of a timeout")
    check_eq((lines[-1].get("error") or {}).get("code"), "timeout", "audit error code")
    check_eq(lines[-1].get("vm_id"), fx.sandbox, "audit vm_id")
    wait_no_sleepers()


def test_output_before_timeout_does_not_hang():
    # A command that writes and then hangs: still killed on time.
    t0 = time.monotonic()
    r = fx.exec_raw("seq 1 100000; sleep 300", timeout=3)
    check_error(r, 504, "timeout", "exec with output past its timeout")
    check(time.monotonic() - t0 < 25, "timeout took %.1f s", time.monotonic() - t0)
    res = fx.exec("echo still-here")
    check_eq(res["stdout"], "still-here\n", "exec after timeout")
    check(wait_no_sleepers(), "sleep 300 left running: %r", sleepers())


def test_endless_output_times_out():
    # A command that never stops printing: its timeout holds all the same.
    t0 = time.monotonic()
    r = fx.exec_raw("yes", shell="raw", timeout=2, http_timeout=120)
    elapsed = time.monotonic() - t0
    check_error(r, 504, "timeout", "exec of yes past its timeout")
    check(elapsed < 25, "timeout of 2 s for yes took %.1f s", elapsed)

    def yes_running():
        out = fx.exec("ps -eo comm=", shell="raw")["stdout"].split()
        return "yes" in out
    check(fixture.wait_until(lambda: not yes_running(), 10, interval=0.5),
          "yes left running in the guest after its timeout")
    res = fx.exec("echo still-here")
    check_eq(res["stdout"], "still-here\n", "exec after the timeout of yes")


fixture.run([test_timeout_login, test_timeout_raw, test_timeout_audited,
             test_output_before_timeout_does_not_hang, test_endless_output_times_out])
