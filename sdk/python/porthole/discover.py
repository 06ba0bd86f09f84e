"""Finding the gateway, the same way the `porthole` CLI does.

1. PORTHOLE_URL (and PORTHOLE_TOKEN, never the state dir's token: that URL
   may be another machine).
2. Otherwise the gateway of the state dir (--state-dir, else
   $PORTHOLE_STATE_DIR, else $XDG_STATE_HOME/porthole, else
   ~/.local/state/porthole): STATE/gateway.json holds {"url", "pid"} and
   STATE/token the admin token (PORTHOLE_TOKEN wins when set). When nothing
   answers there, `porthole gateway --state-dir STATE --listen
   127.0.0.1:8790 --ready-fd N` is started in the background (own session,
   log in STATE/gateway.log) and its "ready URL" line awaited on a pipe.
   STATE/gateway.lock (flock) serializes check-then-start, so an SDK and a
   CLI started at once share one gateway.
"""

import fcntl
import http.client
import json
import os
import select
import shutil
import subprocess
import time
from typing import Optional, Tuple
from urllib.parse import urlsplit

from .errors import GatewayUnavailableError, ValidationError

LOCAL_LISTEN = "127.0.0.1:8790"
READY_TIMEOUT_S = 30.0
PROBE_TIMEOUT_S = 2.0
MAX_FILE = 64 * 1024


def default_state_dir() -> str:
    s = os.environ.get("PORTHOLE_STATE_DIR")
    if s and s.startswith("/"):
        return s
    base = os.environ.get("XDG_STATE_HOME")
    if base and base.startswith("/"):
        return os.path.join(base, "porthole")
    home = os.environ.get("HOME")
    if not home or not home.startswith("/"):
        home = "/root"
    return os.path.join(home, ".local", "state", "porthole")


def parse_url(url: str) -> Tuple[str, str, int, str]:
    """(scheme, host, port, path prefix) of an http(s) URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("not an http:// URL: %.200s" % url, {"url": url})
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, parts.hostname, port, parts.path.rstrip("/")


def probe(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """True when GET /healthz answers {"status": "ok"}."""
    try:
        scheme, host, port, prefix = parse_url(url)
    except ValidationError:
        return False
    cls = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
    conn = cls(host, port, timeout=timeout)
    try:
        conn.request("GET", prefix + "/healthz")
        resp = conn.getresponse()
        body = resp.read(MAX_FILE)
        if resp.status != 200:
            return False
        return json.loads(body).get("status") == "ok"
    except (OSError, http.client.HTTPException, ValueError, AttributeError):
        return False
    finally:
        conn.close()


def _read_text(path: str, limit: int = MAX_FILE) -> Optional[str]:
    try:
        with open(path, "rb") as f:
            return f.read(limit).decode("utf-8", "replace")
    except OSError:
        return None


def _read_gateway_json(state: str) -> Tuple[Optional[str], int]:
    text = _read_text(os.path.join(state, "gateway.json"))
    try:
        rec = json.loads(text) if text else None
    except ValueError:
        rec = None
    if not isinstance(rec, dict) or not isinstance(rec.get("url"), str):
        return None, 0
    pid = rec.get("pid")
    return rec["url"], pid if isinstance(pid, int) else 0


def _read_token(state: str) -> Optional[str]:
    text = _read_text(os.path.join(state, "token"), 4096)
    if text is None:
        return None
    text = text.rstrip(" \t\r\n")
    if not text or "\n" in text or "\r" in text:
        return None
    return text


def _gateway_pid_alive(pid: int) -> bool:
    """True when pid lives and looks like `porthole gateway` (pids get reused)."""
    if pid <= 1:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            args = f.read().split(b"\0")
    except OSError:
        return True
    return len(args) > 1 and args[1] == b"gateway"


def _last_log_line(path: str) -> str:
    text = _read_text(path, 1 << 20) or ""
    lines = [l for l in text.splitlines() if l.strip()]
    return lines[-1][:300] if lines else ""


def find_porthole_bin(explicit: Optional[str] = None) -> str:
    exe = explicit or os.environ.get("PORTHOLE_BIN") or shutil.which("porthole")
    if not exe:
        raise GatewayUnavailableError(
            "no gateway answers and the porthole binary was not found to start one",
            {"recovery": "install porthole (on PATH), set PORTHOLE_BIN, or set PORTHOLE_URL "
                         "and PORTHOLE_TOKEN to a running gateway"})
    return exe


def start_local_gateway(state: str, porthole_bin: Optional[str] = None) -> str:
    """Starts `porthole gateway` for state in the background; returns its URL."""
    exe = find_porthole_bin(porthole_bin)
    log_path = os.path.join(state, "gateway.log")
    rd, wr = os.pipe()
    try:
        with open(log_path, "ab") as logf:
            # The gateway writes "ready URL" on the fd named by --ready-fd:
            # the pipe's write end, kept open in the child by pass_fds. Its
            # own session: a Ctrl-C aimed at this program must not stop the
            # gateway that other clients and running sandboxes depend on.
            proc = subprocess.Popen(
                [exe, "gateway", "--state-dir", state, "--listen", LOCAL_LISTEN,
                 "--ready-fd", str(wr)],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, close_fds=True,
                pass_fds=(wr,), start_new_session=True)
    except OSError as e:
        os.close(rd)
        os.close(wr)
        raise GatewayUnavailableError("cannot start %s gateway: %s" % (exe, e))
    os.close(wr)
    deadline = time.monotonic() + READY_TIMEOUT_S
    buf = b""
    try:
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                proc.terminate()
                raise GatewayUnavailableError(
                    "the local gateway did not become ready within %d s (log: %s)" %
                    (READY_TIMEOUT_S, log_path), {"recovery": "see " + log_path})
            ready, _, _ = select.select([rd], [], [], left)
            if not ready:
                continue
            chunk = os.read(rd, 1200)
            if not chunk:
                tail = _last_log_line(log_path)
                if proc.poll() is None:
                    proc.terminate()
                raise GatewayUnavailableError(
                    "the local gateway exited before it was ready%s (log: %s)" %
                    (": " + tail if tail else "", log_path),
                    {"recovery": "read %s; if another program uses %s, set PORTHOLE_URL to a "
                                 "running gateway" % (log_path, LOCAL_LISTEN)})
            buf += chunk
            if len(buf) > 1200:
                break
    finally:
        os.close(rd)
    line = buf.split(b"\n", 1)[0].decode("utf-8", "replace")
    if not line.startswith("ready "):
        proc.terminate()
        raise GatewayUnavailableError("the local gateway sent an unexpected readiness line")
    return line[6:]


def discover(state_dir: Optional[str] = None, autostart: bool = True,
             porthole_bin: Optional[str] = None) -> Tuple[str, Optional[str]]:
    """(url, token) of the gateway to use. As in the CLI, PORTHOLE_URL wins
    over a state dir."""
    env_url = os.environ.get("PORTHOLE_URL")
    env_token = os.environ.get("PORTHOLE_TOKEN") or None
    if env_url:
        parse_url(env_url)
        return env_url.rstrip("/"), env_token
    state = os.path.abspath(state_dir) if state_dir else default_state_dir()
    url, pid = _read_gateway_json(state)
    if not url or not probe(url):
        if not autostart:
            raise GatewayUnavailableError(
                "no local gateway answers for state dir %s" % state,
                {"recovery": "run: porthole gateway (or any command that needs it starts one)"})
        try:
            os.makedirs(state, mode=0o700, exist_ok=True)
        except OSError as e:
            raise GatewayUnavailableError("cannot create state dir %s: %s" % (state, e))
        with open(os.path.join(state, "gateway.lock"), "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            # Another client may have started it while we waited for the lock.
            url, pid = _read_gateway_json(state)
            if not url or not probe(url):
                if url and _gateway_pid_alive(pid):
                    raise GatewayUnavailableError(
                        "the local gateway (pid %d) runs but does not answer at %s" % (pid, url),
                        {"recovery": "see %s/gateway.log; stop it (kill %d) and retry" %
                                     (state, pid)})
                url = start_local_gateway(state, porthole_bin)
    token = env_token or _read_token(state)
    return url.rstrip("/"), token
