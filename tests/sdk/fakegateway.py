"""A scripted stand-in for the gateway's API on 127.0.0.1, for unit tests of
the client: it speaks the same routes and error shape, records every
request, and answers exec by rules the test sets."""

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class FakeGateway:
    def __init__(self, token="unit-test-token-generated-per-run"):
        self.token = token
        self.requests = []          # (method, path, query, body bytes)
        self.sandboxes = {}         # id -> record
        self.files = {}             # (id, path) -> bytes
        self.exec_rules = []        # (regex, handler(body) -> (status, json) | "drop")
        self.known_fields = {"vcpus", "mem_mib", "disk_mib", "env_vars", "timeout_minutes",
                             "network", "allowed_domains", "wait"}
        self.routes_extra = set()   # e.g. {"stop", "start"}
        self.next_id = 0
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _body(self):
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _reply(self, status, obj=None, raw=None, ctype="application/json"):
                data = raw if raw is not None else json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _error(self, status, code, message):
                self._reply(status, {"error": {"code": code, "message": message}})

            def _handle(self, method):
                u = urlsplit(self.path)
                body = self._body()
                q = {k: v[0] for k, v in parse_qs(u.query).items()}
                with fake.lock:
                    fake.requests.append((method, u.path, q, body))
                if u.path == "/healthz":
                    return self._reply(200, {"status": "ok", "version": "fake"})
                if self.headers.get("Authorization") != "Bearer " + fake.token:
                    return self._error(401, "unauthorized", "missing or wrong bearer token")
                r = fake.route(method, u.path, q, body)
                if r == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                status, obj = r
                if isinstance(obj, bytes):
                    return self._reply(status, raw=obj, ctype="application/octet-stream")
                return self._reply(status, obj)

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

            def do_PUT(self):
                self._handle("PUT")

            def do_DELETE(self):
                self._handle("DELETE")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    # -- what tests look at --------------------------------------------------

    def execs(self):
        return [json.loads(b)["command"] for m, p, q, b in self.requests
                if m == "POST" and p.endswith("/exec")]

    def on_exec(self, pattern, handler):
        self.exec_rules.append((re.compile(pattern), handler))

    # -- the API -------------------------------------------------------------

    def route(self, method, path, q, body):
        m = re.match(r"^/v1/sandboxes(?:/([^/]+)(/.*)?)?$", path)
        if not m:
            return 404, {"error": {"code": "not_found", "message": "no such endpoint: " + path}}
        sid, rest = m.group(1), m.group(2) or ""
        if sid is None:
            if method == "POST":
                req = json.loads(body or b"{}")
                for k in req:
                    if k not in self.known_fields:
                        return 400, {"error": {"code": "bad_request",
                                               "message": 'unknown field "%s"' % k}}
                self.next_id += 1
                new = "sb-fake%d" % self.next_id
                rec = {"id": new, "status": "ready", "env_vars": req.get("env_vars") or {},
                       "request": req}
                self.sandboxes[new] = rec
                return 201, rec
            return 200, {"sandboxes": list(self.sandboxes.values())}
        if rest in ("/stop", "/start", "/ports") and rest[1:] not in self.routes_extra:
            return 404, {"error": {"code": "not_found", "message": "no such endpoint: " + path}}
        rec = self.sandboxes.get(sid)
        if rec is None:
            return 404, {"error": {"code": "not_found",
                                   "message": 'no sandbox with id "%s"' % sid}}
        if rest == "":
            if method == "GET":
                return 200, rec
            if method == "DELETE":
                del self.sandboxes[sid]
                return 200, {"id": sid, "status": "deleted"}
        if rest == "/stop":
            rec["status"] = "stopped"
            return 200, rec
        if rest == "/start":
            rec["status"] = "ready"
            return 200, rec
        if rest == "/exec":
            req = json.loads(body)
            for rx, handler in self.exec_rules:
                if rx.search(req["command"]):
                    return handler(req)
            return 200, {"exit_code": 0, "stdout": "ran: %s\n" % req["command"], "stderr": "",
                         "duration_ms": 3, "stdout_truncated": False, "stderr_truncated": False}
        if rest == "/files":
            key = (sid, q.get("path"))
            if method == "PUT":
                self.files[key] = body
                return 200, {"path": q.get("path"), "bytes": len(body)}
            if key not in self.files:
                return 404, {"error": {"code": "not_found",
                                       "message": "%s: no such file or directory" % key[1]}}
            return 200, self.files[key]
        if rest == "/env":
            if method == "PUT":
                rec["env_vars"] = json.loads(body)["env_vars"]
            return 200, {"env_vars": rec["env_vars"]}
        return 405, {"error": {"code": "method_not_allowed", "message": "method not allowed"}}


def blocked(reason):
    return lambda req: (403, {"error": {"code": "blocked", "message": reason}})


def timed_out(req):
    return 504, {"error": {"code": "timeout",
                           "message": "command did not finish within %d s and was killed" %
                                      req["timeout"]}}


def drop(req):
    return "drop"
