#!/usr/bin/python3
"""connection limits: the gateway's connection table against real sockets on
loopback. A connection over the bounds reads a 429 or 503 with a JSON error;
unauthenticated connections that idle are closed after
unauthenticated_timeout_s, and are the first to go when the table is full,
so an admin request still gets a slot; authenticated ones keep theirs.

Runs its own gateway (no pool, no templates: no guest boots) on a scratch
state dir, with small bounds, and stops it at the end. The per-client case
needs another local user (the gateway's own has no per-client bound), so it
runs only as root, its client as uid 65534."""
import contextlib
import json
import os
import select
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture  # noqa: E402
from fixture import check, check_eq  # noqa: E402

MAX_CONNECTIONS = 16
PER_CLIENT = 4
UNAUTH_TIMEOUT_S = 4  # past the wait of silent connections over a full table
EVICT_GRACE_S = 1.0  # HTTP_EVICT_GRACE_MS in gateway/http_conn.c
OTHER_UID = 65534

SCRATCH = os.path.join(fixture.SCRATCH, "conn-limits")
LOG = os.path.join(SCRATCH, "gateway.log")
TOKEN = fixture.TOKEN
ADMIN = {"Authorization": "Bearer " + TOKEN}


def connect():
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def state(sock, wait=0.0):
    """"open" (nothing to read), "eof" (closed by the gateway, nothing
    said), or the bytes the gateway wrote before closing."""
    r, _, _ = select.select([sock], [], [], wait)
    if not r:
        return "open"
    data = b""
    sock.settimeout(5)
    with contextlib.suppress(ConnectionResetError):
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return data or "eof"


def wait_state(sock, timeout):
    """The socket's state once it is not "open", or "open" after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        s = state(sock, 0.1)
        if s != "open" or time.monotonic() > deadline:
            return s


def roundtrip(sock, path, headers=None):
    """One keep-alive request on sock; (status, body). status None when the
    connection was closed instead."""
    hdrs = "".join("%s: %s\r\n" % kv for kv in (headers or {}).items())
    try:
        sock.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n" % (path, hdrs)).encode())
    except (BrokenPipeError, ConnectionResetError):
        pass  # refused: the reply may be waiting
    reply = b""
    sock.settimeout(10)
    try:
        while b"\r\n\r\n" not in reply:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
        head, _, body = reply.partition(b"\r\n\r\n")
        length = [int(l.split(b":")[1]) for l in head.split(b"\r\n")
                  if l.lower().startswith(b"content-length:")]
        while length and len(body) < length[0]:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    except ConnectionResetError:
        pass
    if not reply.startswith(b"HTTP/1.1 "):
        return None, reply
    return int(reply.split(b" ", 2)[1]), reply.partition(b"\r\n\r\n")[2]


def check_refusal(data, status, code, what):
    check(isinstance(data, bytes) and data.startswith(b"HTTP/1.1 %d " % status),
          "%s: want an HTTP %d, got %r", what, status, data)
    head, _, body = data.partition(b"\r\n\r\n")
    check(b"\r\nconnection: close" in head.lower(), "%s: no Connection: close: %r", what, head)
    err = json.loads(body)["error"]
    check_eq(err["code"], code, "%s: error code" % what)
    check(err["message"], "%s: an error without a message", what)


def log_lines(needle):
    with open(LOG, errors="replace") as f:
        return [l for l in f if needle in l]


def close_all(socks):
    for s in socks:
        s.close()
    # Closed by the client: the slots are free once the gateway saw it.
    time.sleep(0.3)


def test_full_table_refuses_with_503():
    # Newcomers in a burst are refused, readably, instead of shedding each
    # other before the gateway read a byte of theirs: at once when their
    # request shows no token, after a grace period when they say nothing.
    held = [connect() for _ in range(MAX_CONNECTIONS)]
    extra = [connect() for _ in range(3)]
    asking = connect()
    try:
        for i, s in enumerate(extra):
            check_refusal(wait_state(s, EVICT_GRACE_S + 3), 503, "unavailable",
                          "silent connection %d over the table" % i)
        # It was as silent as the others until now: the sweep may have
        # refused it already, and a request sent into that closed socket
        # would draw a reset that can swallow the refusal. Read that first.
        early = state(asking)
        if early == "open":
            status, body = roundtrip(asking, "/healthz")
        else:
            check(isinstance(early, bytes), "closed without a word: %r" % early)
            head, _, body = early.partition(b"\r\n\r\n")
            status = int(head.split()[1])
        check_eq(status, 503, "a request on a connection over the table: %r" % body)
        check_eq(json.loads(body)["error"]["code"], "unavailable", "its error code")
        check(all(state(s) == "open" for s in held), "a held connection was closed")
        # An admin's request shows its token in its first bytes: it is let
        # in at once, in place of one of the unauthenticated.
        admin = connect()
        extra.append(admin)
        status, body = roundtrip(admin, "/v1/status", ADMIN)
        check_eq(status, 200, "admin request in the burst: %r" % body[:300])
        time.sleep(0.3)
        check_eq(sum(state(s) != "open" for s in held), 1, "held connections shed for the admin")
    finally:
        close_all(held + extra + [asking])


def test_admin_gets_a_slot():
    # The table full of unauthenticated idle connections: an admin's new
    # connection takes the slot of the one idle longest.
    oldest = connect()
    time.sleep(0.2)
    held = [connect() for _ in range(MAX_CONNECTIONS - 1)]
    admin = second = None
    try:
        time.sleep(EVICT_GRACE_S + 0.3)
        check(all(state(s) == "open" for s in [oldest] + held), "held connections still open")
        admin = connect()
        status, body = roundtrip(admin, "/v1/status", ADMIN)
        check_eq(status, 200, "admin request with the table full: %r" % body[:300])
        check_eq(wait_state(oldest, 5), "eof", "the longest-idle connection was shed")
        check(all(state(s) == "open" for s in held), "only the longest-idle one goes")
        # The same again on that admin's keep-alive connection, and another.
        check_eq(roundtrip(admin, "/v1/sandboxes", ADMIN)[0], 200, "keep-alive admin request")
        second = connect()
        check_eq(roundtrip(second, "/v1/sandboxes", ADMIN)[0], 200, "a second admin connection")
        check_eq(len(log_lines("closing the longest-idle unauthenticated")), 1,
                 "evictions in one burst are logged once")
    finally:
        close_all([s for s in [oldest, admin, second] + held if s])


def test_unauthenticated_time_out():
    silent = connect()
    partial = connect()
    partial.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never ends
    public = connect()
    check_eq(roundtrip(public, "/healthz")[0], 200, "public request without a token")
    bad_token = connect()
    check_eq(roundtrip(bad_token, "/v1/status", {"Authorization": "Bearer nope"})[0], 401,
             "wrong token")
    admin = connect()
    check_eq(roundtrip(admin, "/v1/status", ADMIN)[0], 200, "admin request")
    admin_public = connect()
    check_eq(roundtrip(admin_public, "/healthz", ADMIN)[0], 200, "public route with a token")
    try:
        t0 = time.monotonic()
        for name, s in (("silent", silent), ("partial headers", partial),
                        ("after a public request", public), ("after a 401", bad_token)):
            check_eq(wait_state(s, UNAUTH_TIMEOUT_S + 5), "eof",
                     "unauthenticated connection (%s) closed" % name)
        waited = time.monotonic() - t0
        check(waited >= UNAUTH_TIMEOUT_S - 0.5, "closed after %.1f s, before the timeout", waited)
        # Authenticated ones keep lws's keep-alive.
        time.sleep(1)
        check_eq(state(admin), "open", "authenticated connection after the timeout")
        check_eq(roundtrip(admin, "/v1/status", ADMIN)[0], 200, "and it still serves")
        check_eq(roundtrip(admin_public, "/healthz")[0], 200,
                 "a connection that showed the token on a public route")
    finally:
        close_all([silent, partial, public, bad_token, admin, admin_public])


# Runs as another local user: opens PER_CLIENT + N connections, prints what
# each read within a second, as JSON.
OTHER_USER_CLIENT = r"""
import json, select, socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(n)]
out, deadline = [None] * n, time.monotonic() + 1.5
while time.monotonic() < deadline:
    pending = [s for i, s in enumerate(socks) if out[i] is None]
    r, _, _ = select.select(pending, [], [], 0.1)
    for s in r:
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
        out[socks.index(s)] = data.decode(errors="replace") or "eof"
print(json.dumps([o or "open" for o in out]))
"""


def test_per_client_bound():
    if os.geteuid() != 0:
        fixture.log("skip per-client bound: needs root to connect as another user")
        return
    mine = [connect() for _ in range(PER_CLIENT + 2)]  # the gateway's user: no per-client bound
    try:
        n = PER_CLIENT + 3
        out = subprocess.run(
            ["/usr/bin/python3", "-c", OTHER_USER_CLIENT, str(port), str(n)], user=OTHER_UID,
            group=OTHER_UID, extra_groups=[], cwd="/", capture_output=True, text=True,
            timeout=60)
        check_eq(out.returncode, 0, "client as uid %d: %s" % (OTHER_UID, out.stderr))
        got = json.loads(out.stdout)
        check_eq(got[:PER_CLIENT], ["open"] * PER_CLIENT, "connections within the bound")
        for i, data in enumerate(got[PER_CLIENT:]):
            check_refusal(data.encode(), 429, "limit_exceeded", "connection %d over the bound" % i)
        check(all(state(s) == "open" for s in mine), "the gateway's own user is not bounded")
        check_eq(len(log_lines("refusing connections from loopback uid %d" % OTHER_UID)), 1,
                 "refusals in one burst are logged once")
    finally:
        close_all(mine)


def test_config_keys_checked():
    for bad in ({"max_connections": 0}, {"max_connections_per_client": "many"},
                {"unauthenticated_timeout_s": 100000}):
        key = next(iter(bad))
        p = subprocess.run([fixture.EXE, "gateway", "--state-dir", os.path.join(SCRATCH, "bad"),
                            "--listen", "127.0.0.1:0", "--config", write_config(bad)],
                           env=dict(os.environ, PORTHOLE_TOKEN=TOKEN), capture_output=True,
                           text=True, timeout=60)
        check(p.returncode != 0, "gateway started with %r", bad)
        check("%s must be a whole number" % key in p.stderr, "no message for %r: %r", bad,
              p.stderr)


def test_clean_exit():
    # After all that, SIGTERM ends it cleanly (ASan's leak check included).
    fixture.stop_private_gateway(gateway)
    check_eq(gateway.returncode, 0, "the gateway's exit status")
    reports = fixture.sanitizer_reports(LOG)
    check(not reports, "sanitizer reports in %s: %s", LOG, reports[:5])


def write_config(cfg):
    path = os.path.join(SCRATCH, "bad-config.json")
    fixture.write_atomic(path, json.dumps(cfg))
    return path


if os.path.exists(LOG):
    os.unlink(LOG)
gateway, port = fixture.start_private_gateway(SCRATCH, {
    "browser_pool": 0,
    "templates": False,
    "max_connections": MAX_CONNECTIONS,
    "max_connections_per_client": PER_CLIENT,
    "unauthenticated_timeout_s": UNAUTH_TIMEOUT_S,
})
try:
    fixture.run([test_full_table_refuses_with_503, test_admin_gets_a_slot,
                 test_unauthenticated_time_out, test_per_client_bound, test_config_keys_checked,
                 test_clean_exit])
finally:
    fixture.stop_private_gateway(gateway)
