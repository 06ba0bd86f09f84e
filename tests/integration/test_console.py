#!/usr/bin/python3
"""console: a guest that floods its serial console does not fill the host's
disk. The gateway keeps each console log under console_log_max_mib (1 MiB
on the test gateway): the oldest part goes, the newest stays, and the log
keeps growing from there."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture  # noqa: E402
from fixture import check, check_eq  # noqa: E402

fx = fixture.ensure()
LIMIT = fixture.CONSOLE_LOG_MAX_MIB << 20
# 3 MiB of numbered lines, written to the console by the guest's root.
LINES = 15000
FLOOD = ("for i in $(seq 1 %d); do printf 'flood %%06d %%0200d\\n' $i 0; done > /dev/console; "
         "echo done" % LINES)
sid = None


def log_path():
    return os.path.join(fx.run_dir(sid), "serial.log")


def test_flood_is_capped():
    global sid
    sid = fx.create_sandbox(timeout_minutes=20)["id"]
    t0 = time.monotonic()
    res = fx.exec(FLOOD, sandbox=sid, timeout=300)
    check_eq(res["stdout"], "done\n", "the flood ran")
    fixture.log("console: %d lines written in %.1f s" % (LINES, time.monotonic() - t0))
    # The gateway looks every 10 s.
    fixture.wait_until(lambda: os.path.getsize(log_path()) <= LIMIT, 60)
    size = os.path.getsize(log_path())
    check(size <= LIMIT, "serial.log is %d bytes, over the %d limit", size, LIMIT)
    with open(log_path(), "rb") as f:
        data = f.read()
    last = b"flood %06d " % LINES
    check(last in data, "the newest line is kept (the last 200 bytes: %r)", data[-200:])
    check(b"flood %06d " % 1 not in data, "the oldest line is gone")
    fixture.log("console: serial.log is %d bytes after the cap" % size)


def test_log_goes_on():
    # The guest's next output lands after what was kept.
    fx.exec("echo after-the-cap-marker > /dev/console", sandbox=sid)
    fixture.wait_until(lambda: b"after-the-cap-marker" in open(log_path(), "rb").read(), 30)
    r = fx.api("GET", "/v1/sandboxes/%s" % sid)
    check_eq(r.get("status"), "ready", "the sandbox after the flood")
    with open(fixture.GATEWAY_LOG, "rb") as f:
        check(b"console log over 1 MiB" in f.read(), "the gateway said it cut the log")


def test_cleanup():
    check(sid, "no sandbox (the first case failed)")
    check_eq(fx.delete_sandbox(sid).status, 200, "DELETE of the console test's sandbox")


fixture.run([test_flood_is_capped, test_log_goes_on, test_cleanup])
