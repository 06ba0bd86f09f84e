#!/usr/bin/python3
"""lanes: long commands hold none of the threads that other work needs.
Eight commands that run for a while fill every SSH session of one sandbox
(and, before the gateway split its worker pools, every worker thread); a
file written to and read from another sandbox, and that sandbox's delete,
complete while all eight still run."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture  # noqa: E402
from fixture import check, check_eq  # noqa: E402

fx = fixture.ensure()
LONG = 8          # the gateway's worker threads before the split, and a VM's SSH sessions
SLEEP_S = 30


def test_control_work_beside_long_commands():
    busy = fx.create_sandbox()["id"]
    other = fx.create_sandbox()["id"]
    ended = []            # (monotonic time, HTTP status) of each long command
    lock = threading.Lock()

    def long_command():
        r = fx.exec_raw("sleep %d" % SLEEP_S, timeout=SLEEP_S + 60, sandbox=busy)
        with lock:
            ended.append((time.monotonic(), r.status))

    threads = [threading.Thread(target=long_command) for _ in range(LONG)]
    try:
        for t in threads:
            t.start()
        # Time for all eight requests to be taken and their commands started.
        time.sleep(5)
        with lock:
            check_eq(ended, [], "no long command ended before the control work")
        path = "/v1/sandboxes/%s/files?path=/root/lanes.txt" % other
        r = fx.req("PUT", path, b"beside the long ones",
                   headers={"Content-Type": "application/octet-stream"})
        check(r.status in (200, 201, 204), "file write: HTTP %d %r", r.status, r.body[:300])
        r = fx.req("GET", path)
        check_eq(r.status, 200, "file read")
        check_eq(r.body, b"beside the long ones", "file content")
        r = fx.delete_sandbox(other)
        check(r.status in (200, 202, 204), "delete: HTTP %d %r", r.status, r.body[:300])
        other = None
        done_at = time.monotonic()
        with lock:
            check_eq(ended, [], "the control work waited for a long command to end")
    finally:
        for t in threads:
            t.join()
        if other:
            fx.delete_sandbox(other)
        fx.delete_sandbox(busy)
    check_eq(sorted(s for _, s in ended), [200] * LONG, "every long command completed")
    check(all(t > done_at for t, _ in ended), "a long command ended before the control work")


if __name__ == "__main__":
    fixture.run([test_control_work_beside_long_commands])
