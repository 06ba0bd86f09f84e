#!/usr/bin/python3
"""malformed input: a seeded generator of broken HTTP requests, JSON bodies
and WebSocket frames, each sent on a raw socket to the gateway on loopback.

Every case must end, within a bound, in an HTTP 4xx or a clean close; for a
WebSocket frame, in a close frame with a protocol-error status (1002, 1003,
1007, 1008, 1009) or none, or a TCP close. Never a 5xx, never a 2xx or a
101 for a malformed case, and after a 4xx without "Connection: close" the
connection either serves the next request or closes. Exceptions, each
counted:
  - a Range header the server cannot use is ignored: a 200 with the whole
    file (RFC 9110 14.1.2);
  - a request head that libwebsockets' lenient parser reads as unfinished
    (a header line without a colon, an obs-fold, a control byte in a value)
    gets no answer and is closed at the head timeout (HTTP_HEAD_TIMEOUT_S
    in gateway/http.h);
  - "lenient" cases, whose flaw libwebsockets 4.1 removes or hides before
    the gateway sees the request (a control byte in the name of a header
    it does not know, a NUL just before a line's end, bare LF line ends,
    which RFC 9112 lets a server take): any answer but a 5xx or a hang.

After every batch /healthz and an authenticated GET still answer; at the
end the shared sandbox still runs a command and the gateway's log holds no
sanitizer report.

  PORTHOLE_MALFORMED_SEED  another seed (the default is fixed: runs compare)
  PORTHOLE_MALFORMED_ONLY  categories to run, comma-separated (http,json,ws)
  PORTHOLE_MALFORMED_VERBOSE=1  every case and its outcome
  --no-guest               the HTTP and JSON cases only, against a gateway
                           of this test's own that boots nothing (no pool,
                           no templates, max_sandboxes 0), with an id no
                           sandbox has where one is needed (such bodies then
                           meet the id lookup, not their parser). The
                           WebSocket cases need the shared sandbox's shell.
"""
import base64
import concurrent.futures
import contextlib
import hashlib
import json
import os
import random
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture  # noqa: E402
from fixture import check, check_eq  # noqa: E402

SEED = int(os.environ.get("PORTHOLE_MALFORMED_SEED") or 20240611)
NO_GUEST = "--no-guest" in sys.argv[1:]
VERBOSE = os.environ.get("PORTHOLE_MALFORMED_VERBOSE") == "1"
ONLY = set(filter(None, (os.environ.get("PORTHOLE_MALFORMED_ONLY") or "http,json,ws").split(",")))
CASE_TIMEOUT_S = 5       # an answer or a close
HEAD_TIMEOUT_S = 10      # HTTP_HEAD_TIMEOUT_S: a head lws never finishes
STALL_LIMIT_S = HEAD_TIMEOUT_S + 4
WORKERS = 8              # HTTP cases at once
BATCH = 40               # cases between two checks that the gateway serves
WS_CLOSE_CODES = {1002, 1003, 1007, 1008, 1009}
NO_SESSION = "bs-malformed-none"   # a browser session id nobody has
NO_SANDBOX = "sb-malformed-none"
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Target:
    """The gateway under test and what the cases need of it."""

    def __init__(self, port, token, sandbox, log_path, pid, proc=None):
        self.port = port
        self.token = token
        self.sandbox = sandbox
        self.log_path = log_path
        self.log_offset = os.path.getsize(log_path) if os.path.exists(log_path) else 0
        self.pid = pid
        self.proc = proc
        self.auth = b"Authorization: Bearer " + token.encode()
        self.static_size = None


# ---- cases and outcomes -------------------------------------------------------


class Case:
    """One malformed input: data sent on a fresh connection, then the
    connection kept open ("wait") or half-closed ("close"), and what is
    acceptable: "refuse" (a 4xx or a close), "range" (RFC 9110 Range
    semantics), "upgrade" (a refused upgrade), "lenient" (no 5xx) or, for
    frames, "ws" and "ws-close" (the client sent a close frame of its
    own)."""

    def __init__(self, cat, label, data, then="wait", expect="refuse", reuse=True, route=None,
                 want=None):
        self.cat = cat
        self.label = label
        self.data = data
        self.then = then
        self.expect = expect
        self.reuse = reuse  # probe the connection with a request after a 4xx
        self.route = route
        self.want = want    # the statuses it may get, when fewer than any 4xx

    def __repr__(self):
        data = self.data if len(self.data) <= 300 else self.data[:300] + b"...(%d bytes)" % len(
            self.data)
        return "%s/%s %r%s" % (self.cat, self.label, data,
                                " then close" if self.then == "close" else "")


class Outcome:
    def __init__(self, kind, status=None, code=None, detail="", elapsed=0.0, after=None):
        self.kind = kind      # status, closed, late-close, close-frame, hang, garbage
        self.status = status  # HTTP status
        self.code = code      # WebSocket close status (None: none given)
        self.detail = detail
        self.elapsed = elapsed
        self.after = after    # after a 4xx: reused, closed, or what went wrong

    def summary(self):
        if self.kind == "status":
            return "HTTP %d" % self.status
        if self.kind == "close-frame":
            return "close %s" % self.code
        return self.kind


def verdict(case, out):
    """None when out is acceptable for case, else why not."""
    if case.expect == "ws-unmasked" and out.kind in ("hang", "close-frame", "closed"):
        return None  # taken as data, or closed (an unmasked close's code is read as sent)
    if out.kind in ("hang", "garbage", "error"):
        return "%s after %.1f s: %s" % (out.kind, out.elapsed, out.detail)
    if case.expect in ("ws", "ws-close"):
        if out.kind == "closed":
            return None
        if out.kind != "close-frame":
            return "no close frame or TCP close: %s %s" % (out.kind, out.detail)
        if out.detail:
            return out.detail
        if case.expect == "ws-close":
            # The close handshake's echo; a status never sent on the wire
            # would be a violation of the gateway's own.
            return None if out.code not in (1005, 1006, 1015) else "closed with %d" % out.code
        # No status at all is how lws ends some violations.
        return None if out.code in WS_CLOSE_CODES or out.code is None else "closed with %d" % (
            out.code)
    if out.kind in ("closed", "late-close"):
        return None
    if out.kind != "status":
        return "unexpected %s: %s" % (out.kind, out.detail)
    if case.expect == "range" and out.status in (200, 206, 416):
        return out.detail or None
    if case.expect == "lenient" and out.status != 101 and out.status < 500:
        return None
    if out.status == 101:
        return "the upgrade was accepted"
    if not 400 <= out.status < 500:
        return "HTTP %d: %s" % (out.status, out.detail)
    if case.want and out.status not in case.want:
        return "HTTP %d, want %s: %s" % (out.status, "/".join(map(str, sorted(case.want))),
                                         out.detail)
    if out.after not in ("reused", "closed", None):
        return "HTTP %d, then %s" % (out.status, out.after)
    return None


# ---- raw connections -------------------------------------------------------------


class Peer:
    """One raw connection to the gateway: what it sent back and how it ended."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=CASE_TIMEOUT_S)
        self.buf = b""
        self.ended = None  # "eof" or "reset" once the gateway closed

    def send(self, data):
        """False when the gateway had closed the connection already."""
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def half_close(self):
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)

    def fill(self, deadline):
        """Reads once more: False at the deadline or once the gateway closed."""
        left = deadline - time.monotonic()
        if self.ended or left <= 0:
            return False
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return False
        except ConnectionResetError:
            self.ended = "reset"
            return False
        if not chunk:
            self.ended = "eof"
            return False
        self.buf += chunk
        return True

    def take(self, n):
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def wait_end(self, deadline):
        while self.fill(deadline):
            pass
        return self.ended

    def close(self):
        self.sock.close()


class Response:
    def __init__(self, version, status, headers, body, cut=False):
        self.version = version
        self.status = status
        self.headers = headers
        self.body = body
        self.cut = cut  # a reset took the rest: the gateway closed with our bytes unread

    def keeps_alive(self):
        conn = self.headers.get("connection", "").lower()
        return "close" not in conn and (self.version == b"HTTP/1.1" or "keep-alive" in conn)


def read_response(peer, deadline):
    """The next response on peer (interim 1xx ones skipped), None when the
    connection ended or the deadline passed first. ValueError for bytes
    that are no HTTP response."""
    while True:
        while b"\r\n\r\n" not in peer.buf:
            if len(peer.buf) >= 7 and not peer.buf.startswith(b"HTTP/1."):
                raise ValueError("not an HTTP response: %r" % peer.buf[:200])
            if not peer.fill(deadline):
                if peer.ended == "reset" and b"\r\n" in peer.buf:
                    peer.buf += b"\r\n\r\n"  # what the reset left of the head
                    break
                if peer.buf:
                    raise ValueError("a cut response: %r" % peer.buf[:200])
                return None
        head, _, rest = peer.buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if not parts[0].startswith(b"HTTP/1.") or len(parts) < 2 or not parts[1].isdigit():
            raise ValueError("bad status line: %r" % lines[0])
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep and peer.ended != "reset":
                raise ValueError("bad response header: %r" % line)
            key = name.strip().lower().decode(errors="replace")
            value = value.strip().decode(errors="replace")
            headers[key] = headers[key] + ", " + value if key in headers else value
        status = int(parts[1])
        peer.buf = rest
        if 100 <= status < 200 and status != 101:
            continue
        if status in (101, 204, 304):
            return Response(parts[0], status, headers, b"")
        if "content-length" not in headers:
            peer.wait_end(deadline)
            return Response(parts[0], status, headers, peer.take(len(peer.buf)))
        length = int(headers["content-length"])
        while len(peer.buf) < length:
            if not peer.fill(deadline):
                if peer.ended == "reset":
                    return Response(parts[0], status, headers, peer.take(length), cut=True)
                raise ValueError("a body cut at %d of %d bytes" % (len(peer.buf), length))
        return Response(parts[0], status, headers, peer.take(length))


def range_problem(resp, size):
    """Whether a reply to a request with a Range header is consistent."""
    if resp.status == 200:
        return None if len(resp.body) == size else "200 with %d of %d bytes" % (len(resp.body),
                                                                                size)
    if resp.status == 416:
        want = "bytes */%d" % size
        got = resp.headers.get("content-range")
        return None if got == want else "416 with Content-Range %r, want %r" % (got, want)
    cr = resp.headers.get("content-range", "")
    try:
        unit, _, spec = cr.partition(" ")
        span, _, total = spec.partition("/")
        first, _, last = span.partition("-")
        first, last = int(first), int(last)
        ok = unit == "bytes" and int(total) == size and 0 <= first <= last < size and \
            len(resp.body) == last - first + 1
    except ValueError:
        ok = False
    return None if ok else "206 with Content-Range %r and %d bytes" % (cr, len(resp.body))


def run_http(target, case):
    """Sends an HTTP case on a fresh connection and sees how it ends."""
    t0 = time.monotonic()
    try:
        peer = Peer(target.port)
    except OSError as e:
        return Outcome("error", detail="cannot connect: %s" % e)
    try:
        peer.send(case.data)
        if case.then == "close":
            peer.half_close()
        try:
            resp = read_response(peer, t0 + CASE_TIMEOUT_S)
        except ValueError as e:
            return Outcome("garbage", detail=str(e), elapsed=time.monotonic() - t0)
        if resp is None and not peer.ended:
            # No answer: only the head timeout may end it, and silently.
            peer.wait_end(t0 + STALL_LIMIT_S)
            elapsed = time.monotonic() - t0
            if peer.ended and not peer.buf:
                return Outcome("late-close", elapsed=elapsed)
            return Outcome("hang", detail="no answer and still open" if not peer.ended else
                           "an answer only after %d s: %r" % (CASE_TIMEOUT_S, peer.buf[:200]),
                           elapsed=elapsed)
        if resp is None:
            return Outcome("closed", detail=peer.ended, elapsed=time.monotonic() - t0)
        out = Outcome("status", status=resp.status, elapsed=time.monotonic() - t0,
                      detail=resp.body[:200].decode(errors="replace"))
        if case.expect == "range" and target.static_size is not None:
            out.detail = range_problem(resp, target.static_size) or ""
        if resp.status == 101 or not 400 <= resp.status < 500:
            return out
        out.after = "closed" if resp.cut else connection_after(peer, resp, case)
        return out
    finally:
        peer.close()


def connection_after(peer, resp, case):
    """After a 4xx: the connection closes when the reply said so, and
    otherwise serves a next request (or closes)."""
    deadline = time.monotonic() + CASE_TIMEOUT_S
    if not resp.keeps_alive():
        if peer.wait_end(deadline) and not peer.buf:
            return "closed"
        return "said close, stayed open" if not peer.ended else "bytes after the reply"
    if not case.reuse:
        return None
    if peer.ended or not peer.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"):
        return "closed"
    try:
        nxt = read_response(peer, deadline)
    except ValueError as e:
        return "a next request read %s" % e
    if nxt is None:
        return "closed" if peer.ended else "a next request got no answer"
    return "reused" if nxt.status == 200 else "a next request got HTTP %d" % nxt.status


# ---- HTTP request lines and headers -------------------------------------------------


def http_cases(rng, t):
    """Broken request lines, headers, framing, paths, Range, Authorization
    and upgrades, as raw bytes."""
    cases = []
    host = b"Host: 127.0.0.1\r\n"
    auth = t.auth + b"\r\n"
    sb = t.sandbox.encode()

    def add(label, data, **kw):
        cases.append(Case("http", label, data, **kw))

    def req(method=b"GET", path=b"/healthz", version=b"HTTP/1.1", headers=b"", body=b""):
        return method + b" " + path + b" " + version + b"\r\n" + host + headers + b"\r\n" + body

    # Methods: unknown, broken, overlong (lowercase known ones are the
    # same method to lws, not malformed).
    for m in [b"FOO", b"GETT", b"G ET", b"\x00GET", b"GET\x00", b"", b" ", b"\tGET", b"PRI",
              b"TRACE", b"PROPFIND", b"M-SEARCH", b"BREW", b"GET/", b"POS", b"POSTT",
              b"X" * 300, b"X" * 20000, b"\xff\xfe", b"G\rET", b"OPTIONS", b"CONNECT"]:
        add("method", req(m))
    for m in [b"DELETE", b"PUT", b"PATCH"]:
        add("method-not-allowed", req(m, b"/healthz"))
    for _ in range(6):
        m = bytes(rng.choice(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ!#$%&'*+-.^_`|~") for _ in
                  range(rng.randint(1, 40)))
        add("method-random", req(m, b"/v1/status", headers=auth))
    add("connect", b"CONNECT 127.0.0.1:22 HTTP/1.1\r\n" + host + b"\r\n")
    add("connect-authorized", b"CONNECT 127.0.0.1:22 HTTP/1.1\r\n" + host + auth + b"\r\n")
    add("connect-host", b"CONNECT 10.0.2.2:80 HTTP/1.1\r\nHost: 10.0.2.2:80\r\n\r\n")
    add("h2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")

    # Versions.
    for v in [b"HTTP/2.0", b"HTTP/3", b"HTTP/3.0", b"HTTP/0.9", b"HTTP/1", b"HTTP/1.1.1",
              b"HTTP/11", b"HTTP /1.1", b"FOO/1.1", b"http/1.1", b"HTTP/1.x", b"HTTP/",
              b"HTTP/-1.1", b"HTTP/1.1 extra", b"HTTP/9.9", b"HTTPS/1.1",
              b"HTTP\\1.1", b"HTTP/1.1/1.1", b"\xffHTTP/1.1"]:
        add("version", req(version=v))
    add("version-nul", req(version=b"HTTP/1.1\x00"), expect="lenient")
    add("version-none", b"GET /healthz\r\n\r\n")
    add("version-none-auth", b"GET /v1/status\r\n" + auth + b"\r\n")

    # Request targets: overlong, absurd forms.
    for n in [1100, 5000, 9000, 20000, 100000]:
        add("uri-long-%d" % n, req(path=b"/" + b"a" * n))
    for p in [b"*", b"http://127.0.0.1/healthz", b"healthz", b"/healthz#frag",
              b"/" + b"/" * 3000, b"/healthz?" + b"a=b&" * 2000, b"/healthz?" + b"x" * 9000,
              b"/a b", b"/\xff\xfe", b"/v1/sandboxes/" + b"x" * 70,
              b"/v1/sandboxes/" + b"a" * 3000 + b"/exec", b"/healthz?%zz", b"/healthz?a=%00",
              b"/v1/sandboxes/%s/files?path=%%2" % sb]:
        add("uri", req(path=p, headers=auth))

    # Headers: huge, many, odd names.
    for n in [9000, 20000, 100000]:
        add("header-long-%d" % n, req(headers=b"X-Big: " + b"a" * n + b"\r\n"))
    for n in [1200, 2000]:
        add("headers-many-%d" % n, req(headers=b"".join(b"X-H%d: v\r\n" % i for i in range(n))))
    add("header-name-long", req(headers=b"X-" + b"n" * 10000 + b": v\r\n"))
    add("host-long", req(headers=b"Host: " + b"h" * 10000 + b"\r\n"))
    add("authorization-long", req(b"GET", b"/v1/status",
                                  headers=b"Authorization: Bearer " + b"t" * 20000 + b"\r\n"))
    add("headers-no-end", b"GET /healthz HTTP/1.1\r\n" + b"X-A: b\r\n" * 50, then="close")

    # A header line without a colon, obs-fold, space before the colon.
    for line in [b"X-No-Colon", b"X No Colon", b"NoColonAtAll", b":", b": value", b"X-A",
                 b"Host", b"Authorization Bearer x", b" ", b"\t"]:
        add("no-colon", req(path=b"/v1/status", headers=auth + line + b"\r\n"))
    for fold in [b"X-A: a\r\n  folded\r\n", b"X-A: a\r\n\tfolded\r\n", b" leading-fold\r\n",
                 b"Content-Type: application/json\r\n ; charset=utf-8\r\n",
                 b"Authorization: Bearer\r\n " + t.token.encode() + b"\r\n"]:
        add("obs-fold", req(path=b"/v1/status", headers=fold))
    for name in [b"Content-Length ", b"Transfer-Encoding ", b"Content-Length\t",
                 b"Transfer-Encoding  "]:
        add("space-before-colon", req(b"GET", b"/v1/status", headers=auth + name + b": 2\r\n",
                                      body=b"{}"), reuse=False)
    for name in [b"Host ", b"X-A\t"]:  # names the gateway reads no further
        add("space-before-colon", req(b"GET", b"/v1/status", headers=auth + name + b": 2\r\n"),
            expect="lenient")

    # Framing: Content-Length twice, Content-Length against
    # Transfer-Encoding, chunk sizes, numbers that are no length. On a
    # route a well-framed request gets a 200 from, harmlessly (a create
    # would boot a VM).
    post = b"/v1/status"
    for cls in [(b"2", b"2"), (b"2", b"5"), (b"5", b"2"), (b"0", b"2"), (b"2, 2",), (b"2,5",),
                (b"2", b"-1"), (b"2", b""), (b"2", b"2", b"2")]:
        hdr = b"".join(b"Content-Length: " + v + b"\r\n" for v in cls)
        add("content-length-twice", req(b"GET", post, headers=auth + hdr, body=b"{}"),
            reuse=False)
    for te in [b"chunked", b"gzip", b"chunked, identity", b"identity", b"xchunked",
               b"chunked\r\nTransfer-Encoding: chunked", b"\x00chunked", b"CHUNKED"]:
        add("te-and-cl", req(b"GET", post, headers=auth + b"Content-Length: 2\r\n"
                             b"Transfer-Encoding: " + te + b"\r\n", body=b"{}"), reuse=False)
        add("te", req(b"GET", post, headers=auth + b"Transfer-Encoding: " + te + b"\r\n",
                      body=b"2\r\n{}\r\n0\r\n\r\n"), reuse=False)
    for size in [b"zz", b"-1", b"ffffffffffffffffffff", b"1;ext=\x00", b"0x2", b"2 2", b"",
                 b"+2", b"99999999999999999999", b"2\r\n{}", b"\x00"]:
        add("chunk-size", req(b"GET", post, headers=auth + b"Transfer-Encoding: chunked\r\n",
                              body=size + b"\r\n{}\r\n0\r\n\r\n"), reuse=False)
    for v in [b"-1", b"-0", b"1e3", b"0x10", b"+5", b"5 5", b"99999999999999999999999",
              b"18446744073709551616", b"9223372036854775808", b"1,000", b"", b"abc", b"2.0",
              b"\x002", b"2\x00x", b"\xd9\xa2", b"1" * 400]:
        add("content-length", req(b"GET", post, headers=auth + b"Content-Length: " + v +
                                  b"\r\n", body=b"{}"), reuse=False)
    add("content-length-huge", req(b"POST", b"/v1/sandboxes", headers=auth +
                                   b"Content-Length: %d\r\n" % (64 << 30)))

    # Bodies cut short, then the client gives up.
    for path in [b"/v1/sandboxes", b"/v1/browser/sessions", b"/mcp",
                 b"/v1/sandboxes/%s/exec" % sb, b"/v1/sandboxes/%s/env" % sb,
                 b"/v1/sandboxes/%s/files?path=/tmp/x" % sb, b"/healthz", b"/nothing"]:
        for have, want in [(0, 10), (5, 50), (100, 100000)]:
            method = b"PUT" if path.endswith(b"/env") or b"/files" in path else b"POST"
            add("body-cut", req(method, path, headers=auth + b"Content-Length: %d\r\n" % want,
                                body=b'{"a": "' + b"x" * have), then="close")
    # Heads cut short, then the client gives up.
    full = req(b"POST", b"/v1/sandboxes", headers=auth + b"Content-Length: 2\r\n", body=b"{}")
    for cut in sorted(rng.sample(range(1, len(full) - 4), 10)):
        add("head-cut", full[:cut], then="close")

    # NUL and control bytes in the request line and the headers.
    for where in range(3):
        for byte in [b"\x00", b"\x01", b"\x07", b"\x0b", b"\x1b", b"\x7f", b"\r", b"\n"]:
            if where == 0:
                data = b"GET /heal" + byte + b"thz HTTP/1.1\r\n" + host + b"\r\n"
            elif where == 1:
                data = req(path=b"/v1/status", headers=auth + b"X-A: a" + byte + b"b\r\n")
            else:
                data = req(path=b"/v1/status", headers=auth + b"X" + byte + b"A: ab\r\n")
            add("ctl-%s" % ("line", "value", "name")[where], data,
                expect="lenient" if where == 2 else "refuse")
    for h in [b"Content-Length: 0\x00", b"Accept: */*\x00", b"X-Porthole-Actor: a\x00"]:
        add("nul-at-line-end", req(path=b"/v1/status", headers=auth + h + b"\r\n"),
            expect="lenient")
    for h in [b"Accept: a\x00b", b"Content-Type: a\x00b", b"X-Porthole-Actor: a\x00b",
              b"Range: bytes=0-1\x00x", b"Authorization: Bearer " + t.token.encode() + b"\x00x"]:
        add("nul-in-value", req(path=b"/v1/status", headers=h + b"\r\n" +
                                (b"" if h.startswith(b"Authorization") else auth)))
    add("lf-only", b"GET /v1/status HTTP/1.1\n" + auth.replace(b"\r\n", b"\n") +
        b"X-Bare-Lf: 1\n\n", expect="lenient")
    add("cr-only", b"GET /v1/status HTTP/1.1\r" + auth.replace(b"\r\n", b"\r") + b"\r")

    # Percent-encoding gone wrong in the path.
    for p in [b"/heal%", b"/heal%z", b"/heal%zzthz", b"/healthz%2", b"/%%", b"/%0",
              b"/heal%00thz", b"/v1/sandboxes/" + sb + b"%2fexec",
              b"/v1/sandboxes/%ff%fe", b"/v1/%c0%af", b"/v1/%e0%80%af", b"/%2e%2e/%2e%2e",
              b"/v1/sandboxes/%01", b"/v1/sandboxes/%7f", b"/v1/sandboxes/%0d%0a",
              b"/static/%2fetc%2fpasswd", b"/v1/sandboxes/sb%20x", b"/%u0041", b"/%%32%65"]:
        add("percent", req(path=p, headers=auth))

    # Path traversal, on the static root and the API.
    for p in [b"/../../etc/passwd", b"/static/../../../etc/passwd",
              b"/static/%2e%2e/%2e%2e/etc/passwd", b"/static/.%2e/.%2e/etc/passwd",
              b"/static/..%2f..%2fetc%2fpasswd", b"/static/..\\..\\etc\\passwd",
              b"/static//etc/passwd", b"/static/.hidden", b"/static/live.html/..",
              b"/static/%2e", b"/static/./../..", b"/v1/sandboxes/..%2f..%2fetc",
              b"/v1/sandboxes/../../etc/passwd", b"/live/../static/../../etc/passwd",
              b"/static/" + b"../" * 50 + b"etc/passwd", b"/static/~root/.ssh",
              b"/static/live.html%00.png", b"/static/novnc/../../../etc/shadow",
              b"/v1/sandboxes/%s/files?path=/../../etc/passwd" % sb,
              b"/v1/sandboxes/%s/files?path=/a/%%2e%%2e/b" % sb]:
        add("traversal", req(path=p, headers=auth))

    # Range on a file route (the static root's live.html).
    ranges = [b"bytes=999999-", b"bytes=5-1", b"bytes=-0", b"bytes=0-1,3-4", b"bytes=abc",
              b"bytes=-99999999999999999999999", b"bytes=18446744073709551615-",
              b"bytes=18446744073709551616-", b"items=0-1", b"bytes=0-1\r\nRange: bytes=2-3",
              b"bytes=--1", b"bytes=1--2", b"bytes= 0 - 1 ", b"bytes=0-1,", b"bytes=,",
              b"bytes", b"bytes=", b"bytes=\x00-1", b"bytes=0-1" + b",0-1" * 500,
              b"bytes=-1-2", b"bytes=1-2-3", b"BYTES=0-0"]
    for r in ranges:
        add("range", req(path=b"/static/live.html", headers=b"Range: " + r + b"\r\n"),
            expect="range")
    add("range-if-range", req(path=b"/static/live.html", headers=b"Range: bytes=0-1\r\n"
                              b"If-Range: \"nope\"\r\n"), expect="range")

    # Authorization in forms that are not a bearer token of ours.
    tok = t.token.encode()
    for a in [b"Bearer", b"Bearer ", b"Bearer  " + tok + b" x", b"Basic " + tok,
              b"Basic " + base64.b64encode(b"admin:" + tok), b"Token " + tok, tok,
              b"Bearer " + tok[:-1], b"Bearer " + tok + b"0", b"Bearer " + tok + b"\x00x",
              b"Bearer \x00" + tok, b"Bearer " + tok.upper() if tok != tok.upper() else b"x",
              b"Bearer =", b"Bearer " + b"a" * 600, b"Bearer\x0b" + tok, b"Digest realm=x",
              b"Bearer " + tok + b", Bearer " + tok, b"", b"Bearer " + "\u00e9".encode() * 20,
              b"Bearer " + tok[::-1]]:
        add("authorization", req(path=b"/v1/status", headers=b"Authorization: " + a + b"\r\n"))
    add("authorization-twice", req(path=b"/v1/status", headers=b"Authorization: Bearer x\r\n"
                                   + auth))

    # Upgrades that are not a valid WebSocket handshake, on every
    # WebSocket route (the shell's with the admin token and a real id).
    key = b"Sec-WebSocket-Key: " + base64.b64encode(bytes(rng.randrange(256) for _ in
                                                          range(16))) + b"\r\n"
    good = b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n" + key
    variants = [
        ("no-key", good.replace(key, b"")),
        ("empty-key", good.replace(key, b"Sec-WebSocket-Key: \r\n")),
        ("key-not-base64", good.replace(key, b"Sec-WebSocket-Key: not base64 at all!\r\n")),
        ("key-8-bytes", good.replace(key, b"Sec-WebSocket-Key: AAAAAAAAAAA=\r\n")),
        ("key-long", good.replace(key, b"Sec-WebSocket-Key: " + b"A" * 200 + b"==\r\n")),
        ("key-twice", good + key),
        ("no-version", good.replace(b"Sec-WebSocket-Version: 13\r\n", b"")),
        ("no-connection", good.replace(b"Connection: Upgrade\r\n", b"")),
        ("connection-close", good.replace(b"Connection: Upgrade", b"Connection: close")),
        ("upgrade-websockets", good.replace(b"Upgrade: websocket", b"Upgrade: websockets")),
        ("upgrade-foo", good.replace(b"Upgrade: websocket", b"Upgrade: foo")),
        ("upgrade-h2c", good.replace(b"Upgrade: websocket", b"Upgrade: h2c")),
        ("upgrade-empty", good.replace(b"Upgrade: websocket", b"Upgrade:")),
        ("protocol-junk", good + b"Sec-WebSocket-Protocol: \x01\x02, ,,\r\n"),
        ("protocol-long", good + b"Sec-WebSocket-Protocol: " + b"p" * 300 + b"\r\n"),
    ]
    for v in [b"0", b"8", b"12", b"14", b"99", b"abc", b"", b"13, 8", b"-13", b"1" * 30]:
        variants.append(("version-%s" % v.decode(), good.replace(b"Version: 13", b"Version: " +
                                                                  v)))
    paths = [b"/v1/sandboxes/%s/shell" % sb, b"/vnc/%s/token" % NO_SESSION.encode(),
             b"/cdp/%s/token" % NO_SESSION.encode(), b"/devtools/browser/x", b"/healthz"]
    for i, (name, hdrs) in enumerate(variants):
        path = paths[i % len(paths)] if i % 3 else paths[0]
        add("upgrade-" + name, req(path=path, headers=auth + hdrs), expect="upgrade")
    shell = b"/v1/sandboxes/%s/shell" % sb
    add("upgrade-http10", req(path=shell, version=b"HTTP/1.0", headers=auth + good),
        expect="upgrade")
    add("upgrade-post", req(b"POST", shell, headers=auth + good + b"Content-Length: 0\r\n"),
        expect="upgrade")
    add("upgrade-no-host", (b"GET " + shell + b" HTTP/1.1\r\n" + auth + good + b"\r\n"),
        expect="upgrade")
    add("upgrade-bad-query", req(path=shell + b"?cols=0&rows=-1", headers=auth + good),
        expect="upgrade")
    add("upgrade-no-token", req(path=shell, headers=good), expect="upgrade")
    return cases


# ---- JSON bodies ----------------------------------------------------------------------

# Field kinds: ("int", lo, hi), ("bool",), ("str", max), ("enum", values),
# ("env",), ("domains",), ("viewport",), ("id", max).
SANDBOX_FIELDS = {
    "id": ("id", 39), "vcpus": ("int", 1, 8), "mem_mib": ("int", 256, 16384),
    "disk_mib": ("int", 0, 65536), "env_vars": ("env",), "timeout_minutes": ("int", 1, 1440),
    "wait": ("bool",), "network": ("enum", ["internet", "none"]),
    "allowed_domains": ("domains",), "image": ("id", 31), "from_snapshot": ("str", 39),
}
BROWSER_FIELDS = {
    "mode": ("enum", ["headless", "live"]), "viewport": ("viewport",), "record_video": ("bool",),
    "profile_mode": ("enum", ["ephemeral", "persistent"]), "profile_id": ("str", 64),
    "timeout_minutes": ("int", 1, 240), "allow_downloads": ("bool",), "env_vars": ("env",),
    "mem_size_mib": ("int", 512, 16384), "disk_size_mib": ("int", 0, 16384),
    "allowed_domains": ("domains",), "network": ("enum", ["internet", "none"]),
    "wait": ("bool",),
}
EXEC_FIELDS = {"command": ("str", 64 * 1024), "shell": ("enum", ["login", "raw"]),
               "timeout": ("int", 1, 3600), "stream": ("bool",)}
ENV_FIELDS = {"env_vars": ("env",)}
PORT_FIELDS = {"guest_port": ("int", 1, 65535), "host_port": ("int", 1, 65535),
               "guest_loopback": ("bool",)}
FORK_FIELDS = {"count": ("int", 1, 8)}
MCP_FIELDS = {"jsonrpc": ("str", 8), "id": ("int", 0, 2 ** 31), "method": ("str", 64),
              "params": ("obj",)}


class Route:
    """A JSON route: its base body (valid), the fields its parser checks,
    whether every field must be known (params_only), and which fields it
    needs."""

    def __init__(self, name, method, path, base, fields, closed=True, required=(),
                 parsed_first=True):
        self.name = name
        self.method = method
        self.path = path
        self.base = base
        self.fields = fields
        self.closed = closed
        self.required = required
        self.parsed_first = parsed_first  # the body is parsed before the id is looked up


def json_routes(t):
    sb = t.sandbox
    return [
        Route("create-sandbox", "POST", "/v1/sandboxes",
              {"vcpus": 1, "mem_mib": 512, "timeout_minutes": 5, "wait": False,
               "env_vars": {"PH_MALFORMED": "1"}, "network": "internet"}, SANDBOX_FIELDS),
        Route("create-session", "POST", "/v1/browser/sessions",
              {"mode": "headless", "viewport": {"width": 1280, "height": 720},
               "timeout_minutes": 5, "wait": False, "allow_downloads": False,
               "profile_mode": "ephemeral", "mem_size_mib": 2048}, BROWSER_FIELDS),
        Route("exec", "POST", "/v1/sandboxes/%s/exec" % sb,
              {"command": "true", "shell": "raw", "timeout": 10, "stream": False}, EXEC_FIELDS,
              required=("command",), parsed_first=False),
        Route("env", "PUT", "/v1/sandboxes/%s/env" % sb, {"env_vars": {"PH_MALFORMED": "1"}},
              ENV_FIELDS, parsed_first=False),
        Route("ports", "POST", "/v1/sandboxes/%s/ports" % sb,
              {"guest_port": 8080, "guest_loopback": False}, PORT_FIELDS,
              required=("guest_port",)),
        # Parsed before the session is looked up, unlike a computer-use
        # action's body (media.c finds the live session first): that one
        # would only meet a 404 here, and fuzz_computer covers its parser.
        Route("fork", "POST", "/v1/browser/sessions/%s/fork" % NO_SESSION, {"count": 1},
              FORK_FIELDS),
        # Never "initialize", and no Mcp-Session-Id: no session is made.
        Route("mcp", "POST", "/mcp", {"jsonrpc": "2.0", "id": 7, "method": "tools/list",
                                      "params": {}}, MCP_FIELDS, closed=False),
    ]


class Body:
    """A body being mutated: a JSON value, then its text."""

    def __init__(self, value):
        self.value = value
        self.text = None  # bytes once serialized

    def encode(self, rng):
        if self.text is None:
            if rng.random() < 0.3:
                self.text = json.dumps(self.value, indent=rng.choice([1, 2, "\t"])).encode()
            else:
                self.text = json.dumps(self.value, ensure_ascii=rng.random() < 0.5).encode()
        return self.text


def wrong_types(kind):
    """Values of another JSON type than kind takes (never null: null means
    absent to the parsers)."""
    k = kind[0]
    if k == "int":
        return ["2", 2.5, 1.0, True, False, [], {}, [1], {"v": 1}, "0x10", -0.0]
    if k == "bool":
        return [1, 0, "true", "false", [], {}, 1.0, "yes"]
    if k in ("str", "enum", "id"):
        return [5, True, False, [], {}, 1.5, ["x"], {"x": "y"}]
    if k in ("env", "viewport", "obj"):
        return ["A=1", 1, ["A"], True, "1280x720", 0]
    if k == "domains":
        return ["example.com", 5, {"example.com": True}, True]
    raise ValueError(kind)


def bad_values(kind, rng):
    """Values of kind's own type that its parser refuses."""
    k = kind[0]
    if k == "int":
        lo, hi = kind[1], kind[2]
        vals = [lo - 1, hi + 1, lo - 2 ** 31, hi + 2 ** 31, -2 ** 63, 2 ** 63 - 1, hi * 1000]
        if lo == 0:  # disk sizes: 0 is the image's size, small ones are refused
            vals += [1, 1023 if hi > 20000 else 2047]
        return vals
    if k == "enum":
        v = rng.choice(kind[1])
        return ["", v.upper(), v + " ", " " + v, v[:-1], v + "x", "x" * 17, v + "\u0000"]
    if k == "str":
        return ["x" * (kind[1] + 1), "x" * (kind[1] + rng.randint(2, 5000)), "a\u0000b"]
    if k == "id":
        common = ["x" * (kind[1] + 1), "Abc", "-abc", "_abc", "a b", "a.b", "\u00e9t\u00e9", "",
                  "a/b", "a\u0000b"]
        if kind[1] == 39:  # a sandbox's id
            return common + ["abc-", "abc_", "vm-1", "snap-1", "fork-1"]
        return common + ["Base", "browser", "BROWSER"]  # an image's name
    if k == "env":
        return [{"1A": "x"}, {"A-B": "x"}, {"": "x"}, {"A B": "x"}, {"A=B": "x"},
                {"\u00c4": "x"}, {"X" * 129: "x"}, {"A": 1}, {"A": None}, {"A": True},
                {"A": {}}, {"A": []}, {"A": "a\nb"}, {"A": "a\rb"}, {"A": "a\u0000b"},
                {"A": "x" * 4097}, {"V%d" % i: "x" for i in range(65)},
                {"BIG_%d" % i: "x" * 4000 for i in range(16)}]
    if k == "domains":
        return [[""], ["*."], ["a b"], ["http://x.com"], ["*.1.2.3.4"], [5], [None],
                ["x" * 300], ["example.com"] * 65, ["exa_mple.com/"], ["[::1"], [[]]]
    if k == "viewport":
        return [{"width": 639, "height": 720}, {"width": 1280, "height": 479},
                {"width": 7681, "height": 720}, {"width": 1280, "height": 4321},
                {"width": "1280", "height": 720}, {"width": 1280.5, "height": 720},
                {"width": 1280, "height": 720, "depth": 24}, {"w": 1280}]
    if k in ("obj", "bool"):
        return []  # no value of their own type is wrong
    raise ValueError(kind)


def neutral_mutation(rng, route, body):
    """A change that keeps body as valid (or as invalid) as it was."""
    v = body.value
    choice = rng.randrange(4)
    if choice == 0 and v:
        key = rng.choice(sorted(v))
        if key not in route.required:
            del v[key]
    elif choice == 1:
        key = rng.choice(sorted(route.fields))
        kind = route.fields[key]
        if kind[0] == "int" and key not in ("disk_mib", "disk_size_mib", "id"):
            v[key] = rng.choice([kind[1], kind[2]])
        elif kind[0] == "bool" and key != "record_video":
            v[key] = rng.random() < 0.5
    elif choice == 2:
        items = list(v.items())
        rng.shuffle(items)
        body.value = dict(items)


def defect(rng, route, body, t):
    """A change that makes the parser refuse body, whatever else it holds.
    Returns its label."""
    v = body.value
    k = rng.randrange(16)
    key = rng.choice(sorted(route.fields))
    kind = route.fields[key]
    if k == 0 and route.closed:
        name = rng.choice(["unknown", "Vcpus", "command ", "", "\u00e9", "x" * 300,
                           "env_vars\u0000", "timout", "__proto__"])
        v[name] = rng.choice([1, "x", None, [], {}])
        return "unknown-field"
    if k in (1, 2):
        vals = wrong_types(kind)
        if vals:
            v[key] = rng.choice(vals)
            return "type-%s" % key
    if k in (3, 4):
        vals = bad_values(kind, rng)
        if vals:
            v[key] = rng.choice(vals)
            return "bad-%s" % key
    if k == 5 and route.required:
        del v[route.required[0]]
        return "missing-%s" % route.required[0]
    if k == 6:
        body.value = rng.choice([[v], [], "body", 42, None, True, [1, 2], 1.5])
        return "not-an-object"
    text = body.encode(rng)
    if k == 7:
        # The same key twice, at the top or in a nested object.
        m = text.find(b"{")
        dup = json.dumps({key: rng.choice([1, "x", None])})[1:-1].encode()
        rest = text[m + 1:]
        body.text = text[:m + 1] + dup + b"," + dup + (b"," if rest.strip() != b"}" else b"") + rest
        return "duplicate-key"
    if k == 8:
        body.text = text + rng.choice([b"x", b"}", b",", b"\x00", b"{}", b" 1", b"]", b"\"",
                                       b"// c", b"\xff"])
        return "trailing-garbage"
    if k == 9:
        body.text = text[:rng.randint(1, len(text) - 1)]
        return "truncated"
    if k == 10:
        # Invalid UTF-8 inside a string.
        q = [i for i in range(len(text)) if text[i:i + 1] == b'"']
        i = rng.choice(q) + 1 if q else 1
        bad = rng.choice([b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80",
                          b"\x80", b"\xe2\x82", b"\xf4\x90\x80\x80", b"\xc3"])
        body.text = text[:i] + bad + text[i:]
        return "utf8"
    if k == 11:
        # Syntax other parsers let through.
        subs = [(b'"', b"'"), (b": ", b" : ,"), (b"}", b",}"), (b"{", b"{/* c */"),
                (b"{", b"\xef\xbb\xbf{"), (b"{", b"{,"), (b'":', b'" :: ')]
        a, b = rng.choice(subs)
        if a in text:
            body.text = text.replace(a, b, 1)
            return "syntax"
        body.text = b"{" + text
        return "syntax"
    if k == 12:
        # Numbers JSON has no room for, where an integer goes.
        ints = [f for f, kk in route.fields.items() if kk[0] == "int"]
        if ints:
            f = rng.choice(ints)
            v[f] = 0
            body.text = None
            lit = rng.choice([b"1" + b"0" * 30, b"-1" + b"0" * 30, b"1e999", b"-1e999",
                              b"NaN", b"Infinity", b"-Infinity", b"0x10", b"007", b"+1",
                              b".5", b"1.", b"1e", b"--1", b"1" * 5000])
            body.text = body.encode(rng).replace(json.dumps(f).encode() + b": 0",
                                                 json.dumps(f).encode() + b": " + lit, 1)
            if body.text.find(lit) < 0:
                body.text = body.text[:1] + json.dumps(f).encode() + b": " + lit + b"," + \
                    body.text[1:]
            return "number-%s" % f
    if k == 13:
        # Nested deeper than the parser goes, or a deep value where a
        # scalar belongs.
        depth = rng.choice([3000, 10000, 100000])
        o, c = rng.choice([(b"[", b"]"), (b'{"a":', b"}")])
        body.text = text[:1] + json.dumps(key).encode() + b": " + o * depth + b"1" + c * depth + \
            b"," + text[1:]
        return "deep-%d" % depth
    if k == 14:
        # Longer than any body the route takes.
        body.text = text[:1] + json.dumps(key).encode() + b': "' + b"x" * (2 << 20) + b'",' + \
            text[1:]
        return "too-long"
    # Escapes that are no escape, or raw control bytes in a string.
    bad = rng.choice([b"\\x41", b"\\u12", b"\\u", b"\\", b"\\q", b"\x01", b"\n", b"\t\x00",
                      b"\\ud800\\u0041"])
    q = [i for i in range(len(text)) if text[i:i + 1] == b'"']
    i = rng.choice(q) + 1 if q else 1
    body.text = text[:i] + bad + text[i:]
    return "escape"




def json_cases(rng, t, n):
    """n bodies made by mutating valid ones: neutral changes first, then
    at least one defect that the route's parser must refuse."""
    routes = json_routes(t)
    cases = []
    for i in range(n):
        route = routes[i % len(routes)]
        body = Body(json.loads(json.dumps(route.base)))
        for _ in range(rng.randrange(3)):
            neutral_mutation(rng, route, body)
        labels = [defect(rng, route, body, t)]
        if labels[0] == "escape":
            # "\" before an n, r, t, b, f, u or quote is an escape, and
            # the string may then be one the route takes: garbage after
            # the body makes it one no parser takes, whatever came first.
            body.text += b" x"
            labels.append("trailing-garbage")
        data = body.encode(rng)
        if route.name == "mcp":
            hdr = rng.choice([b"", b"Mcp-Session-Id: nope\r\n",
                              b"Mcp-Protocol-Version: 1999-01-01\r\n"])
        else:
            hdr = b""
        head = ("%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                "Content-Length: %d\r\n" % (route.method, route.path, len(data))).encode()
        # What a refusal by the parser is; a 404 means it let the body
        # through to the id lookup (or to the MCP session's).
        want = {400, 413}
        if (NO_GUEST and not route.parsed_first) or hdr.startswith(b"Mcp-Session-Id"):
            want.add(404)
        cases.append(Case("json", "%s:%s" % (route.name, "+".join(labels)),
                          head + t.auth + b"\r\n" + hdr + b"\r\n" + data, route=route.name,
                          want=want))
    cases += file_cases(rng, t)
    return cases


def file_cases(rng, t):
    """The files route: a path query no file has, with a body of bytes."""
    cases = []
    paths = [None, "", "relative/x", "/a/../b", "/../x", "/a/..", "/a/%2e%2e/b", "/tmp/",
             "/", "/tmp/x%01", "/tmp/x%7f", "/tmp/x%1b", "/" + "a" * 5000, "/a//../b",
             "..", "/tmp/%2e%2e", "%2e%2e%2fetc", "\\etc\\passwd", "/tmp/x%09y",
             "/" + "a/" * 2100 + "x"]
    for i, p in enumerate(paths):
        q = "" if p is None else "?path=" + p
        for method in ("PUT", "GET"):
            body = bytes(rng.randrange(256) for _ in range(rng.choice([0, 10, 4000])))
            if method == "GET":
                body = b""
            head = ("%s /v1/sandboxes/%s/files%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    "Content-Length: %d\r\n" % (method, t.sandbox, q, len(body))).encode()
            cases.append(Case("json", "files:%s-%d" % (method.lower(), i),
                              head + t.auth + b"\r\n\r\n" + body, route="files",
                              want={400, 413}))
    return cases


# ---- WebSocket frames on the shell ----------------------------------------------------


def ws_frame(opcode, payload=b"", fin=True, rsv=0, mask=b"\x11\x22\x33\x44", length=None,
             form=None):
    """One frame; mask None sends it unmasked, length lies about the
    payload's length, form forces the 7-, 16- or 64-bit length field."""
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    mbit = 0x80 if mask is not None else 0
    form = form or (7 if n < 126 else 16 if n < 65536 else 64)
    if form == 7:
        head = bytes([b0, mbit | n])
    elif form == 16:
        head = bytes([b0, mbit | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, mbit | 127]) + struct.pack(">Q", n)
    if mask is None:
        return head + payload
    return head + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(payload))


def ws_cases(rng):
    """Frames a client must not send, each after a valid upgrade."""
    cases = []

    def mask():
        return bytes(rng.randrange(256) for _ in range(4))

    def blob(n):
        # Terminal input that does nothing in `cat`: no newline, no ^C.
        return bytes(rng.choice(b"abcdefghij") for _ in range(n))

    def add(label, data, then="wait", expect="ws"):
        cases.append(Case("ws", label, data, then=then, expect=expect))

    # libwebsockets 4.1 reads some unmasked client frames as if masked
    # (RFC 6455 says to close): "ws-unmasked" takes that too, counted.
    for op in (1, 2, 8, 9, 10, 0):
        for n in (0, 5, 200):
            add("unmasked-op%d-%d" % (op, n), ws_frame(op, blob(n), mask=None),
                expect="ws-unmasked")
    for rsv in range(1, 8):
        for op in (1, 2) if rsv % 2 else (2, 9):
            add("rsv%d-op%d" % (rsv, op), ws_frame(op, blob(rng.randint(0, 50)), rsv=rsv,
                                                   mask=mask()))
    for op in (3, 4, 5, 6, 7, 11, 12, 13, 14, 15):
        add("opcode-%d" % op, ws_frame(op, blob(rng.randint(0, 20)), mask=mask()))
        add("opcode-%d-nofin" % op, ws_frame(op, blob(3), fin=False, mask=mask()))
    for op in (8, 9, 10):
        add("control-fragmented-%d" % op, ws_frame(op, b"\x03\xe8" if op == 8 else blob(4),
                                                   fin=False, mask=mask()))
        add("control-fragmented-cont-%d" % op, ws_frame(op, blob(2), fin=False, mask=mask()) +
            ws_frame(0, blob(2), mask=mask()))
        for n in (126, 200, 1000):
            add("control-%d-len%d" % (op, n), ws_frame(op, blob(n), mask=mask()))
        add("control-%d-len64" % op, ws_frame(op, blob(130), mask=mask(), form=64))
    for n in (1 << 63, (1 << 64) - 1, 0x8000000000000001, 0xFFFFFFFF00000000):
        for op in (1, 2):
            add("len64-top-bit-%x-op%d" % (n, op), ws_frame(op, blob(8), mask=mask(),
                                                            length=n, form=64))
    for n in (1 << 40, 1 << 33, 0x7FFFFFFFFFFFFFFF):
        add("len64-huge-%x" % n, ws_frame(2, blob(1000), mask=mask(), length=n, form=64),
            then="close")
    for bad in [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"a\x80b",
                b"\xe2\x82", b"\xf4\x90\x80\x80", b"\xfe\xfe\xff\xff", b'{"type":"resize\xff"}',
                b"\xc3\x28", b"\xa0\xa1", b"\xe2\x28\xa1"]:
        add("text-utf8", ws_frame(1, bad, mask=mask()))
    add("text-utf8-fragmented", ws_frame(1, b"\xe2\x82", fin=False, mask=mask()) +
        ws_frame(0, b"\x28", mask=mask()))
    for text in [b"hello", b"{}", b"[]", b"null", b'{"type":"resize"}',
                 b'{"type":"resize","cols":0,"rows":24}',
                 b'{"type":"resize","cols":80,"rows":100000}',
                 b'{"type":"resize","cols":"80","rows":"24"}',
                 b'{"type":"resize","cols":80.5,"rows":24}',
                 b'{"type":"exec","command":"id"}', b'{"type":1}',
                 b'{"type":"resize","cols":80,"rows":24,"x":"' + b"y" * 2000 + b'"}',
                 b'{"type":"resize","cols":-1,"rows":-1}', b"\x00",
                 b'{"type":"resize","cols":80,"rows":24,"type":"x"}']:
        add("text-not-control", ws_frame(1, text, mask=mask()))
    for payload in [b"\x03", b"\x00\x00", b"\x03\xe7", b"\x03\xec", b"\x03\xed", b"\x03\xee",
                    b"\x03\xf7", b"\x03\xf8", b"\x0b\xb7", b"\x13\x88", b"\xff\xff",
                    b"\x03\xe8\xff\xfe", b"\x03\xea\xc0\xaf",
                    b"\x07\xd0"]:
        add("close-%s" % payload[:2].hex(), ws_frame(8, payload, mask=mask()),
            expect="ws-close")
    add("close-reason-too-long", ws_frame(8, b"\x03\xe8" + b"r" * 124, mask=mask()))
    for op in (0, 0):
        add("continuation-first", ws_frame(op, blob(rng.randint(1, 30)), mask=mask()))
    add("continuation-first-nofin", ws_frame(0, blob(5), fin=False, mask=mask()))
    add("continuation-after-final", ws_frame(2, blob(5), mask=mask()) +
        ws_frame(0, blob(5), mask=mask()))
    add("continuation-empty", ws_frame(0, b"", mask=mask()))
    for first, second in [(2, 2), (1, 2), (2, 1), (1, 1)]:
        add("new-message-inside-%d-%d" % (first, second),
            ws_frame(first, blob(3) if first == 2 else b"{", fin=False, mask=mask()) +
            ws_frame(second, blob(3), mask=mask()))
    for size in (64 * 1024 + 1, 100 * 1024):
        add("message-too-big-%d" % size, ws_frame(2, blob(size), mask=mask()))
    add("message-too-big-fragments", b"".join(ws_frame(2 if i == 0 else 0, blob(16 * 1024),
                                                       fin=i == 5, mask=mask())
                                              for i in range(6)))
    add("text-too-big", ws_frame(1, b'{"type":"resize"' + b" " * 70000 + b"}", mask=mask()))
    full = ws_frame(2, blob(300), mask=mask())
    for cut in (1, 2, 3, 5, 7, 50, 299):
        add("truncated-%d" % cut, full[:cut], then="close")
    long16 = ws_frame(2, blob(1000), mask=mask())
    for cut in (2, 3):
        add("truncated16-%d" % cut, long16[:cut], then="close")
    long64 = ws_frame(2, blob(70000), mask=mask(), form=64)
    for cut in (4, 9, 12, 40000):
        add("truncated64-%d" % cut, long64[:cut], then="close")
    for i in range(12):
        junk = bytes(rng.randrange(256) for _ in range(rng.choice([1, 2, 16, 300, 5000])))
        add("random-%d" % i, junk, then="close")
    return cases


def ws_accept(key):
    return base64.b64encode(hashlib.sha1(key + WS_GUID).digest())


def ws_open(target, rng_key):
    """A shell WebSocket on the shared sandbox (running `cat`); returns the
    Peer once upgraded. Waits while the sandbox has no room for another
    terminal (the links of earlier cases still closing)."""
    key = base64.b64encode(rng_key)
    head = (b"GET /v1/sandboxes/%s/shell?command=cat&cols=80&rows=24 HTTP/1.1\r\n"
            b"Host: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n%s\r\n\r\n" %
            (target.sandbox.encode(), key, target.auth))
    deadline = time.monotonic() + 60
    while True:
        peer = Peer(target.port)
        peer.send(head)
        try:
            resp = read_response(peer, time.monotonic() + 30)
        except ValueError as e:
            peer.close()
            raise fixture.TestFailure("shell upgrade: %s" % e)
        if resp and resp.status == 101:
            check_eq(resp.headers.get("sec-websocket-accept", "").encode(), ws_accept(key),
                     "Sec-WebSocket-Accept")
            return peer
        peer.close()
        if not resp or resp.status != 429 or time.monotonic() > deadline:
            raise fixture.TestFailure("shell upgrade: %s" % (
                "HTTP %d %r" % (resp.status, resp.body[:300]) if resp else "no answer"))
        time.sleep(0.2)


def ws_read_frame(peer, deadline):
    """(opcode, payload) of the next frame from the gateway, None when the
    connection ended or the deadline passed. ValueError for a frame a
    server must not send."""
    while True:
        if len(peer.buf) >= 2:
            b0, b1 = peer.buf[0], peer.buf[1]
            if b1 & 0x80:
                raise ValueError("a masked frame from the server")
            if b0 & 0x70:
                raise ValueError("reserved bits from the server: %#x" % b0)
            n, off = b1 & 0x7F, 2
            if n == 126 and len(peer.buf) >= 4:
                n, off = struct.unpack(">H", peer.buf[2:4])[0], 4
            elif n == 127 and len(peer.buf) >= 10:
                n, off = struct.unpack(">Q", peer.buf[2:10])[0], 10
            if (b1 & 0x7F) < 126 or off > 2:
                if len(peer.buf) >= off + n:
                    payload = peer.buf[off:off + n]
                    peer.buf = peer.buf[off + n:]
                    return b0 & 0x0F, payload
        if not peer.fill(deadline):
            return None


def run_ws(target, case, rng_key):
    peer = ws_open(target, rng_key)
    t0 = time.monotonic()
    deadline = t0 + CASE_TIMEOUT_S
    try:
        peer.send(case.data)
        if case.then == "close":
            peer.half_close()
        while True:
            try:
                frame = ws_read_frame(peer, deadline)
            except ValueError as e:
                return Outcome("garbage", detail=str(e), elapsed=time.monotonic() - t0)
            if frame is None:
                if peer.ended:
                    return Outcome("closed", detail=peer.ended, elapsed=time.monotonic() - t0)
                return Outcome("hang", detail="no close within %d s" % CASE_TIMEOUT_S,
                               elapsed=time.monotonic() - t0)
            op, payload = frame
            if op in (0, 1, 2, 9, 10):
                continue  # the terminal's output, or a ping
            if op != 8:
                return Outcome("garbage", detail="opcode %d from the server" % op,
                               elapsed=time.monotonic() - t0)
            code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else None
            out = Outcome("close-frame", code=code, elapsed=time.monotonic() - t0)
            # The close handshake: answer it, and the gateway ends the
            # connection.
            if case.then != "close":
                peer.send(ws_frame(8, payload[:2], mask=b"\x01\x02\x03\x04"))
            # lws ends the connection once it has the answer; a loaded
            # machine gets longer than a case's own timeout for that.
            if not peer.wait_end(time.monotonic() + 3 * CASE_TIMEOUT_S):
                out.detail = "the TCP connection stayed open after the close handshake"
            return out
    finally:
        peer.close()


# ---- running them ------------------------------------------------------------------------


def check_serving(target, where):
    if target.proc is not None:
        check(target.proc.poll() is None, "the gateway exited (%s) %s\n%s",
              target.proc.returncode, where, fixture.tail(target.log_path))
    elif target.pid:
        check(fixture.pid_alive(target.pid), "the gateway is gone %s\n%s", where,
              fixture.tail(target.log_path))
    check(fixture.healthy(target.port, timeout=30), "healthz %s", where)
    r = fixture.request(target.port, "GET", "/v1/sandboxes", token=target.token, timeout=30)
    check_eq(r.status, 200, "an authenticated GET %s" % where)


def run_cases(target, cases, runner, workers):
    """Runs cases in batches, checking in between that the gateway serves;
    returns [(case, outcome, problem)]."""
    results = []
    for start in range(0, len(cases), BATCH):
        batch = cases[start:start + BATCH]
        if workers > 1:
            with concurrent.futures.ThreadPoolExecutor(workers) as pool:
                outs = list(pool.map(lambda c: runner(target, c), batch))
        else:
            outs = [runner(target, c) for c in batch]
        for c, o in zip(batch, outs):
            results.append((c, o, verdict(c, o)))
        check_serving(target, "after %s cases %d-%d" % (batch[0].cat, start,
                                                        start + len(batch) - 1))
    return results


def report(cat, results):
    """Prints the counts; fails with the first offending cases."""
    outcomes, routes = {}, {}
    for c, o, p in results:
        if VERBOSE:
            fixture.log("%-48s %-12s %5.1f s %s" % (c.label[:48], o.summary(), o.elapsed,
                                                   "MISBEHAVED: " + p if p else ""))
        outcomes[o.summary()] = outcomes.get(o.summary(), 0) + 1
        if c.route:
            routes[c.route] = routes.get(c.route, 0) + 1
    fixture.log("%s: %d cases: %s" % (cat, len(results), ", ".join(
        "%s %d" % kv for kv in sorted(outcomes.items()))))
    if routes:
        fixture.log("%s: by route: %s" % (cat, ", ".join("%s %d" % kv for kv in
                                                         sorted(routes.items()))))
    lenient = [c for c, o, _ in results if c.expect == "lenient" and o.kind == "status" and
               o.status < 400]
    if lenient:
        fixture.log("%s: %d lenient cases served as well-formed: %s" % (
            cat, len(lenient), ", ".join(sorted({c.label for c in lenient}))))
    unmasked = [c.label for c, o, _ in results if c.expect == "ws-unmasked" and
                o.kind == "hang"]
    if unmasked:
        fixture.log("%s: %d unmasked client frames taken as data, not closed (lws 4.1): %s" % (
            cat, len(unmasked), ", ".join(unmasked)))
    late = [o.elapsed for _, o, _ in results if o.kind == "late-close"]
    if late:
        fixture.log("%s: %d heads never finished, closed after %.1f-%.1f s without an answer"
                    % (cat, len(late), min(late), max(late)))
    bad = [(c, o, p) for c, o, p in results if p]
    for c, o, p in bad[:50]:
        fixture.log("MISBEHAVED %r\n    -> %s" % (c, p))
    check(not bad, "%d of %d %s cases misbehaved (first: %r: %s)", len(bad), len(results), cat,
          bad[0][0] if bad else None, bad[0][2] if bad else None)
    TOTALS[cat] = len(results)


def learn_static_size(target):
    r = fixture.request(target.port, "GET", "/static/live.html", token=None, timeout=30)
    check_eq(r.status, 200, "GET /static/live.html (the file route the Range cases use)")
    target.static_size = len(r.body)


TOTALS = {}


def test_http():
    if "http" not in ONLY:
        return
    learn_static_size(TARGET)
    cases = http_cases(random.Random("%d-http" % SEED), TARGET)
    report("http", run_cases(TARGET, cases, run_http, WORKERS))


def test_json():
    if "json" not in ONLY:
        return
    cases = json_cases(random.Random("%d-json" % SEED), TARGET, 320)
    if NO_GUEST:
        fixture.log("json: no guest: exec and env bodies meet the id lookup (404), not "
                    "their parser")
    report("json", run_cases(TARGET, cases, run_http, WORKERS))


def test_ws_frames():
    if "ws" not in ONLY:
        return
    if NO_GUEST:
        fixture.log("skip ws: the shell endpoint needs the shared sandbox")
        return
    rng = random.Random("%d-ws" % SEED)
    cases = ws_cases(rng)
    keys = {id(c): bytes(rng.randrange(256) for _ in range(16)) for c in cases}
    report("ws", run_cases(TARGET, cases, lambda t, c: run_ws(t, c, keys[id(c)]), 1))


def test_still_serving():
    check_serving(TARGET, "at the end")
    if not NO_GUEST:
        FX.exec("true")
    fixture.log("total: %d cases (%s), seed %d" % (
        sum(TOTALS.values()), ", ".join("%s %d" % kv for kv in TOTALS.items()), SEED))
    reports = fixture.sanitizer_reports(TARGET.log_path, TARGET.log_offset)
    check(not reports, "sanitizer reports in %s: %s", TARGET.log_path, reports[:5])


def test_clean_exit():
    # Its own gateway: SIGTERM ends it cleanly, ASan's leak check included.
    fixture.stop_private_gateway(TARGET.proc)
    check_eq(TARGET.proc.returncode, 0, "the gateway's exit status")
    reports = fixture.sanitizer_reports(TARGET.log_path, TARGET.log_offset)
    check(not reports, "sanitizer reports in %s: %s", TARGET.log_path, reports[:5])


def main():
    global TARGET, FX
    if NO_GUEST:
        scratch = os.path.join(fixture.SCRATCH, "malformed")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(scratch, "gateway.log"))
        proc, port = fixture.start_private_gateway(scratch, {
            "browser_pool": 0, "templates": False, "max_sandboxes": 0,
            "egress_dns": "127.0.0.1:9"})
        TARGET = Target(port, fixture.TOKEN, NO_SANDBOX, os.path.join(scratch, "gateway.log"),
                        proc.pid, proc)
        try:
            fixture.run([test_http, test_json, test_ws_frames, test_still_serving,
                         test_clean_exit])
        finally:
            fixture.stop_private_gateway(proc)
    else:
        FX = fixture.ensure()
        # A sandbox of its own: the frames take the shell endpoint's slots
        # (a few per sandbox), which tests running beside this one need on
        # the shared sandbox.
        own = FX.create_sandbox()["id"]
        TARGET = Target(FX.port, FX.token, own, fixture.GATEWAY_LOG, FX.info.get("gateway_pid"))
        try:
            fixture.run([test_http, test_json, test_ws_frames, test_still_serving])
        finally:
            FX.delete_sandbox(own)


TARGET = FX = None
if __name__ == "__main__":
    main()
