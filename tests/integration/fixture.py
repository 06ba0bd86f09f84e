#!/usr/bin/python3
"""Shared fixture of the integration tests: one gateway, one long-lived sandbox.

Every test program calls ensure(). The first one (under an flock, so tests
running in parallel never start two) starts a gateway on a free port with a
fixed token and a test policy config (deny list, hook program, audit log),
and boots the shared sandbox; the rest reuse them after checking they still
answer. What they share is kept in SCRATCH/fixture.json.

The gateway runs under a small supervisor process (`fixture.py supervise`)
in its own session, so it outlives the test that started it, and its exit
status is still known: the supervisor writes it to SCRATCH/gateway.rc.

Environment (set by tests/integration/meson.build):
  PORTHOLE_EXE           the porthole binary of the build under test
  PORTHOLE_TEST_SCRATCH  scratch dir: state dir, logs, config, hook
"""

import contextlib
import fcntl
import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import traceback

TOKEN = "porthole-integration-test-token-7d41c9a0e3b85f26"
SANDBOX_ENV = {
    "PH_TEST_GREETING": "hello from the fixture",
    "PH_TEST_TRICKY": "it's \"quoted\" $HOME `id` \\n; done",
}
DENY_RULES = ["rm -rf /", "mkfs"]
HOOK_WORD = "forbidden-by-hook"
HOOK_REASON = "integration hook refuses: the command mentions forbidden-by-hook"
BOOT_TIMEOUT_S = 300
CONSOLE_LOG_MAX_MIB = 1
GATEWAY_START_TIMEOUT_S = 60

HERE = os.path.dirname(os.path.abspath(__file__))
SCRATCH = os.path.abspath(
    os.environ.get("PORTHOLE_TEST_SCRATCH") or "/tmp/porthole-integration-%d" % os.getuid())
EXE = os.environ.get("PORTHOLE_EXE") or os.path.join(HERE, "..", "..", "build", "dev", "cli",
                                                     "porthole")
STATE_DIR = os.path.join(SCRATCH, "state")
INFO_PATH = os.path.join(SCRATCH, "fixture.json")
LOCK_PATH = os.path.join(SCRATCH, "fixture.lock")
CONFIG_PATH = os.path.join(SCRATCH, "config.json")
HOOK_PATH = os.path.join(SCRATCH, "hook.sh")
HOOK_LOG = os.path.join(SCRATCH, "hook-input.jsonl")
AUDIT_LOG = os.path.join(SCRATCH, "audit.jsonl")
GATEWAY_LOG = os.path.join(SCRATCH, "gateway.log")
GATEWAY_PID = os.path.join(SCRATCH, "gateway.pid")
GATEWAY_RC = os.path.join(SCRATCH, "gateway.rc")


class TestFailure(AssertionError):
    pass


def log(msg):
    print(msg, flush=True)


# ---- HTTP ------------------------------------------------------------------


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError as e:
            raise TestFailure("response %d is not JSON (%s): %r" % (self.status, e,
                                                                   self.body[:300]))

    def error_code(self):
        err = self.json().get("error")
        if not isinstance(err, dict):
            raise TestFailure("response %d has no error object: %r" % (self.status,
                                                                      self.body[:300]))
        return err.get("code")

    def __repr__(self):
        return "<HTTP %d %r>" % (self.status, self.body[:300])


def request(port, method, path, body=None, token=TOKEN, headers=None, timeout=120):
    """One HTTP request on a fresh connection. body: dict/list (JSON), bytes
    or None. token None sends no Authorization header."""
    hdrs = dict(headers or {})
    if token is not None:
        hdrs.setdefault("Authorization", "Bearer " + token)
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        return Response(resp.status, dict(resp.getheaders()), resp.read())
    finally:
        conn.close()


def raw_request(port, method, path, body, headers=None, token=TOKEN, timeout=60):
    """A request whose body the server may refuse before reading it all (a
    413 for a huge body): sends what the server takes, then reads the reply.
    Returns (status or None, reply bytes)."""
    hdrs = {"Host": "127.0.0.1", "Content-Length": str(len(body))}
    if token is not None:
        hdrs["Authorization"] = "Bearer " + token
    hdrs.update(headers or {})
    head = "%s %s HTTP/1.1\r\n%s\r\n" % (
        method, path, "".join("%s: %s\r\n" % kv for kv in hdrs.items()))
    reply = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(head.encode())
            view = memoryview(body)
            for off in range(0, len(body), 65536):
                s.sendall(view[off:off + 65536])
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused early; the reply should be waiting
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                reply += chunk
                if b"\r\n\r\n" in reply:
                    hdr, _, rest = reply.partition(b"\r\n\r\n")
                    m = [l for l in hdr.split(b"\r\n") if l.lower().startswith(b"content-length:")]
                    if m and len(rest) >= int(m[0].split(b":")[1]):
                        break
        except ConnectionResetError:
            pass
    if not reply.startswith(b"HTTP/1."):
        return None, reply
    return int(reply.split(b" ", 2)[1]), reply.partition(b"\r\n\r\n")[2]


def healthy(port, timeout=5):
    try:
        r = request(port, "GET", "/healthz", token=None, timeout=timeout)
        return r.status == 200 and r.json().get("status") == "ok"
    except (OSError, http.client.HTTPException, TestFailure):
        return False


# ---- processes ---------------------------------------------------------------


def pid_alive(pid):
    """True if pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def qemu_pids(state_dir=STATE_DIR):
    """Live QEMU processes whose command line mentions state_dir."""
    found = []
    needle = state_dir.rstrip("/") + "/"
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        args = cmdline(int(name))
        if not args or "qemu" not in os.path.basename(args[0]):
            continue
        if any(needle in a for a in args) and pid_alive(int(name)):
            found.append(int(name))
    return found


def wait_until(pred, timeout, interval=0.2):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_listening(port):
    with socket.socket() as s:
        s.settimeout(2)
        try:
            s.connect(("127.0.0.1", port))
            return True
        except OSError:
            return False


def read_json_file(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def write_atomic(path, text, mode=0o644):
    tmp = path + ".tmp%d" % os.getpid()
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def tail(path, n=40):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return "(no %s)" % path


# ---- the gateway -------------------------------------------------------------


def exe_identity():
    st = os.stat(EXE)
    return [os.path.realpath(EXE), st.st_ino, st.st_mtime_ns]


def write_policy_files():
    hook = """#!/bin/sh
# Policy hook of the Porthole integration tests (written by fixture.py):
# logs the run context it gets and refuses commands that mention the word.
input=$(cat)
printf '%%s\\n' "$input" >> '%s'
# What the hook was handed besides its pipes, for test_hook.
ls -l /proc/$$/fd > '%s.fds' 2>&1
case $input in
*%s*) echo '%s'; exit 1 ;;
esac
exit 0
""" % (HOOK_LOG, HOOK_LOG, HOOK_WORD, HOOK_REASON)
    write_atomic(HOOK_PATH, hook, 0o755)
    config = {
        "deny": DENY_RULES,
        "hook": HOOK_PATH,
        "hook_timeout_s": 10,
        "audit_log": AUDIT_LOG,
        "max_sandboxes": 10,
        # No pre-booted browser VMs: these tests are about sandboxes, and
        # under software emulation a browser guest costs a CPU for a minute.
        "browser_pool": 0,
        # Nothing leaves this machine: the egress proxy's resolver is not
        # there (loopback's discard port), so no name resolves.
        "egress_dns": "127.0.0.1:9",
        # Small enough for test_console to cross it in seconds.
        "console_log_max_mib": CONSOLE_LOG_MAX_MIB,
    }
    write_atomic(CONFIG_PATH, json.dumps(config, indent=2) + "\n")


def supervise(port):
    """Runs the gateway, records its pid and then its exit status."""
    env = dict(os.environ, PORTHOLE_TOKEN=TOKEN)
    with open(GATEWAY_LOG, "ab") as logf:
        p = subprocess.Popen(
            [EXE, "gateway", "--state-dir", STATE_DIR, "--listen", "127.0.0.1:%d" % port,
             "--config", CONFIG_PATH],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, env=env, close_fds=True)
    write_atomic(GATEWAY_PID, json.dumps({"pid": p.pid, "supervisor": os.getpid()}) + "\n")
    # The gateway's own SIGTERM/SIGINT are the tests' business, not ours.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    rc = p.wait()
    write_atomic(GATEWAY_RC, json.dumps({"pid": p.pid, "rc": rc}) + "\n")


def start_gateway(port):
    """Starts a gateway on STATE_DIR and port; returns (pid, supervisor pid)
    once it answers."""
    write_policy_files()
    with open(GATEWAY_LOG, "ab") as logf:
        logf.write(b"\n==== fixture: starting gateway on port %d at %s\n" %
                   (port, time.strftime("%H:%M:%S").encode()))
        sup = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "supervise", str(port), SCRATCH],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, close_fds=True,
            start_new_session=True, env=dict(os.environ))
    sup_pid = sup.pid
    deadline = time.monotonic() + GATEWAY_START_TIMEOUT_S
    pid = None
    try:
        while time.monotonic() < deadline:
            if pid is None:
                rec = read_json_file(GATEWAY_PID)
                if isinstance(rec, dict) and rec.get("supervisor") == sup_pid:
                    pid = rec["pid"]
            status = gateway_exit_status(pid) if pid else None
            if status is not None:
                raise TestFailure("gateway exited at start with status %d\n--- gateway.log:\n%s"
                                  % (status, tail(GATEWAY_LOG)))
            if sup.poll() is not None and status is None:
                raise TestFailure("gateway supervisor exited with %s\n%s" %
                                  (sup.returncode, tail(GATEWAY_LOG)))
            if pid is not None and healthy(port, timeout=2):
                sup = None
                return pid, sup_pid
            time.sleep(0.1)
        raise TestFailure("gateway not healthy on port %d within %d s\n--- gateway.log:\n%s" %
                          (port, GATEWAY_START_TIMEOUT_S, tail(GATEWAY_LOG)))
    finally:
        if sup is not None:  # failed: leave nothing running
            if pid and pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                sup.kill()
            sup.wait()


def start_private_gateway(scratch, config, token=TOKEN):
    """A gateway of a test's own on scratch/state, on a free loopback port,
    with config, logging to scratch/gateway.log; returns (process, port)
    once it said it is ready on its --ready-fd. For gateways that boot
    nothing (no pool, no templates) or whose guests the test deletes; stop
    it with stop_private_gateway."""
    os.makedirs(scratch, exist_ok=True)
    cfg_path = os.path.join(scratch, "config.json")
    log_path = os.path.join(scratch, "gateway.log")
    write_atomic(cfg_path, json.dumps(config))
    rfd, wfd = os.pipe()
    with open(log_path, "ab") as logf:
        p = subprocess.Popen(
            [EXE, "gateway", "--state-dir", os.path.join(scratch, "state"),
             "--listen", "127.0.0.1:0", "--config", cfg_path, "--ready-fd", str(wfd)],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, pass_fds=(wfd,),
            env=dict(os.environ, PORTHOLE_TOKEN=token))
    os.close(wfd)
    with os.fdopen(rfd) as ready:
        line = ready.readline()
    if not line.startswith("ready "):
        p.wait(timeout=30)
        raise TestFailure("gateway did not start (status %s)\n%s" %
                          (p.returncode, tail(log_path)))
    return p, int(line.split()[1].rsplit(":", 1)[1])


def stop_private_gateway(p, grace_s=30):
    """SIGTERM, SIGKILL after grace_s; p.returncode says how it ended."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def sanitizer_reports(log_path, offset=0):
    """ASan, LSan and UBSan report lines in a gateway log from offset on."""
    try:
        with open(log_path, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
    except OSError:
        return []
    return [l for l in text.splitlines()
            if "ERROR: AddressSanitizer" in l or "ERROR: LeakSanitizer" in l or
            "runtime error:" in l]


def stop_own_gateway(proc, port, token, dirs):
    """Stops a gateway a test started itself (proc: its Popen): deletes its
    sandboxes, SIGTERM (SIGKILL after 60 s), then kills any QEMU left under
    dirs."""
    with contextlib.suppress(Exception):
        listed = request(port, "GET", "/v1/sandboxes", token=token).json()
        for s in listed.get("sandboxes", []):
            request(port, "DELETE", "/v1/sandboxes/" + s["id"], token=token)
    stop_private_gateway(proc, grace_s=60)
    for pid in [p for d in dirs for p in qemu_pids(d)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def gateway_exit_status(pid):
    """The exit status the supervisor recorded for gateway pid, or None."""
    rc = read_json_file(GATEWAY_RC)
    if rc and rc.get("pid") == pid:
        return rc["rc"]
    return None


def our_processes():
    """(gateways, supervisors): live processes of this scratch dir."""
    gateways, supervisors = [], []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        args = cmdline(int(name))
        if not pid_alive(int(name)):
            continue
        if "gateway" in args and STATE_DIR in args:
            gateways.append(int(name))
        elif "supervise" in args and SCRATCH in args and any(a.endswith("fixture.py")
                                                              for a in args):
            supervisors.append(int(name))
    return gateways, supervisors


def kill_leftovers(info=None):
    """Ends whatever an earlier run left: gateways on our state dir, their
    supervisors, and QEMUs of our state dir."""
    gateways, supervisors = our_processes()
    for pid in gateways:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    # Supervisors record the exit and end by themselves; give them a moment
    # so none writes gateway.rc later on.
    wait_until(lambda: not any(pid_alive(p) for p in supervisors), 10)
    for pid in supervisors:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for pid in qemu_pids():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not qemu_pids() and not any(our_processes()), 10)


# ---- the shared fixture --------------------------------------------------------


class Fixture:
    def __init__(self, info):
        self.info = info
        self.port = info["port"]
        self.url = "http://127.0.0.1:%d" % self.port
        self.token = TOKEN
        self.sandbox = info["sandbox_id"]
        self.state_dir = STATE_DIR

    # HTTP
    def req(self, method, path, body=None, **kw):
        return request(self.port, method, path, body, **kw)

    def api(self, method, path, body=None, expect=200, **kw):
        r = request(self.port, method, path, body, **kw)
        if r.status != expect:
            raise TestFailure("%s %s: HTTP %d, want %d: %r" % (method, path, r.status, expect,
                                                              r.body[:500]))
        return r.json() if r.body else None

    def exec_raw(self, command, shell="login", timeout=30, sandbox=None, http_timeout=None):
        body = {"command": command, "shell": shell, "timeout": timeout}
        return request(self.port, "POST", "/v1/sandboxes/%s/exec" % (sandbox or self.sandbox),
                       body, timeout=http_timeout or timeout + 120)

    def exec(self, command, shell="login", timeout=30, sandbox=None, expect_exit=0):
        """Runs a command that must complete; checks its exit code unless
        expect_exit is None; returns the result object."""
        r = self.exec_raw(command, shell, timeout, sandbox)
        if r.status != 200:
            raise TestFailure("exec %r: HTTP %d: %r" % (command, r.status, r.body[:500]))
        res = r.json()
        for key in ("exit_code", "stdout", "stderr", "duration_ms"):
            if key not in res:
                raise TestFailure("exec result lacks %s: %r" % (key, res))
        if expect_exit is not None and res["exit_code"] != expect_exit:
            raise TestFailure("exec %r exited %r, want %d\nstdout: %r\nstderr: %r" %
                              (command, res["exit_code"], expect_exit, res["stdout"][:500],
                               res["stderr"][:500]))
        return res

    def create_sandbox(self, **body):
        body.setdefault("wait", True)
        r = request(self.port, "POST", "/v1/sandboxes", body, timeout=BOOT_TIMEOUT_S + 60)
        if r.status != 201:
            raise TestFailure("create sandbox %r: HTTP %d: %r" % (body, r.status, r.body[:500]))
        sb = r.json()
        if sb.get("status") != "ready":
            raise TestFailure("created sandbox not ready: %r" % sb)
        return sb

    def delete_sandbox(self, sid):
        r = request(self.port, "DELETE", "/v1/sandboxes/" + sid, timeout=120)
        return r

    # state on disk
    def run_dir(self, sid=None):
        return os.path.join(self.state_dir, "vms", sid or self.sandbox)

    def qemu_pid(self, sid=None):
        with open(os.path.join(self.run_dir(sid), "qemu.pid")) as f:
            return int(f.read().strip())

    def record(self, sid=None):
        """The sandbox's record in state.db, or None."""
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(self.state_dir, "state.db"),
                             uri=True, timeout=10)
        try:
            row = db.execute("SELECT record FROM objects WHERE id = ?",
                             (sid or self.sandbox,)).fetchone()
        finally:
            db.close()
        return json.loads(row[0]) if row else None

    def ssh_port(self, sid=None):
        rec = self.record(sid)
        if not rec:
            raise TestFailure("no state.db record for %s" % (sid or self.sandbox))
        return rec["ssh_port"]


@contextlib.contextmanager
def locked():
    os.makedirs(SCRATCH, exist_ok=True)
    with open(LOCK_PATH, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def load_info():
    return read_json_file(INFO_PATH)


def save_info(info):
    write_atomic(INFO_PATH, json.dumps(info, indent=2) + "\n")


def _gateway_usable(info):
    if not info or info.get("exe") != exe_identity():
        return False
    if not info.get("gateway_pid") or not pid_alive(info["gateway_pid"]):
        return False
    if not healthy(info["port"], timeout=20):
        return False
    try:
        return request(info["port"], "GET", "/v1/sandboxes", timeout=10).status == 200
    except (OSError, http.client.HTTPException):
        return False


def _shared_sandbox_ready(info):
    """True once the shared sandbox is ready; waits while it is starting
    (re-attaching after a gateway restart)."""
    deadline = time.monotonic() + 120
    while True:
        try:
            r = request(info["port"], "GET", "/v1/sandboxes/%s" % info["sandbox_id"], timeout=10)
            status = r.json().get("status") if r.status == 200 else None
        except (OSError, http.client.HTTPException, TestFailure):
            return False
        if status != "starting" or time.monotonic() > deadline:
            return status == "ready"
        time.sleep(0.5)


def _create_shared(fx):
    sb = fx.create_sandbox(env_vars=SANDBOX_ENV, timeout_minutes=240)
    fx.info["sandbox_id"] = sb["id"]
    fx.sandbox = sb["id"]
    save_info(fx.info)


def ensure():
    """The shared gateway and sandbox, started if need be."""
    with locked():
        info = load_info()
        if _gateway_usable(info):
            fx = Fixture(info)
            if not info.get("sandbox_id") or not _shared_sandbox_ready(info):
                log("fixture: shared sandbox gone; creating a new one")
                _create_shared(fx)
            return fx
        log("fixture: starting a gateway (state %s)" % STATE_DIR)
        kill_leftovers(info)
        shutil.rmtree(STATE_DIR, ignore_errors=True)
        for path in (AUDIT_LOG, HOOK_LOG, INFO_PATH):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        with contextlib.suppress(FileNotFoundError):
            os.replace(GATEWAY_LOG, GATEWAY_LOG + ".old")
        os.makedirs(STATE_DIR, mode=0o700, exist_ok=True)
        port = free_port()
        pid, sup = start_gateway(port)
        info = {"port": port, "gateway_pid": pid, "supervisor_pid": sup, "exe": exe_identity(),
                "state_dir": STATE_DIR, "url": "http://127.0.0.1:%d" % port, "token": TOKEN,
                "sandbox_id": None}
        save_info(info)
        fx = Fixture(info)
        t0 = time.monotonic()
        _create_shared(fx)
        log("fixture: shared sandbox %s ready in %.1f s" % (fx.sandbox, time.monotonic() - t0))
        return fx


# ---- helpers for tests -----------------------------------------------------------


def check(cond, msg, *args):
    if not cond:
        raise TestFailure(msg % args if args else msg)


def check_eq(got, want, what):
    if got != want:
        raise TestFailure("%s: got %r, want %r" % (what, got, want))


def check_error(resp, status, code, what, message_contains=None):
    if resp.status != status:
        raise TestFailure("%s: HTTP %d, want %d: %r" % (what, resp.status, status,
                                                       resp.body[:400]))
    got = resp.error_code()
    if got != code:
        raise TestFailure("%s: error code %r, want %r: %r" % (what, got, code, resp.body[:400]))
    msg = resp.json()["error"].get("message")
    check(isinstance(msg, str) and msg, "%s: error without a message: %r", what, resp.body)
    if message_contains is not None and message_contains not in msg:
        raise TestFailure("%s: message %r does not contain %r" % (what, msg, message_contains))


def audit_lines():
    out = []
    try:
        with open(AUDIT_LOG, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    raise TestFailure("audit log line %d is not JSON: %r" % (n, line[:200]))
    except FileNotFoundError:
        pass
    return out


def find_audit(pred, timeout=5):
    """The audit lines matching pred, waiting a little for observers."""
    return wait_until(lambda: [a for a in audit_lines() if pred(a)], timeout) or []


def gateway_post_mortem():
    """After a failure: say whether the shared gateway is still alive."""
    info = load_info()
    if not info or not info.get("gateway_pid"):
        return
    pid = info["gateway_pid"]
    status = gateway_exit_status(pid)
    if status is not None:
        log("the shared gateway (pid %d) has exited with status %d%s\n--- gateway.log:\n%s" %
            (pid, status, " (signal %d)" % -status if status < 0 else "", tail(GATEWAY_LOG)))
    elif not pid_alive(pid):
        log("the shared gateway (pid %d) is gone" % pid)


def run(tests):
    """Runs the named test functions in order; exits 1 if any failed."""
    failed = []
    for fn in tests:
        t0 = time.monotonic()
        try:
            fn()
        except Exception:
            failed.append(fn.__name__)
            log("FAIL %s (%.1f s)\n%s" % (fn.__name__, time.monotonic() - t0,
                                         traceback.format_exc()))
        else:
            log("ok   %s (%.1f s)" % (fn.__name__, time.monotonic() - t0))
    if failed:
        log("%d of %d failed: %s" % (len(failed), len(tests), ", ".join(failed)))
        gateway_post_mortem()
        sys.exit(1)
    log("all %d passed" % len(tests))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "supervise":
        supervise(int(sys.argv[2]))
    elif len(sys.argv) == 2 and sys.argv[1] == "ensure":
        f = ensure()
        print(json.dumps(f.info))
    else:
        sys.stderr.write("usage: fixture.py supervise PORT SCRATCH | ensure\n")
        sys.exit(2)
