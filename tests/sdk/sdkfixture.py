#!/usr/bin/python3
"""Shared fixture of the SDK tests: one gateway, one long-lived sandbox.

The first test that needs them (under an flock, so parallel tests never
start two) starts `porthole gateway --listen 127.0.0.1:0 --ready-fd N` in
its own session with a token generated now, a deny list and an audit log,
and records {url, pid, exe} in SCRATCH/fixture.json; later tests reuse it
after checking it answers. PORTHOLE_URL and PORTHOLE_TOKEN are then set in
the test's environment, so SDK code written with no arguments (the seeds'
examples) finds this gateway. `teardown` deletes every VM and stops it.

The config caps the gateway at two VMs (the shared sandbox plus one more)
and boots no pooled browser VM: these machines are small and shared.

Environment (tests/sdk/meson.build sets it):
  PORTHOLE_EXE           the porthole binary under test
  PORTHOLE_SDK_SCRATCH   scratch dir for state, logs, config
"""

import contextlib
import fcntl
import json
import os
import secrets
import select
import signal
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "sdk", "python"))

SCRATCH = os.path.abspath(os.environ.get("PORTHOLE_SDK_SCRATCH") or
                          "/tmp/porthole-sdk-%d" % os.getuid())
EXE = os.environ.get("PORTHOLE_EXE") or os.path.join(ROOT, "build", "dev", "cli", "porthole")
STATE_DIR = os.path.join(SCRATCH, "state")
INFO_PATH = os.path.join(SCRATCH, "fixture.json")
LOCK_PATH = os.path.join(SCRATCH, "fixture.lock")
CONFIG_PATH = os.path.join(SCRATCH, "config.json")
AUDIT_LOG = os.path.join(SCRATCH, "audit.jsonl")
GATEWAY_LOG = os.path.join(SCRATCH, "gateway.log")
SERVER_DENY = "porthole-sdk-server-deny"
DENY_RULES = ["rm -rf /", "mkfs", SERVER_DENY]
MAX_VMS = 2
SHARED_ENV = {"SDK_SHARED": "shared sandbox of the SDK tests"}
READY_TIMEOUT_S = 60
BOOT_TIMEOUT_S = 420


class TestFailure(AssertionError):
    pass


class Skip(Exception):
    """A test that cannot run here; the runner prints the reason."""


def log(msg):
    print(msg, flush=True)


def check(cond, msg, *args):
    if not cond:
        raise TestFailure(msg % args if args else msg)


def check_eq(got, want, what):
    if got != want:
        raise TestFailure("%s: got %r, want %r" % (what, got, want))


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def write_atomic(path, text, mode=0o600):
    tmp = "%s.tmp%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def qemu_pids():
    """Live QEMUs whose command line names our state dir."""
    out = []
    needle = STATE_DIR.rstrip("/") + "/"
    for name in os.listdir("/proc"):
        if name.isdigit():
            args = cmdline(int(name))
            if args and "qemu" in os.path.basename(args[0]) and any(needle in a for a in args) \
                    and pid_alive(int(name)):
                out.append(int(name))
    return out


def gateway_pids():
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != os.getpid():
            args = cmdline(int(name))
            if "gateway" in args and STATE_DIR in args and pid_alive(int(name)):
                out.append(int(name))
    return out


def tail(path, n=30):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return "(no %s)" % path


@contextlib.contextmanager
def locked():
    os.makedirs(SCRATCH, exist_ok=True)
    with open(LOCK_PATH, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def exe_identity():
    st = os.stat(EXE)
    return [os.path.realpath(EXE), st.st_ino, st.st_mtime_ns]


def write_config():
    config = {
        "deny": DENY_RULES,
        "audit_log": AUDIT_LOG,
        "max_sandboxes": MAX_VMS,
        "browser_pool": 0,
        # Other people's guests share these cores: a boot can take minutes.
        "boot_timeout_s": BOOT_TIMEOUT_S,
        # Tests send nothing off this machine: the egress proxy asks a
        # resolver that is not there (loopback's discard port), so a seed
        # example's `apt-get update` fails at once instead of downloading.
        "egress_dns": "127.0.0.1:9",
    }
    write_atomic(CONFIG_PATH, json.dumps(config, indent=2) + "\n", 0o644)


def start_gateway():
    """Starts the gateway detached; returns (url, token, pid) once ready."""
    token = secrets.token_hex(24)
    write_config()
    rd, wr = os.pipe()
    env = dict(os.environ, PORTHOLE_TOKEN=token)
    env.pop("PORTHOLE_URL", None)
    with open(GATEWAY_LOG, "ab") as logf:
        proc = subprocess.Popen(
            [EXE, "gateway", "--state-dir", STATE_DIR, "--listen", "127.0.0.1:0",
             "--config", CONFIG_PATH, "--ready-fd", str(wr)],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, env=env, close_fds=True,
            pass_fds=(wr,), start_new_session=True)
    os.close(wr)
    buf = b""
    deadline = time.monotonic() + READY_TIMEOUT_S
    try:
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([rd], [], [], left)[0]:
                proc.kill()
                raise TestFailure("gateway not ready in %d s\n%s" % (READY_TIMEOUT_S,
                                                                    tail(GATEWAY_LOG)))
            chunk = os.read(rd, 1024)
            if not chunk:
                raise TestFailure("gateway exited at start (%s)\n%s" % (proc.wait(),
                                                                        tail(GATEWAY_LOG)))
            buf += chunk
    finally:
        os.close(rd)
    line = buf.split(b"\n")[0].decode()
    check(line.startswith("ready http://127.0.0.1:"), "unexpected ready line %r", line)
    return line[6:], token, proc.pid


class Fixture:
    def __init__(self, info):
        self.info = info
        self.url = info["url"]
        self.token = info["token"]
        os.environ["PORTHOLE_URL"] = self.url
        os.environ["PORTHOLE_TOKEN"] = self.token

    def client(self):
        import porthole
        return porthole.Client(self.url, self.token)

    def shared_sandbox_id(self):
        """The long-lived sandbox the tests share, created on first use."""
        import porthole
        with locked():
            info = read_json(INFO_PATH) or self.info
            sid = info.get("sandbox_id")
            if sid:
                try:
                    if porthole.Sandbox.from_id(sid, client=self.client()).status == "ready":
                        return sid
                except porthole.PortholeError:
                    pass
            t0 = time.monotonic()
            sb = porthole.Sandbox(env_vars=SHARED_ENV, timeout_minutes=120,
                                  client=self.client()).start()
            log("fixture: shared sandbox %s ready in %.1f s" % (sb.id, time.monotonic() - t0))
            info["sandbox_id"] = sb.id
            write_atomic(INFO_PATH, json.dumps(info, indent=2) + "\n")
            self.info = info
            return sb.id

    def release_shared_sandbox(self):
        """Deletes the shared sandbox (the browser tests need its VM slot)."""
        import porthole
        with locked():
            info = read_json(INFO_PATH) or self.info
            sid = info.get("sandbox_id")
            if not sid:
                return
            try:
                self.client().request("DELETE", "/v1/sandboxes/" + sid, timeout=300)
            except porthole.NotFoundError:
                pass
            info["sandbox_id"] = None
            write_atomic(INFO_PATH, json.dumps(info, indent=2) + "\n")
            self.info = info

    def audit(self):
        out = []
        try:
            with open(AUDIT_LOG, encoding="utf-8") as f:
                for line in f:
                    out.append(json.loads(line))
        except FileNotFoundError:
            pass
        return out

    def audit_for(self, command, vm_id=None, wait=0.0):
        """Audit lines of one command (optionally one VM); waits up to wait
        seconds for at least one to appear."""
        deadline = time.monotonic() + wait
        while True:
            lines = [a for a in self.audit() if a.get("command") == command and
                     (vm_id is None or a.get("vm_id") == vm_id)]
            if lines or time.monotonic() >= deadline:
                return lines
            time.sleep(0.2)


def _usable(info):
    if not info or info.get("exe") != exe_identity() or \
            info.get("boot_timeout_s") != BOOT_TIMEOUT_S:
        return False
    if not info.get("pid") or not pid_alive(info["pid"]):
        return False
    sys.path.insert(0, os.path.join(ROOT, "sdk", "python"))
    from porthole.discover import probe
    return probe(info["url"], timeout=10)


def ensure():
    """The shared gateway, started if need be."""
    with locked():
        info = read_json(INFO_PATH)
        if _usable(info):
            return Fixture(info)
        log("fixture: starting a gateway (state %s)" % STATE_DIR)
        kill_leftovers()
        subprocess.run(["rm", "-rf", STATE_DIR], check=False)
        for p in (AUDIT_LOG, INFO_PATH):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(p)
        os.makedirs(STATE_DIR, mode=0o700, exist_ok=True)
        url, token, pid = start_gateway()
        info = {"url": url, "token": token, "pid": pid, "exe": exe_identity(),
                "boot_timeout_s": BOOT_TIMEOUT_S, "sandbox_id": None}
        write_atomic(INFO_PATH, json.dumps(info, indent=2) + "\n")
        return Fixture(info)


def kill_leftovers():
    """Ends what an earlier run of this scratch dir left behind (by pid)."""
    for pid in gateway_pids():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for pid in qemu_pids():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while (qemu_pids() or gateway_pids()) and time.monotonic() < deadline:
        time.sleep(0.2)


def skip_unless(cond, reason):
    if not cond:
        raise Skip(reason)


def run(tests):
    """Runs test functions in order. Exit status 1 when any failed; 77
    (meson's "skipped") when every test skipped; a partial skip is printed
    as SKIP with its reason and counted apart, never as a pass."""
    failed, skipped, passed = [], [], []
    for fn in tests:
        t0 = time.monotonic()
        try:
            fn()
        except Skip as e:
            skipped.append(fn.__name__)
            log("SKIP %s: %s" % (fn.__name__, e))
        except Exception:
            failed.append(fn.__name__)
            log("FAIL %s (%.1f s)\n%s" % (fn.__name__, time.monotonic() - t0,
                                         traceback.format_exc()))
        else:
            passed.append(fn.__name__)
            log("ok   %s (%.1f s)" % (fn.__name__, time.monotonic() - t0))
    log("%d passed, %d failed, %d skipped" % (len(passed), len(failed), len(skipped)))
    if failed:
        sys.exit(1)
    if skipped and not passed:
        sys.exit(77)


if __name__ == "__main__":
    if sys.argv[1:] == ["ensure"]:
        print(json.dumps(ensure().info))
    else:
        sys.stderr.write("usage: sdkfixture.py ensure\n")
        sys.exit(2)
