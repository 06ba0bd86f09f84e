#!/usr/bin/python3
"""teardown (runs last): delete every sandbox, stop the gateway with SIGTERM,
and check it exits 0 and leaves no QEMU behind."""
import contextlib
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture  # noqa: E402
from fixture import check, check_eq  # noqa: E402


def test_teardown():
    with fixture.locked():
        info = fixture.load_info()
        if not info or not info.get("gateway_pid") or not fixture.pid_alive(info["gateway_pid"]):
            leftovers = fixture.qemu_pids()
            fixture.kill_leftovers(info)
            check(not leftovers, "no gateway running, yet QEMU processes were left: %r",
                  leftovers)
            fixture.log("no shared gateway running; nothing to tear down")
            return
        fx = fixture.Fixture(info)
        gw = info["gateway_pid"]
        try:
            sandboxes = fx.api("GET", "/v1/sandboxes")["sandboxes"]
            for sb in sandboxes:
                t0 = time.monotonic()
                r = fx.delete_sandbox(sb["id"])
                check(r.status in (200, 404), "DELETE %s: %r", sb["id"], r)
                fixture.log("deleted %s (%s) in %.1f s" % (sb["id"], sb["status"],
                                                          time.monotonic() - t0))
            check_eq(fx.api("GET", "/v1/sandboxes")["sandboxes"], [], "sandboxes after deletes")

            t0 = time.monotonic()
            os.kill(gw, signal.SIGTERM)
            fixture.wait_until(lambda: fixture.gateway_exit_status(gw) is not None, 15,
                               interval=0.1)
            status = fixture.gateway_exit_status(gw)
            check(status is not None, "gateway %d still running 15 s after SIGTERM\n%s", gw,
                  fixture.tail(fixture.GATEWAY_LOG))
            check_eq(status, 0, "gateway exit status after SIGTERM (log:\n%s\n)" %
                     fixture.tail(fixture.GATEWAY_LOG))
            fixture.log("gateway stopped %.1f s after SIGTERM" % (time.monotonic() - t0))
            left = fixture.qemu_pids()
            check(not left, "QEMU processes of %s left after the gateway stopped: %r",
                  fixture.STATE_DIR, [fixture.cmdline(p)[:1] for p in left])
        finally:
            # Whatever happened, the next run starts from nothing.
            fixture.kill_leftovers(info)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(fixture.INFO_PATH)


fixture.run([test_teardown])
