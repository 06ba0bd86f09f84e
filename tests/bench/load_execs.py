#!/usr/bin/python3
"""Exec load benchmark: prints numbers, asserts nothing.

Holds --execs (default 50) commands running at once through the API,
--long of them (default 20) `sleep 600`, the rest short commands issued
again as soon as each returns, spread over --sandboxes (default 7)
sandboxes. For --window-s (default 120) it meanwhile measures what other
users of the gateway get:

  healthz     GET /healthz, every 0.2 s
  status      GET /v1/status with the admin token, every 0.2 s
  cdp         a CDP round trip to a browser session: GET {cdp_url}/json/version
  create+del  a sandbox created (wait: true) and deleted, one after another

and prints p50/p99/max and failures of each, the short commands' count and
latency, and, at the end, how long the long commands took to come back once
their sandboxes were deleted (they must not outlive them).

Loopback only: starts its own gateway on 127.0.0.1 with a temporary state
dir (templates on, a browser pool of 1) and stops it, and every QEMU of it,
at the end.

Usage: load_execs.py [--execs N] [--long N] [--sandboxes N] [--window-s S]
                     [--json] [--exe PATH]
"""

import argparse
import http.client
import json
import os
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sandbox_bench import Api, Gateway, find_exe, percentile, progress  # noqa: E402

PROBE_INTERVAL_S = 0.2
LONG_COMMAND = "sleep 600"
SHORT_COMMAND = "echo ok"


class Series:
    """Latencies (s) and failures of one kind of request, thread-safe."""

    def __init__(self):
        self.lock = threading.Lock()
        self.times = []
        self.failures = []

    def add(self, secs, error=None):
        with self.lock:
            if error is None:
                self.times.append(secs)
            else:
                self.failures.append(error)

    def summary(self):
        with self.lock:
            t = sorted(self.times)
            out = {"count": len(t), "failures": len(self.failures)}
            if t:
                out.update(p50_ms=round(percentile(t, 50) * 1000, 1),
                           p99_ms=round(percentile(t, 99) * 1000, 1),
                           max_ms=round(t[-1] * 1000, 1))
            if self.failures:
                out["first_failure"] = str(self.failures[0])[:200]
            return out


def timed(series, fn):
    t0 = time.monotonic()
    try:
        fn()
        series.add(time.monotonic() - t0)
    except Exception as e:  # noqa: BLE001 - a failure is a figure here
        series.add(time.monotonic() - t0, e)


def plain_get(url, timeout=30):
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
    try:
        conn.request("GET", u.path + ("?" + u.query if u.query else ""))
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise RuntimeError("GET %s: HTTP %d %s" % (u.path, resp.status, body[:200]))
        return body
    finally:
        conn.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--execs", type=int, default=50)
    ap.add_argument("--long", type=int, default=20)
    ap.add_argument("--sandboxes", type=int, default=7)
    ap.add_argument("--window-s", type=float, default=120)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--exe")
    a = ap.parse_args()
    if a.long > a.execs:
        sys.exit("load_execs: --long cannot exceed --execs")

    gw = Gateway(find_exe(a.exe), {"browser_pool": 1, "max_sandboxes": a.sandboxes + 4})
    api = Api(gw.url, gw.token)
    stop = threading.Event()
    threads = []
    sandboxes = []
    try:
        progress("gateway %s; creating %d sandboxes and a browser session" % (gw.url, a.sandboxes))
        for _ in range(a.sandboxes):
            sandboxes.append(api.call("POST", "/v1/sandboxes", {"wait": True},
                                      timeout=600, expect=(201,))["id"])
        session = api.call("POST", "/v1/browser/sessions", {"mode": "headless"}, timeout=900,
                           expect=(201,))
        cdp_version = session["cdp_url"].replace("ws://", "http://", 1).rstrip("/")
        cdp_version += "/json/version"
        plain_get(cdp_version)

        long_done = {}  # index -> (monotonic end, outcome)
        long_lock = threading.Lock()

        def long_exec(i, sid):
            c = Api(gw.url, gw.token)
            try:
                c.call("POST", "/v1/sandboxes/%s/exec" % sid,
                       {"command": LONG_COMMAND, "timeout": 700}, timeout=800)
                outcome = "returned"
            except Exception as e:  # noqa: BLE001
                outcome = "error: %s" % str(e)[:120]
            with long_lock:
                long_done[i] = (time.monotonic(), outcome)
            c.close()

        short = Series()

        def short_loop(sid):
            c = Api(gw.url, gw.token)
            while not stop.is_set():
                timed(short, lambda: c.call("POST", "/v1/sandboxes/%s/exec" % sid,
                                            {"command": SHORT_COMMAND, "shell": "raw",
                                             "timeout": 60}, timeout=180))
            c.close()

        for i in range(a.execs):
            sid = sandboxes[i % len(sandboxes)]
            t = threading.Thread(target=long_exec if i < a.long else short_loop,
                                 args=(i, sid) if i < a.long else (sid,), daemon=True)
            t.start()
            threads.append(t)
        progress("%d commands running (%d long); measuring for %.0f s" %
                 (a.execs, a.long, a.window_s))

        probes = {k: Series() for k in ("healthz", "status", "cdp", "create+delete")}

        def probe_loop(name, fn, interval):
            c = Api(gw.url, gw.token)
            while not stop.is_set():
                timed(probes[name], lambda: fn(c))
                stop.wait(interval)
            c.close()

        def create_delete(c):
            sid = c.call("POST", "/v1/sandboxes", {"wait": True}, timeout=600,
                         expect=(201,))["id"]
            c.call("DELETE", "/v1/sandboxes/%s" % sid, timeout=300, expect=(200, 202, 204))

        probe_threads = [
            threading.Thread(target=probe_loop, args=(
                "healthz", lambda c: plain_get(gw.url + "/healthz"), PROBE_INTERVAL_S)),
            threading.Thread(target=probe_loop, args=(
                "status", lambda c: c.call("GET", "/v1/status", timeout=30), PROBE_INTERVAL_S)),
            threading.Thread(target=probe_loop, args=(
                "cdp", lambda c: plain_get(cdp_version), PROBE_INTERVAL_S)),
            threading.Thread(target=probe_loop, args=("create+delete", create_delete, 0)),
        ]
        for t in probe_threads:
            t.start()
        time.sleep(a.window_s)
        with long_lock:
            long_early = dict(long_done)
        stop.set()
        for t in probe_threads:
            t.join(600)

        progress("deleting the sandboxes under the long commands")
        t_del = time.monotonic()
        for sid in sandboxes:
            api.call("DELETE", "/v1/sandboxes/%s" % sid, timeout=300, expect=(200, 202, 204))
        sandboxes = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with long_lock:
                if len(long_done) == a.long:
                    break
            time.sleep(0.2)
        with long_lock:
            back = [end - t_del for i, (end, _) in long_done.items() if i not in long_early]
            outcomes = sorted({o.split(":")[0] for _, o in long_done.values()})
        result = {
            "execs": a.execs, "long": a.long, "sandboxes": a.sandboxes, "window_s": a.window_s,
            "long_ended_during_window": len(long_early),
            "long_back_after_delete": len(back),
            "long_back_after_delete_max_s": round(max(back), 2) if back else None,
            "long_outcomes": outcomes,
            "short_execs": short.summary(),
            **{name: s.summary() for name, s in probes.items()},
        }
        if a.json:
            print(json.dumps(result, indent=2))
        else:
            print("load_execs: %d commands at once (%d x `%s`) on %d sandboxes for %.0f s" %
                  (a.execs, a.long, LONG_COMMAND, a.sandboxes, a.window_s))
            for name in ("short_execs", "healthz", "status", "cdp", "create+delete"):
                s = result[name]
                print("  %-13s n=%-5d failures=%-3d p50=%s ms p99=%s ms max=%s ms%s" % (
                    name, s["count"], s["failures"], s.get("p50_ms"), s.get("p99_ms"),
                    s.get("max_ms"),
                    "  (first failure: %s)" % s["first_failure"] if s["failures"] else ""))
            print("  long commands: %d ended during the window; after their sandboxes were "
                  "deleted %d of %d came back, the last after %s s (%s)" % (
                      result["long_ended_during_window"], result["long_back_after_delete"],
                      a.long - result["long_ended_during_window"],
                      result["long_back_after_delete_max_s"], ", ".join(outcomes)))
    finally:
        stop.set()
        for sid in sandboxes:
            try:
                api.call("DELETE", "/v1/sandboxes/%s" % sid, timeout=300,
                         expect=(200, 202, 204, 404))
            except Exception as e:  # noqa: BLE001
                progress("cleanup: %s" % e)
        api.close()
        gw.stop()


if __name__ == "__main__":
    main()
