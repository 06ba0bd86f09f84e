#!/usr/bin/python3
"""Sandbox benchmark: prints numbers, asserts nothing.

  (a) sandbox create -> first command result, wall time (--runs, default 3)
  (b) exec round trip of `true` (shell raw) through the API (--calls, default 100)
  (c) the same command through OpenSSH's `ssh`, a fresh connection per command,
      to the same guest (--calls, fewer if slow but at least --min-ssh-calls)
  (d) api_p50 / ssh_p50 against the aim (<= 0.2)

Starts its own gateway on a temporary state dir unless PORTHOLE_URL and
PORTHOLE_TOKEN are set; then (c) needs the gateway's state dir
(--state-dir or PORTHOLE_STATE_DIR) for the guest's key and port, and is
skipped without it. Cleans up its sandboxes and its gateway.

Usage: sandbox_bench.py [--json] [--runs N] [--calls N] [--exe PATH]
"""

import argparse
import http.client
import json
import math
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

AIM_RATIO = 0.2
BOOT_TIMEOUT_S = 300
REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def progress(msg):
    sys.stderr.write("bench: %s\n" % msg)
    sys.stderr.flush()


def find_exe(arg):
    for cand in (arg, os.environ.get("PORTHOLE_EXE"),
                 os.path.join(REPO, "build", "dev", "cli", "porthole"), shutil.which("porthole")):
        if cand and os.access(cand, os.X_OK):
            return cand
    sys.exit("bench: no porthole binary; build it or pass --exe")


def percentile(values, p):
    """Nearest-rank percentile of values (p in 0..100)."""
    s = sorted(values)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


class Api:
    """One keep-alive HTTP/1.1 connection to the gateway, as a client would hold."""

    def __init__(self, url, token):
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port or 80
        self.token = token
        self.conn = None

    def call(self, method, path, body=None, timeout=120, expect=(200,)):
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": "Bearer " + self.token}
        if data is not None:
            headers["Content-Type"] = "application/json"
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
            self.conn.timeout = timeout
            if self.conn.sock is not None:
                self.conn.sock.settimeout(timeout)
            try:
                self.conn.request(method, path, body=data, headers=headers)
                resp = self.conn.getresponse()
                raw = resp.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # A keep-alive connection the server closed: once more, fresh.
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        if resp.getheader("Connection", "").lower() == "close":
            self.conn.close()
            self.conn = None
        if resp.status not in expect:
            raise RuntimeError("%s %s: HTTP %d: %s" % (method, path, resp.status, raw[:300]))
        return json.loads(raw) if raw else None

    def close(self):
        if self.conn:
            self.conn.close()
            self.conn = None


class Gateway:
    """A gateway of our own on a temporary state dir; extra_config adds to
    (or overrides) its config."""

    def __init__(self, exe, extra_config=None):
        self.dir = tempfile.mkdtemp(prefix="porthole-bench-")
        self.state = os.path.join(self.dir, "state")
        self.token = os.urandom(24).hex()
        config = os.path.join(self.dir, "config.json")
        with open(config, "w") as f:
            json.dump(dict({"browser_pool": 0, "max_sandboxes": 8}, **(extra_config or {})), f)
        self.log = open(os.path.join(self.dir, "gateway.log"), "wb")
        rfd, wfd = os.pipe()
        env = dict(os.environ, PORTHOLE_TOKEN=self.token)
        self.proc = subprocess.Popen(
            [exe, "gateway", "--state-dir", self.state, "--listen", "127.0.0.1:0", "--config",
             config, "--ready-fd", str(wfd)],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log, env=env,
            pass_fds=(wfd,), start_new_session=True)
        os.close(wfd)
        with os.fdopen(rfd) as ready:
            line = ready.readline().split()
        if len(line) != 2 or line[0] != "ready":
            self.stop()
            sys.exit("bench: the gateway did not start; see %s/gateway.log" % self.dir)
        self.url = line[1]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        # Anything the gateway left behind (it should leave nothing).
        for pid in qemu_pids(self.state):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)


def qemu_pids(state_dir):
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % name, "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if b"qemu" in os.path.basename(args[0]) and any(state_dir.encode() + b"/" in a
                                                        for a in args):
            found.append(int(name))
    return found


def create(api):
    return api.call("POST", "/v1/sandboxes", {"wait": True, "timeout_minutes": 30},
                    timeout=BOOT_TIMEOUT_S + 60, expect=(201,))


def exec_true(api, sid):
    res = api.call("POST", "/v1/sandboxes/%s/exec" % sid,
                   {"command": "true", "shell": "raw", "timeout": 60}, timeout=180)
    if res.get("exit_code") != 0:
        raise RuntimeError("true exited %r" % res)
    return res


def bench_create(api, runs, sandboxes):
    rows = []
    for i in range(runs):
        t0 = time.monotonic()
        sb = create(api)
        sandboxes.append(sb["id"])
        t1 = time.monotonic()
        exec_true(api, sb["id"])
        t2 = time.monotonic()
        rows.append({"create_s": t1 - t0, "first_exec_s": t2 - t1, "total_s": t2 - t0})
        progress("create run %d: %.2f s (boot %.2f s + first command %.2f s)" %
                 (i + 1, t2 - t0, t1 - t0, t2 - t1))
        api.call("DELETE", "/v1/sandboxes/" + sb["id"], timeout=120, expect=(200, 404))
        sandboxes.remove(sb["id"])
    return rows


def bench_api(api, sid, calls):
    for _ in range(3):
        exec_true(api, sid)  # warm: the gateway's SSH session to the guest is up
    times = []
    for _ in range(calls):
        t0 = time.monotonic()
        exec_true(api, sid)
        times.append((time.monotonic() - t0) * 1000)
    return times


def ssh_target(state_dir, sid):
    """(ssh_port, client_key, host_key_line) of sandbox sid from its state dir."""
    run_dir = os.path.join(state_dir, "vms", sid)
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(state_dir, "state.db"), uri=True,
                         timeout=10)
    try:
        row = db.execute("SELECT record FROM objects WHERE id = ?", (sid,)).fetchone()
    finally:
        db.close()
    if not row:
        raise RuntimeError("no state.db record for %s" % sid)
    port = json.loads(row[0])["ssh_port"]
    with open(os.path.join(run_dir, "host_key.pub")) as f:
        host_key = f.read().strip()
    return port, os.path.join(run_dir, "client_key"), host_key


def bench_ssh(state_dir, sid, calls, min_calls, budget_s, tmpdir):
    port, key, host_key = ssh_target(state_dir, sid)
    known = os.path.join(tmpdir, "known_hosts")
    with open(known, "w") as f:
        f.write("[127.0.0.1]:%d %s\n" % (port, host_key))
    cmd = ["ssh", "-F", "/dev/null", "-i", key, "-p", str(port),
           "-o", "UserKnownHostsFile=" + known, "-o", "StrictHostKeyChecking=yes",
           "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "ControlMaster=no",
           "-o", "ControlPath=none", "-o", "LogLevel=ERROR", "root@127.0.0.1", "true"]
    subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL, timeout=120)  # warm-up
    times = []
    start = time.monotonic()
    while len(times) < calls:
        t0 = time.monotonic()
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
        times.append((time.monotonic() - t0) * 1000)
        if p.returncode != 0:
            raise RuntimeError("ssh exited %d: %s" % (p.returncode, p.stderr.decode()[-300:]))
        if len(times) >= min_calls and time.monotonic() - start > budget_s:
            progress("ssh: stopping after %d calls (%.0f s budget)" % (len(times), budget_s))
            break
    return times


def stats(times):
    return {"n": len(times), "p50_ms": percentile(times, 50), "p95_ms": percentile(times, 95),
            "min_ms": min(times), "max_ms": max(times)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--runs", type=int, default=3, help="create runs (default 3)")
    ap.add_argument("--calls", type=int, default=100, help="exec calls per path (default 100)")
    ap.add_argument("--min-ssh-calls", type=int, default=30)
    ap.add_argument("--ssh-budget-s", type=float, default=120,
                    help="stop ssh calls after this long once --min-ssh-calls are done")
    ap.add_argument("--exe", help="porthole binary (default: build/dev, then PATH)")
    ap.add_argument("--state-dir", default=os.environ.get("PORTHOLE_STATE_DIR"),
                    help="state dir of an external gateway, for the ssh comparison")
    args = ap.parse_args()

    url, token = os.environ.get("PORTHOLE_URL"), os.environ.get("PORTHOLE_TOKEN")
    gateway = None
    tmpdir = tempfile.mkdtemp(prefix="porthole-bench-ssh-")
    sandboxes = []
    api = None
    out = {}
    try:
        if url and token:
            state_dir = args.state_dir
            out["gateway"] = {"url": url, "own": False}
        else:
            exe = find_exe(args.exe)
            gateway = Gateway(exe)
            url, token, state_dir = gateway.url, gateway.token, gateway.state
            out["gateway"] = {"url": url, "own": True, "exe": exe}
        api = Api(url, token)
        health = api.call("GET", "/healthz")
        out["gateway"]["accel"] = health.get("accel")
        progress("gateway %s (accelerator %s)" % (url, health.get("accel")))

        rows = bench_create(api, args.runs, sandboxes)
        out["create_to_first_result"] = {
            "runs_s": [round(r["total_s"], 3) for r in rows],
            "median_s": round(statistics.median(r["total_s"] for r in rows), 3),
            "median_create_s": round(statistics.median(r["create_s"] for r in rows), 3),
            "median_first_exec_s": round(statistics.median(r["first_exec_s"] for r in rows), 3),
        }

        sb = create(api)
        sid = sb["id"]
        sandboxes.append(sid)
        progress("api: %d calls of `true` on %s" % (args.calls, sid))
        api_stats = stats(bench_api(api, sid, args.calls))
        out["api_exec"] = {k: round(v, 2) for k, v in api_stats.items()}

        ssh_stats = None
        if not state_dir:
            out["ssh_exec"] = None
            progress("ssh: skipped (external gateway without --state-dir)")
        elif not shutil.which("ssh"):
            out["ssh_exec"] = None
            progress("ssh: skipped (no ssh client)")
        else:
            progress("ssh: up to %d fresh connections to %s" % (args.calls, sid))
            ssh_stats = stats(bench_ssh(state_dir, sid, args.calls, args.min_ssh_calls,
                                        args.ssh_budget_s, tmpdir))
            out["ssh_exec"] = {k: round(v, 2) for k, v in ssh_stats.items()}
        if ssh_stats:
            ratio = api_stats["p50_ms"] / ssh_stats["p50_ms"]
            out["ratio"] = {"api_p50_over_ssh_p50": round(ratio, 3), "aim": AIM_RATIO,
                            "meets_aim": ratio <= AIM_RATIO}
        else:
            out["ratio"] = None
    finally:
        if api:
            for sid in sandboxes:
                try:
                    api.call("DELETE", "/v1/sandboxes/" + sid, timeout=120, expect=(200, 404))
                except Exception as e:  # keep cleaning up
                    progress("cannot delete %s: %s" % (sid, e))
            api.close()
        if gateway:
            gateway.stop()
        shutil.rmtree(tmpdir, ignore_errors=True)

    if args.json:
        print(json.dumps(out))
        return
    c = out["create_to_first_result"]
    print("Porthole sandbox benchmark (gateway %s, accelerator %s)" %
          (out["gateway"]["url"], out["gateway"]["accel"]))
    print()
    print("(a) create -> first command result")
    for i, s in enumerate(c["runs_s"], 1):
        print("    run %d            %8.2f s" % (i, s))
    print("    median           %8.2f s   (boot %.2f s + first command %.2f s)" %
          (c["median_s"], c["median_create_s"], c["median_first_exec_s"]))
    print()
    print("%-34s %6s %10s %10s %10s %10s" % ("exec of `true`", "n", "p50 ms", "p95 ms", "min ms",
                                             "max ms"))
    for name, key in (("(b) API, keep-alive HTTP", "api_exec"),
                      ("(c) ssh, fresh connection", "ssh_exec")):
        s = out.get(key)
        if s:
            print("%-34s %6d %10.1f %10.1f %10.1f %10.1f" % (name, s["n"], s["p50_ms"],
                                                           s["p95_ms"], s["min_ms"],
                                                           s["max_ms"]))
        else:
            print("%-34s %6s" % (name, "skipped"))
    print()
    r = out.get("ratio")
    if r:
        print("(d) api_p50 / ssh_p50 = %.3f   aim <= %.1f: %s" %
              (r["api_p50_over_ssh_p50"], r["aim"], "met" if r["meets_aim"] else "NOT met"))
    else:
        print("(d) ratio: n/a (no ssh numbers)")


if __name__ == "__main__":
    main()
