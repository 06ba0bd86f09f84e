"""The HTTP client of the gateway's API (JSON, bearer token).

One fresh connection per request: requests are few and the gateway is
usually on loopback, and it makes the client safe to share between threads
without ever sending a command twice on a retried keep-alive connection.
"""

import http.client
import json
import socket
from typing import Any, Callable, Dict, Optional, Tuple, Union
from urllib.parse import quote, urlencode

from . import discover as _discover
from .errors import (GatewayUnavailableError, OperationTimeoutError, PortholeError,
                     TransportError, from_api)

DEFAULT_TIMEOUT_S = 60.0
# Creating a sandbox or a session waits until it is ready: a cold boot under
# software emulation on a busy machine can take minutes.
BOOT_TIMEOUT_S = 600.0
MAX_ERROR_BODY = 64 * 1024

Body = Union[None, bytes, Dict[str, Any], list]


def path_part(s: str) -> str:
    """An id as one path segment."""
    return quote(str(s), safe="")


class Response:
    def __init__(self, status: int, headers: Dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class Client:
    """Talks to one gateway. Without url/token it finds one the way the CLI
    does (see porthole.discover); discovery happens at the first request."""

    def __init__(self, url: Optional[str] = None, token: Optional[str] = None, *,
                 state_dir: Optional[str] = None, autostart: bool = True,
                 porthole_bin: Optional[str] = None) -> None:
        self._url = url.rstrip("/") if url else None
        self._token = token
        self._state_dir = state_dir
        self._autostart = autostart
        self._porthole_bin = porthole_bin
        if self._url:
            _discover.parse_url(self._url)

    @property
    def url(self) -> str:
        self._resolve()
        assert self._url is not None
        return self._url

    @property
    def token(self) -> Optional[str]:
        self._resolve()
        return self._token

    def _resolve(self) -> None:
        if self._url is None:
            url, token = _discover.discover(self._state_dir, self._autostart, self._porthole_bin)
            self._url = url
            if self._token is None:
                self._token = token

    def close(self) -> None:
        """Nothing stays open between requests; kept for symmetry."""

    # ---- requests ------------------------------------------------------

    def request(self, method: str, path: str, body: Body = None, *,
                query: Optional[Dict[str, Any]] = None, timeout: float = DEFAULT_TIMEOUT_S,
                what: str = "", on_line: Optional[Callable[[bytes], None]] = None) -> Response:
        """One request; returns the response when its status is 2xx, raises
        the error that fits otherwise. With on_line, a 2xx body is handed
        over line by line as it arrives (a streamed answer) instead."""
        self._resolve()
        assert self._url is not None
        scheme, host, port, prefix = _discover.parse_url(self._url)
        full = prefix + path
        if query:
            full += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        headers = {"Accept": "application/json"}
        if self._token:
            headers["Authorization"] = "Bearer " + self._token
        data: Optional[bytes]
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        else:
            data = body
            if data is not None:
                headers["Content-Type"] = "application/octet-stream"
        cls = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
        conn = cls(host, port, timeout=timeout)
        try:
            try:
                conn.request(method, full, body=data, headers=headers)
                resp = conn.getresponse()
                if on_line is not None and 200 <= resp.status < 300:
                    for line in iter(resp.readline, b""):
                        on_line(line)
                    payload = b""
                else:
                    payload = resp.read()
            except socket.timeout:
                raise OperationTimeoutError(what or "%s %s" % (method, path), timeout,
                                            message="no answer from the gateway within %ss "
                                                    "(%s %s)" % (timeout, method, path))
            except ConnectionRefusedError as e:
                raise GatewayUnavailableError("no gateway answers at %s: %s" % (self._url, e),
                                              {"url": self._url})
            except (OSError, http.client.HTTPException) as e:
                raise TransportError("%s %s: connection to the gateway failed: %s" %
                                     (method, path, e), {"url": self._url})
        finally:
            conn.close()
        out = Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, payload)
        if 200 <= resp.status < 300:
            return out
        raise self._error(out, what or "%s %s" % (method, path))

    @staticmethod
    def error_fields(resp: Response) -> Tuple[Optional[str], str]:
        """(code, message) of an error answer."""
        code, message = None, ""
        try:
            err = json.loads(resp.body[:MAX_ERROR_BODY]).get("error")
            if isinstance(err, dict):
                code = err.get("code") if isinstance(err.get("code"), str) else None
                message = err.get("message") if isinstance(err.get("message"), str) else ""
        except (ValueError, AttributeError):
            pass
        if not message:
            message = "HTTP %d: %s" % (resp.status,
                                       resp.body[:300].decode("utf-8", "replace") or "(no body)")
        return code, message

    def _error(self, resp: Response, what: str) -> PortholeError:
        code, message = self.error_fields(resp)
        err = from_api(resp.status, code, message, what)
        err.response = resp  # type: ignore[attr-defined]
        return err

    def json(self, method: str, path: str, body: Body = None, **kw: Any) -> Any:
        return self.request(method, path, body, **kw).json()

    # ---- small helpers -------------------------------------------------

    def healthz(self) -> Dict[str, Any]:
        return self.json("GET", "/healthz", timeout=10)


def error_is_missing_route(err: PortholeError) -> bool:
    """True when the gateway answered that it has no such endpoint (an
    older gateway), as opposed to "no such sandbox"."""
    resp = getattr(err, "response", None)
    if resp is None:
        return False
    if resp.status == 405:
        return True
    return resp.status == 404 and "no such endpoint" in err.message


def error_is_unknown_field(err: PortholeError, field: str) -> bool:
    """True when a 400 says the gateway does not know a request field."""
    resp = getattr(err, "response", None)
    return (resp is not None and resp.status == 400 and
            ('unknown field "%s"' % field) in err.message)
