#!/usr/bin/python3
"""ports: a sandbox's guest port exposed on the host's 127.0.0.1 (SmolVM's
expose_local): a web server in the guest answers on the host port, a server
bound to the guest's loopback too; bad requests are refused; another guest
cannot reach the forward; close and delete take it away."""
import http.client
import json
import os
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture  # noqa: E402
from fixture import check, check_eq, check_error  # noqa: E402

fx = fixture.ensure()
MARK = "exposed-%d" % os.getpid()
sid = None
ports = {}


def serve(port, bind):
    """Starts a web server in the test's sandbox, serving /srv/PORT/mark."""
    # Every descriptor of the background job is redirected, or the command
    # would not end before the server does.
    fx.exec("mkdir -p /srv/%d; echo %s-%d > /srv/%d/mark; "
            "(cd /srv/%d && exec python3 -m http.server %d --bind %s) >/dev/null 2>&1 </dev/null &"
            % (port, MARK, port, port, port, port, bind), sandbox=sid)
    fx.exec("for i in $(seq 100); do curl -sf http://127.0.0.1:%d/mark && exit 0; sleep 0.2; "
            "done; exit 1" % port, sandbox=sid)


def host_get(port, path="/mark"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read().decode()
    finally:
        c.close()


def refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        return False
    except OSError:
        return True


def test_expose():
    global sid
    sid = fx.create_sandbox(timeout_minutes=30)["id"]
    check_eq(fx.api("GET", "/v1/sandboxes/%s/ports" % sid), {"ports": []}, "ports at first")
    serve(8000, "0.0.0.0")
    serve(8001, "127.0.0.1")

    got = fx.api("POST", "/v1/sandboxes/%s/ports" % sid, {"guest_port": 8000}, expect=201)
    check_eq(got["guest_port"], 8000, "guest_port")
    check_eq(got["host"], "127.0.0.1", "host")
    check(1024 <= got["host_port"] <= 65535, "host_port %r", got["host_port"])
    ports[8000] = got["host_port"]
    check_eq(host_get(ports[8000]), (200, "%s-8000\n" % MARK), "the guest's server on the host")

    want = fixture.free_port()
    got = fx.api("POST", "/v1/sandboxes/%s/ports" % sid,
                 {"guest_port": 8001, "host_port": want, "guest_loopback": True}, expect=201)
    check_eq((got["host_port"], got["guest_loopback"]), (want, True), "chosen host port")
    ports[8001] = want
    check_eq(host_get(want), (200, "%s-8001\n" % MARK), "a server on the guest's loopback")
    # Several connections at once, each its own.
    conns = [http.client.HTTPConnection("127.0.0.1", want, timeout=30) for _ in range(4)]
    for c in conns:
        c.request("GET", "/mark")
    for c in conns:
        check_eq(c.getresponse().read().decode(), "%s-8001\n" % MARK, "parallel connection")
        c.close()

    listed = fx.api("GET", "/v1/sandboxes/%s/ports" % sid)["ports"]
    check_eq(sorted((p["guest_port"], p["host_port"]) for p in listed),
             sorted(ports.items()), "listed ports")
    shown = fx.api("GET", "/v1/sandboxes/%s" % sid)["ports"]
    check_eq(len(shown), 2, "ports in the sandbox object")


def test_refused_requests():
    check(sid, "no sandbox (the first case failed)")
    path = "/v1/sandboxes/%s/ports" % sid
    for body in ({}, {"guest_port": 0}, {"guest_port": 70000}, {"guest_port": "80"},
                 {"guest_port": 80, "host_port": -1}, {"guest_port": 80, "hostport": 1},
                 {"guest_port": 80, "guest_loopback": "yes"}):
        check_error(fx.req("POST", path, body), 400, "bad_request", "POST ports %r" % body)
    check_error(fx.req("POST", path, {"guest_port": 8000}), 409, "conflict",
                "a guest port exposed twice", "already exposed")
    check_error(fx.req("POST", path, {"guest_port": 8002, "host_port": fx.port}), 409,
                "conflict", "a host port in use", "in use")
    check_error(fx.req("DELETE", path + "/8009"), 404, "not_found", "closing a port not exposed")
    check_error(fx.req("DELETE", path + "/x"), 400, "bad_request", "closing port x")
    check_error(fx.req("POST", "/v1/sandboxes/sb-000000000000/ports", {"guest_port": 80}), 404,
                "not_found", "ports of an unknown sandbox")
    check_eq(len(fx.api("GET", path)["ports"]), 2, "ports after refused requests")


def test_other_guest_cannot_reach():
    check(ports, "no ports (the first case failed)")
    # From the shared sandbox: the host's loopback through QEMU's host
    # address, and through the egress proxy. Both must fail.
    for port in ports.values():
        res = fx.exec("curl -sf -m 5 http://10.0.2.2:%d/mark; echo rc=$?; "
                      "curl -sf -m 5 -x \"$http_proxy\" http://127.0.0.1:%d/mark; echo rc=$?"
                      % (port, port), expect_exit=None)
        check(MARK not in res["stdout"], "another guest reached host port %d: %r", port,
              res["stdout"])
        check_eq(res["stdout"].count("rc=0"), 0, "curl from another guest to port %d: %r" %
                 (port, res["stdout"]))


def cli(*args):
    env = dict(os.environ, PORTHOLE_URL=fx.url, PORTHOLE_TOKEN=fx.token)
    p = subprocess.run([fixture.EXE] + list(args), env=env, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


def test_cli():
    check(sid, "no sandbox (the first case failed)")
    serve(8003, "127.0.0.1")
    rc, out, err = cli("sandbox", "port", "expose", sid, "8003")
    check_eq((rc, err), (0, ""), "porthole sandbox port expose")
    host, _, port = out.strip().rpartition(":")
    check_eq(host, "127.0.0.1", "printed address %r" % out)
    check_eq(host_get(int(port)), (200, "%s-8003\n" % MARK), "port exposed by the CLI")
    rc, out, err = cli("sandbox", "port", "list", sid)
    check_eq(rc, 0, "port list: " + err)
    check("127.0.0.1:%s -> guest port 8003\n" % port in out, "port list output %r", out)
    rc, out, err = cli("sandbox", "port", "list", sid, "--json")
    listed = json.loads(out)["data"]["ports"] if rc == 0 else []
    check(any(p["guest_port"] == 8003 for p in listed), "port list --json %r", out)
    rc, out, err = cli("sandbox", "port", "close", sid, "8003")
    check_eq(rc, 0, "port close: " + err)
    check(refused(int(port)), "the CLI's port still answers after close")
    rc, out, err = cli("sandbox", "port", "close", sid, "8003")
    check(rc != 0 and "not exposed" in err, "closing twice: rc %d, %r", rc, err)
    rc, out, err = cli("sandbox", "port", "expose", sid, "0")
    check_eq(rc, 2, "expose port 0 is a usage error: " + err)


def test_close_and_delete():
    check(ports, "no ports (the first case failed)")
    got = fx.api("DELETE", "/v1/sandboxes/%s/ports/8000" % sid)
    check_eq(got, {"guest_port": 8000, "status": "closed"}, "close reply")
    check(refused(ports[8000]), "host port %d still answers after close", ports[8000])
    check_eq([p["guest_port"] for p in fx.api("GET", "/v1/sandboxes/%s/ports" % sid)["ports"]],
             [8001], "ports after close")
    check_eq(host_get(ports[8001])[0], 200, "the other port after close")
    # Exposed again, on the port it had.
    got = fx.api("POST", "/v1/sandboxes/%s/ports" % sid,
                 {"guest_port": 8000, "host_port": ports[8000]}, expect=201)
    check_eq(host_get(got["host_port"])[0], 200, "re-exposed port")

    check_eq(fx.delete_sandbox(sid).status, 200, "delete")
    for port in ports.values():
        check(refused(port), "host port %d still answers after the sandbox was deleted", port)


fixture.run([test_expose, test_refused_requests, test_other_guest_cannot_reach, test_cli,
             test_close_and_delete])
