#!/usr/bin/python3
"""Last SDK test: deletes what is left on the fixture's gateway, stops it,
and checks that no QEMU of this scratch dir survives."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sdkfixture  # noqa: E402
from sdkfixture import check  # noqa: E402

import porthole  # noqa: E402


def test_teardown():
    info = sdkfixture.read_json(sdkfixture.INFO_PATH)
    if info and sdkfixture.pid_alive(info.get("pid") or 0):
        c = porthole.Client(info["url"], info["token"])
        try:
            for sb in c.json("GET", "/v1/sandboxes")["sandboxes"]:
                c.request("DELETE", "/v1/sandboxes/" + sb["id"], timeout=300)
            for s in c.json("GET", "/v1/browser/sessions")["sessions"]:
                c.request("DELETE", "/v1/browser/sessions/" + s["session_id"], timeout=300)
        except porthole.PortholeError as e:
            sdkfixture.log("teardown: %s" % e)
        os.kill(info["pid"], signal.SIGTERM)
        deadline = time.monotonic() + 60
        while sdkfixture.pid_alive(info["pid"]) and time.monotonic() < deadline:
            time.sleep(0.2)
    sdkfixture.kill_leftovers()
    check(not sdkfixture.qemu_pids(), "QEMU left running: %r", sdkfixture.qemu_pids())
    check(not sdkfixture.gateway_pids(), "gateway left running")
    if os.path.exists(sdkfixture.INFO_PATH):
        os.unlink(sdkfixture.INFO_PATH)


if __name__ == "__main__":
    sdkfixture.run([test_teardown])
