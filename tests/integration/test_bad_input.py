#!/usr/bin/python3
"""bad input: malformed or hostile requests get the right 4xx, and the gateway
keeps serving."""
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture  # noqa: E402
from fixture import check, check_eq, check_error  # noqa: E402

fx = fixture.ensure()
EXEC = "/v1/sandboxes/%s/exec" % fx.sandbox
JSON = {"Content-Type": "application/json"}


def test_malformed_json():
    for body in (b"{bad", b"{\"command\": \"true\"", b"\xff\xfe{}", b"{\"command\": \"true\"} x",
                 b"{\"command\": \"a\", \"command\": \"b\"}"):
        r = fx.req("POST", EXEC, body, headers=JSON)
        check_error(r, 400, "bad_request", "exec body %r" % body)
        r = fx.req("POST", "/v1/sandboxes", body, headers=JSON)
        check_error(r, 400, "bad_request", "create body %r" % body)


def test_not_an_object():
    for body in (b"[1, 2]", b"\"command\"", b"42", b"null", b"true"):
        r = fx.req("POST", EXEC, body, headers=JSON)
        check_error(r, 400, "bad_request", "exec body %r" % body)
        r = fx.req("POST", "/v1/sandboxes", body, headers=JSON)
        check_error(r, 400, "bad_request", "create body %r" % body)


def test_wrong_types_and_ranges():
    creates = [
        {"vcpus": "2"}, {"vcpus": 2.5}, {"vcpus": 0}, {"vcpus": 1000}, {"mem_mib": -1},
        {"mem_mib": 10 ** 30}, {"disk_mib": "big"}, {"timeout_minutes": 0},
        {"timeout_minutes": True}, {"env_vars": 5}, {"wait": "yes"},
        {"unknown_field": 1}, {"vcpus": 1, "Vcpus": 1},
    ]
    for body in creates:
        r = fx.req("POST", "/v1/sandboxes", body)
        check_error(r, 400, "bad_request", "create %r" % body)
    execs = [
        {"command": 42}, {"command": None}, {}, {"command": ""}, {"command": ["echo", "hi"]},
        {"command": "true", "shell": "zsh"}, {"command": "true", "shell": 1},
        {"command": "true", "timeout": "5"}, {"command": "true", "timeout": 0},
        {"command": "true", "timeout": -5}, {"command": "true", "timeout": 10 ** 9},
        {"command": "true", "bogus": 1}, {"command": "a\u0000b"},
    ]
    for body in execs:
        r = fx.req("POST", EXEC, body)
        check_error(r, 400, "bad_request", "exec %r" % body)


def check_too_large(path, body, what):
    status, reply = fixture.raw_request(fx.port, "POST", path, body, headers=JSON)
    check_eq(status, 413, "%s: status (reply %r)" % (what, reply[:200]))
    check(b'"too_large"' in reply, "%s: reply %r", what, reply[:200])


def test_huge_bodies():
    check_too_large(EXEC, b"{\"command\": \"" + b"a" * (2 * 1024 * 1024) + b"\"}",
                    "2 MB exec body")
    check_too_large("/v1/sandboxes", b" " * (2 * 1024 * 1024), "2 MB create body")
    # A command over the 64 KiB limit inside a body that is itself allowed.
    r = fx.req("POST", EXEC, {"command": "echo " + "x" * (70 * 1024)})
    check(r.status in (400, 413), "70 KiB command: HTTP %d %r", r.status, r.body[:200])


def test_unknown_ids_and_routes():
    for method, path in (("GET", "/v1/sandboxes/sb-000000000000"),
                         ("DELETE", "/v1/sandboxes/sb-000000000000"),
                         ("POST", "/v1/sandboxes/sb-000000000000/exec"),
                         ("GET", "/v1/sandboxes/sb-000000000000/env"),
                         ("GET", "/v1/sandboxes/..%2f..%2fetc"),
                         ("GET", "/v1/nothing-here"),
                         ("GET", "/v2/sandboxes"),
                         ("GET", "/v1/sandboxes/%s/nothing" % fx.sandbox)):
        body = {"command": "true"} if method == "POST" else None
        r = fx.req(method, path, body)
        check_error(r, 404, "not_found", "%s %s" % (method, path))
    r = fx.req("GET", "/v1/sandboxes/" + "a" * 3000)
    check(400 <= r.status < 500, "over-long id: HTTP %d", r.status)


def test_auth():
    paths = [("GET", "/v1/sandboxes", None), ("POST", EXEC, {"command": "touch /root/unauth"}),
             ("DELETE", "/v1/sandboxes/" + fx.sandbox, None)]
    wrong = [
        None,  # no header at all
        fixture.TOKEN[:-1] + ("x" if fixture.TOKEN[-1] != "x" else "y"),  # same length
        fixture.TOKEN[:-1],  # one short
        fixture.TOKEN + "0",  # one long
        "x",
        "",
    ]
    for method, path, body in paths:
        for tok in wrong:
            r = fx.req(method, path, body, token=tok)
            check_error(r, 401, "unauthorized", "%s %s with token %r" % (method, path, tok))
        for header in ("Basic " + fixture.TOKEN, "bearer", "Bearer  " + fixture.TOKEN + " x",
                       fixture.TOKEN):
            r = fx.req(method, path, body, token=None, headers={"Authorization": header})
            check_error(r, 401, "unauthorized", "%s %s with Authorization %r" %
                        (method, path, header))
    # None of those reached the guest or deleted anything.
    fx.exec("test ! -e /root/unauth")
    check_eq(fx.api("GET", "/v1/sandboxes/" + fx.sandbox)["status"], "ready", "shared sandbox")
    # healthz needs no token.
    check_eq(fx.req("GET", "/healthz", token=None).status, 200, "healthz without token")


def test_raw_garbage():
    # Broken HTTP on raw sockets: whatever the gateway answers, it survives.
    junk = [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(64),  # a TLS hello
        b"GET /healthz\r\n\r\n",
        b"GARBAGE / HTTP/1.1\r\n\r\n",
        b"POST /v1/sandboxes HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
        b"POST /v1/sandboxes HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 100000 + b"\r\n\r\n",
        b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n",
        os.urandom(4096),
    ]
    for data in junk:
        with socket.create_connection(("127.0.0.1", fx.port), timeout=10) as s:
            try:
                s.sendall(data)
                s.recv(4096)
            except OSError:
                pass
    # A client that connects and says nothing does not block others.
    idle = socket.create_connection(("127.0.0.1", fx.port), timeout=10)
    try:
        check(fixture.healthy(fx.port), "healthz with an idle connection open")
    finally:
        idle.close()


def test_still_serving():
    check(fixture.healthy(fx.port), "healthz after bad input")
    res = fx.exec("echo survived")
    check_eq(res["stdout"], "survived\n", "exec after bad input")


def test_chosen_id_taken():
    # A client-chosen id is the sandbox's id; a second create with it is a
    # 409 while the first exists, and a malformed one is a 400.
    sid = "chosen_%d" % os.getpid()
    r = fx.req("POST", "/v1/sandboxes", {"id": sid}, timeout=fixture.BOOT_TIMEOUT_S + 60)
    check_eq(r.status, 201, "create with a chosen id: %r" % r.body[:300])
    check_eq(r.json()["id"], sid, "the sandbox's id")
    # Its host name is the id, with '_' (no DNS label has one) as '-'.
    check_eq(fx.exec("hostname", sandbox=sid)["stdout"], "chosen-%d\n" % os.getpid(),
             "the guest's host name")
    r = fx.req("POST", "/v1/sandboxes", {"id": sid, "wait": False})
    check_error(r, 409, "conflict", "create with a taken id")
    r = fx.req("POST", "/v1/sandboxes", {"id": "Not/Valid", "wait": False})
    check_error(r, 400, "bad_request", "create with a malformed id")
    check_eq(fx.delete_sandbox(sid).status, 200, "delete the chosen-id sandbox")
    check_eq(fx.req("GET", "/v1/sandboxes/" + sid).status, 404, "gone after delete")


def test_config_the_guest_cannot_take():
    # Every value passes alone; together they are more config than the guest
    # init reads: a 400 at once, for create and for PUT env alike, instead of
    # a guest that boots without them.
    env = {"BIG_%d" % i: "x" * 4000 for i in range(16)}
    r = fx.req("POST", "/v1/sandboxes", {"env_vars": env, "wait": False})
    check_error(r, 400, "bad_request", "create with 64 KB of env_vars",
                message_contains="the guest takes at most")
    r = fx.req("POST", "/v1/browser/sessions", {"env_vars": env, "wait": False})
    check_error(r, 400, "bad_request", "browser session with 64 KB of env_vars",
                message_contains="the guest takes at most")


fixture.run([test_malformed_json, test_not_an_object, test_wrong_types_and_ranges,
             test_config_the_guest_cannot_take,
             test_huge_bodies, test_unknown_ids_and_routes, test_auth, test_raw_garbage,
             test_still_serving, test_chosen_id_taken])
