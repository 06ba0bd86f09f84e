#!/usr/bin/python3
"""expiry: a sandbox is deleted once its timeout_minutes are up, not before."""
import datetime
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture  # noqa: E402
from fixture import check, check_eq  # noqa: E402

fx = fixture.ensure()
GRACE_S = 90


def parse_time(s):
    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ"):
        try:
            return datetime.datetime.strptime(s, fmt).replace(
                tzinfo=datetime.timezone.utc).timestamp()
        except ValueError:
            pass
    raise fixture.TestFailure("not a UTC timestamp: %r" % s)


def test_expires():
    sb = fx.create_sandbox(timeout_minutes=1)
    sid = sb["id"]
    created, expires = parse_time(sb["created_at"]), parse_time(sb["expires_at"])
    ready = parse_time(sb["ready_at"])
    check_eq(sb["timeout_minutes"], 1, "timeout_minutes")
    # The timeout counts from the moment the sandbox is ready, not from
    # the request: a slow boot takes nothing from the user's minute.
    check(created <= ready + 1, "ready_at %s before created_at %s", sb["ready_at"],
          sb["created_at"])
    check(59 <= expires - ready <= 61, "expires_at - ready_at = %.1f s", expires - ready)
    pid, run_dir = fx.qemu_pid(sid), fx.run_dir(sid)
    check(fixture.pid_alive(pid), "QEMU of %s not running", sid)
    fx.exec("true", sandbox=sid)

    gone_at = None
    while time.time() < expires + GRACE_S:
        r = fx.req("GET", "/v1/sandboxes/" + sid)
        if r.status == 404:
            gone_at = time.time()
            break
        check_eq(r.status, 200, "GET while waiting for expiry")
        time.sleep(1)
    check(gone_at is not None, "%s still there %d s after it expired at %s: %r", sid, GRACE_S,
          sb["expires_at"], fx.api("GET", "/v1/sandboxes/" + sid) if gone_at is None else None)
    # expires_at has whole seconds; the real deadline is under 1 s later.
    check(gone_at >= expires - 1, "%s deleted %.1f s before its expires_at", sid,
          expires - gone_at)
    fixture.log("expired %.1f s after expires_at" % (gone_at - expires))
    check(fixture.wait_until(lambda: not fixture.pid_alive(pid), 10),
          "QEMU %d still running after expiry", pid)
    check(fixture.wait_until(lambda: not os.path.exists(run_dir), 10),
          "run dir %s still there after expiry", run_dir)
    check(fx.record(sid) is None, "state.db still has %s", sid)


fixture.run([test_expires])
