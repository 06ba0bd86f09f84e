"""A small Chrome DevTools Protocol client over a standard-library
WebSocket, enough for what the SDK does itself (navigate, evaluate,
screenshots of headless sessions). For real automation use Playwright
through BrowserSession.connect_playwright()."""

import base64
import hashlib
import http.client
import json
import os
import socket
import struct
import time
from typing import Any, Dict, List, Optional
from urllib.parse import urlsplit

from .errors import OperationTimeoutError, PortholeError, TransportError

MAX_MESSAGE = 64 * 1024 * 1024
_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class WebSocket:
    """RFC 6455 client: text messages, ping/pong, close. Blocking."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        if parts.scheme != "ws":
            raise TransportError("only ws:// URLs are supported here, got %.100s" % url)
        host, port = parts.hostname or "", parts.port or 80
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        self._sock = socket.create_connection((host, port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        req = ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path, host, port,
                                                                              key))
        self._sock.sendall(req.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self._sock.recv(4096)
            if not chunk:
                raise TransportError("WebSocket handshake: connection closed")
            head += chunk
            if len(head) > 65536:
                raise TransportError("WebSocket handshake: header too large")
        head, _, self._buf = head.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        if " 101 " not in lines[0] + " ":
            raise TransportError("WebSocket handshake refused: %s" % lines[0])
        want = base64.b64encode(hashlib.sha1((key + _WS_GUID).encode()).digest()).decode()
        hdrs = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
        if hdrs.get("sec-websocket-accept") != want:
            raise TransportError("WebSocket handshake: bad Sec-WebSocket-Accept")

    def _recv_exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            chunk = self._sock.recv(max(65536, n - len(self._buf)))
            if not chunk:
                raise TransportError("WebSocket closed by the peer")
            self._buf += chunk
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self._sock.sendall(head + mask + masked)

    def send(self, text: str) -> None:
        self._send_frame(0x1, text.encode())

    def recv(self) -> str:
        message = b""
        while True:
            b0, b1 = self._recv_exact(2)
            fin, opcode = b0 & 0x80, b0 & 0x0F
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._recv_exact(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._recv_exact(8))[0]
            if n > MAX_MESSAGE or len(message) + n > MAX_MESSAGE:
                raise TransportError("WebSocket message larger than %d bytes" % MAX_MESSAGE)
            mask = self._recv_exact(4) if b1 & 0x80 else None
            payload = self._recv_exact(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x9:
                self._send_frame(0xA, payload)
                continue
            if opcode == 0xA:
                continue
            if opcode == 0x8:
                raise TransportError("WebSocket closed: %r" % payload[2:200])
            message += payload
            if fin:
                return message.decode("utf-8", "replace")

    def settimeout(self, t: Optional[float]) -> None:
        self._sock.settimeout(t)

    def close(self) -> None:
        try:
            self._send_frame(0x8, struct.pack("!H", 1000))
        except OSError:
            pass
        self._sock.close()


class CDPError(PortholeError):
    """A CDP command answered with an error."""


class CDPSession:
    """One WebSocket to a DevTools target; send() waits for the answer."""

    def __init__(self, ws_url: str, timeout: float = 30.0) -> None:
        self._ws = WebSocket(ws_url, timeout)
        self._next = 0
        self.events: List[Dict[str, Any]] = []

    def send(self, method: str, params: Optional[Dict[str, Any]] = None,
             timeout: float = 30.0) -> Dict[str, Any]:
        self._next += 1
        mid = self._next
        self._ws.send(json.dumps({"id": mid, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise OperationTimeoutError("CDP " + method, timeout)
            self._ws.settimeout(left)
            try:
                msg = json.loads(self._ws.recv())
            except socket.timeout:
                raise OperationTimeoutError("CDP " + method, timeout) from None
            if msg.get("id") == mid:
                if "error" in msg:
                    raise CDPError("CDP %s failed: %s" % (method, msg["error"]),
                                   {"error": msg["error"]})
                return msg.get("result") or {}
            if "method" in msg and len(self.events) < 1000:
                self.events.append(msg)

    def evaluate(self, expression: str, timeout: float = 30.0) -> Any:
        r = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                           "awaitPromise": True}, timeout)
        if "exceptionDetails" in r:
            raise CDPError("evaluate failed: %s" % r["exceptionDetails"].get("text"),
                           {"exception": r["exceptionDetails"]})
        return (r.get("result") or {}).get("value")

    def close(self) -> None:
        self._ws.close()

    def __enter__(self) -> "CDPSession":
        return self

    def __exit__(self, *a: Any) -> None:
        self.close()


def http_json(url: str, timeout: float = 30.0) -> Any:
    """GET a DevTools HTTP endpoint (/json/list, /json/version) behind cdp_url."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=timeout)
    try:
        conn.request("GET", parts.path + ("?" + parts.query if parts.query else ""))
        resp = conn.getresponse()
        body = resp.read()
    except (OSError, http.client.HTTPException) as e:
        raise TransportError("GET %s failed: %s" % (parts.path, e)) from None
    finally:
        conn.close()
    if resp.status != 200:
        raise TransportError("GET %s: HTTP %d: %r" % (parts.path, resp.status, body[:200]))
    return json.loads(body)


def first_page(cdp_url: str, timeout: float = 30.0) -> Dict[str, Any]:
    """The first page target behind cdp_url, creating one when there is none."""
    base = cdp_url.rstrip("/")
    targets = http_json(base + "/json/list", timeout)
    pages = [t for t in targets if t.get("type") == "page" and t.get("webSocketDebuggerUrl")]
    if pages:
        return pages[0]
    raise TransportError("the browser has no page open")
