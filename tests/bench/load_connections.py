#!/usr/bin/python3
"""Connection load benchmark: prints numbers, asserts nothing.

Opens --holders connections (default 2000) to the gateway without a token,
all at once, and holds them for --hold-s (default 20, past the gateway's
unauthenticated_timeout_s) while an admin client keeps asking
GET /v1/sandboxes with the admin token: on one keep-alive connection, and on
a fresh connection per request (the one that needs a slot of the connection
table). Prints what became of the held connections (still open at the end,
refused with a 429 or 503, closed by the gateway, failed to connect) and the
admin requests' p50/p99/max and failures before, during and after.

--mode public makes each holder ask GET /healthz (no token) and keep the
connection; --reconnect makes each holder the gateway closed or refused
connect again at once (a flood that lasts); --as-uid UID (root only) runs
the holders as another local user, whose connections the gateway bounds per
client (its own user has no per-client bound).

Loopback only: starts its own gateway on 127.0.0.1 (no pool, no templates:
no guest boots) unless --url names one on loopback (token in
PORTHOLE_TOKEN). Raises RLIMIT_NOFILE as needed.

Usage: load_connections.py [--holders N] [--hold-s S] [--mode idle|public]
           [--reconnect] [--as-uid UID] [--max-connections N]
           [--per-client N] [--unauth-timeout-s S] [--json] [--exe PATH]
"""

import argparse
import collections
import errno
import http.client
import ipaddress
import json
import os
import resource
import selectors
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

if __file__ != "<stdin>":  # the holders' child runs from stdin, without the tree
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from sandbox_bench import Gateway, find_exe, percentile, progress  # noqa: E402

CONNECT_TIMEOUT_S = 10
ADMIN_TIMEOUT_S = 10


def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            sys.exit("bench: RLIMIT_NOFILE hard limit %d is below the %d needed" % (hard, want))
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


# ---- the holders (a child process, maybe as another user) ------------------


def status_of(buf):
    if buf.startswith(b"HTTP/1.") and len(buf) >= 12:
        try:
            return int(buf[9:12])
        except ValueError:
            pass
    return None


def run_holders(port, n, hold_s, mode, reconnect):
    """Prints "opened" once every first connect has finished, then one JSON
    line with the outcome. Runs from stdin, as another user maybe: nothing
    from the tree."""
    raise_nofile(n + 64)
    sel = selectors.DefaultSelector()
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    outcome = collections.Counter()
    closed_after = []  # seconds from connect until the gateway closed it, unasked
    open_at = []  # (second, open connections)
    first_wave = {"left": n}
    attempts = 0

    def open_one(first):
        nonlocal attempts
        attempts += 1
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        err = s.connect_ex(("127.0.0.1", port))
        h = {"state": "connecting", "t": time.monotonic(), "buf": b"", "first": first}
        if err not in (0, errno.EINPROGRESS):
            s.close()
            done(None, h, "connect_failed")
            return
        sel.register(s, selectors.EVENT_WRITE, h)

    def done(s, h, what):
        if s is not None:
            sel.unregister(s)
            s.close()
        outcome[what] += 1
        if h["first"] and h["state"] == "connecting":
            first_wave["left"] -= 1
        h["state"] = "done"
        if reconnect and time.monotonic() < end:
            open_one(False)

    t0 = time.monotonic()
    end = t0 + hold_s
    for _ in range(n):
        open_one(True)
    said_opened = False
    next_sample = t0 + 1
    while time.monotonic() < end:
        now = time.monotonic()
        for key, _ in sel.select(0.05):
            s, h = key.fileobj, key.data
            if h["state"] == "connecting":
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    done(s, h, "connect_failed")
                    continue
                if h["first"]:
                    first_wave["left"] -= 1
                h["state"], h["t"] = "open", now
                if mode == "public":
                    try:
                        s.send(request)
                    except OSError:
                        pass
                sel.modify(s, selectors.EVENT_READ, h)
                continue
            try:
                data = s.recv(65536)
            except ConnectionResetError:
                done(s, h, "reset")
                continue
            if data:
                h["buf"] = (h["buf"] + data)[:64]
                continue
            status = status_of(h["buf"])
            if status in (429, 503):
                done(s, h, "refused_%d" % status)
            else:
                closed_after.append(now - h["t"])
                done(s, h, "closed")
        for key in list(sel.get_map().values()):
            h = key.data
            if h["state"] == "connecting" and now - h["t"] > CONNECT_TIMEOUT_S:
                done(key.fileobj, h, "connect_timeout")
        if not said_opened and first_wave["left"] <= 0:
            print("opened %.3f" % (time.monotonic() - t0), flush=True)
            said_opened = True
        if now >= next_sample:
            open_at.append((round(now - t0), sum(1 for k in sel.get_map().values()
                                                 if k.data["state"] == "open")))
            next_sample += 1
    held = 0
    for key in list(sel.get_map().values()):
        held += key.data["state"] == "open"
        key.fileobj.close()
    outcome["held_to_end"] = held
    print(json.dumps({"attempts": attempts, "outcome": dict(outcome), "open_at": open_at,
                      "closed_after": [round(t, 3) for t in closed_after]}), flush=True)


# ---- the admin client ------------------------------------------------------------


class Admin:
    """Asks GET /v1/sandboxes every interval until stopped; records
    (time, latency_ms or None, failure kind)."""

    def __init__(self, host, port, token, fresh, interval_s):
        self.host, self.port, self.token = host, port, token
        self.fresh, self.interval_s = fresh, interval_s
        self.samples = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self):
        conn = None
        headers = {"Authorization": "Bearer " + self.token}
        while not self.stopped.is_set():
            t = time.monotonic()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(self.host, self.port,
                                                      timeout=ADMIN_TIMEOUT_S)
                conn.request("GET", "/v1/sandboxes", headers=headers)
                resp = conn.getresponse()
                resp.read()
                ms = (time.monotonic() - t) * 1000
                self.samples.append((t, ms, None if resp.status == 200 else str(resp.status)))
                if self.fresh or resp.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                self.samples.append((t, None, type(e).__name__))
                if conn:
                    conn.close()
                conn = None
            self.stopped.wait(self.interval_s)
        if conn:
            conn.close()


def summary(samples, t_from, t_to):
    sel = [s for s in samples if t_from <= s[0] < t_to]
    ok = sorted(s[1] for s in sel if s[2] is None)
    fails = collections.Counter(s[2] for s in sel if s[2] is not None)
    return {
        "n": len(sel), "ok": len(ok), "failures": dict(fails),
        "p50_ms": round(percentile(ok, 50), 2) if ok else None,
        "p99_ms": round(percentile(ok, 99), 2) if ok else None,
        "max_ms": round(ok[-1], 2) if ok else None,
    }


def gateway_fds(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--holders", type=int, default=2000)
    ap.add_argument("--hold-s", type=float, default=20)
    ap.add_argument("--mode", choices=("idle", "public"), default="idle")
    ap.add_argument("--reconnect", action="store_true")
    ap.add_argument("--as-uid", type=int)
    ap.add_argument("--admin-interval-ms", type=float, default=20)
    ap.add_argument("--baseline-s", type=float, default=3, help="admin alone, before and after")
    ap.add_argument("--max-connections", type=int)
    ap.add_argument("--per-client", type=int)
    ap.add_argument("--unauth-timeout-s", type=int)
    ap.add_argument("--url", help="a gateway on loopback (token in PORTHOLE_TOKEN)")
    ap.add_argument("--exe", help="porthole binary (default: build/dev, then PATH)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--holders-role", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.holders_role:
        port, n, hold_s, mode, reconnect = args.holders_role
        run_holders(int(port), int(n), float(hold_s), mode, reconnect == "1")
        return
    if args.as_uid is not None and os.geteuid() != 0:
        sys.exit("bench: --as-uid needs root")

    config = {"templates": False}
    for key, v in (("max_connections", args.max_connections),
                   ("max_connections_per_client", args.per_client),
                   ("unauthenticated_timeout_s", args.unauth_timeout_s)):
        if v is not None:
            config[key] = v
    gateway = None
    if args.url:
        url, token = args.url, os.environ.get("PORTHOLE_TOKEN")
        if not token:
            sys.exit("bench: --url needs PORTHOLE_TOKEN")
    else:
        gateway = Gateway(find_exe(args.exe), config)
        url, token = gateway.url, gateway.token
    u = urllib.parse.urlsplit(url)
    host, port = u.hostname, u.port or 80
    try:
        if not ipaddress.ip_address(socket.gethostbyname(host)).is_loopback:
            sys.exit("bench: %s is not on loopback; this benchmark sends traffic only there" % url)
    except (OSError, ValueError):
        sys.exit("bench: cannot tell where %s is" % url)

    out = {"gateway": {"url": url, "own": gateway is not None,
                       "config": config if gateway else None},
           "holders": {"n": args.holders, "hold_s": args.hold_s, "mode": args.mode,
                       "reconnect": args.reconnect, "uid": args.as_uid}}
    admins = [Admin(host, port, token, False, args.admin_interval_ms / 1000),
              Admin(host, port, token, True, args.admin_interval_ms / 1000)]
    fds = []
    try:
        for a in admins:
            a.thread.start()
        t_start = time.monotonic()
        time.sleep(args.baseline_s)
        progress("%d holders (%s%s%s) for %.0f s" %
                 (args.holders, args.mode, ", reconnecting" if args.reconnect else "",
                  ", uid %d" % args.as_uid if args.as_uid is not None else "", args.hold_s))
        python = sys.executable if args.as_uid is None else "/usr/bin/python3"
        with open(os.path.abspath(__file__)) as f:
            source = f.read()
        # The source on stdin: another user may not be able to read this tree.
        child = subprocess.Popen(
            [python, "-", "--holders-role", str(port), str(args.holders), str(args.hold_s),
             args.mode, "1" if args.reconnect else "0"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd="/",
            **({"user": args.as_uid, "group": args.as_uid, "extra_groups": []}
               if args.as_uid is not None else {}))
        t_holders = time.monotonic()
        child.stdin.write(source)
        child.stdin.close()
        stop_fds = threading.Event()

        def watch_fds():
            while gateway and not stop_fds.wait(0.2):
                fds.append(gateway_fds(gateway.proc.pid))

        threading.Thread(target=watch_fds, daemon=True).start()
        opened_s, result = None, None
        for line in child.stdout:
            if line.startswith("opened "):
                opened_s = float(line.split()[1])
                progress("every first connect finished after %.2f s" % opened_s)
            elif line.startswith("{"):
                result = json.loads(line)
        child.wait()
        stop_fds.set()
        t_holders_end = time.monotonic()
        time.sleep(args.baseline_s)
        t_end = time.monotonic()
    finally:
        for a in admins:
            a.stopped.set()
        for a in admins:
            a.thread.join(ADMIN_TIMEOUT_S + 1)
        if gateway:
            gateway.stop()
    if result is None:
        sys.exit("bench: the holders reported nothing (exit status %s)" % child.returncode)

    closed_after = sorted(result.pop("closed_after"))
    out["holders"].update(result, opened_s=opened_s, closed_after_s={
        "n": len(closed_after),
        "p50": percentile(closed_after, 50) if closed_after else None,
        "min": closed_after[0] if closed_after else None,
        "max": closed_after[-1] if closed_after else None,
    })
    out["gateway"]["max_fds"] = max((f for f in fds if f), default=None)
    for a, name in zip(admins, ("admin_keepalive", "admin_fresh")):
        out[name] = {phase: summary(a.samples, t0, t1) for phase, t0, t1 in (
            ("before", t_start, t_holders), ("during", t_holders, t_holders_end),
            ("after", t_holders_end, t_end))}

    if args.json:
        print(json.dumps(out))
        return
    h = out["holders"]
    print("Porthole connection load (gateway %s%s)" %
          (url, ", config %s" % json.dumps(config) if gateway else ""))
    print()
    print("holders: %d opened at once without a token (%s%s%s), held %.0f s" %
          (h["n"], h["mode"], ", reconnecting" if h["reconnect"] else "",
           ", as uid %d" % h["uid"] if h["uid"] is not None else "", h["hold_s"]))
    print("  connection attempts        %6d" % h["attempts"])
    for key, label in (("held_to_end", "still open at the end"),
                       ("closed", "closed by the gateway"),
                       ("refused_429", "refused: 429 per-client"),
                       ("refused_503", "refused: 503 table full"),
                       ("reset", "reset"), ("connect_failed", "connect failed"),
                       ("connect_timeout", "connect timed out")):
        print("  %-26s %6d" % (label, h["outcome"].get(key, 0)))
    c = h["closed_after_s"]
    if c["n"]:
        print("  closed after (s)           p50 %.2f  min %.2f  max %.2f" %
              (c["p50"], c["min"], c["max"]))
    print("  open each second           %s" % " ".join(str(n) for _, n in h["open_at"]))
    if out["gateway"]["max_fds"] is not None:
        print("  gateway's open fds, max    %6d" % out["gateway"]["max_fds"])
    print()
    print("%-28s %-7s %6s %6s %9s %9s %9s  %s" % ("admin GET /v1/sandboxes", "phase", "n", "ok",
                                               "p50 ms", "p99 ms", "max ms", "failures"))
    for name, label in (("admin_keepalive", "keep-alive connection"),
                        ("admin_fresh", "fresh connection each")):
        for phase in ("before", "during", "after"):
            s = out[name][phase]
            fmt = lambda v: "%9.2f" % v if v is not None else "%9s" % "-"  # noqa: E731
            print("%-28s %-7s %6d %6d %s %s %s  %s" %
                  (label, phase, s["n"], s["ok"], fmt(s["p50_ms"]), fmt(s["p99_ms"]),
                   fmt(s["max_ms"]), json.dumps(s["failures"]) if s["failures"] else "none"))


if __name__ == "__main__":
    main()
