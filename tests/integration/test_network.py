#!/usr/bin/python3
"""network: a guest reaches nothing of the host or its networks; its one way
out is the gateway's egress proxy, which applies the VM's policy.

The test builds its own small world and tears it down at the end:
  - a network namespace joined to the host by a veth pair: the "internet"
    (203.0.113.10, TEST-NET-3), a "LAN host" (10.213.0.10) and a "metadata
    server" (169.254.169.254), all one HTTP(S) server in the namespace that
    logs every request it gets, and a DNS server there (203.0.113.10:53)
    that names them web.test, other.test, lan.test and meta.test;
  - a listener of its own on the host's loopback;
  - a gateway of its own whose egress resolves names with that DNS server.
No packet leaves this machine. Needs root (ip netns); skips without it.
"""
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture  # noqa: E402
from fixture import TestFailure, check, check_eq  # noqa: E402

NS = "ph-net-%s" % secrets.token_hex(3)
VETH_HOST, VETH_NS = "phv%s" % NS[-6:], "phn%s" % NS[-6:]
HOST_ADDR, WEB_ADDR = "203.0.113.1", "203.0.113.10"
LAN_ADDR, META_ADDR = "10.213.0.10", "169.254.169.254"
NAMES = {"web.test": WEB_ADDR, "other.test": WEB_ADDR, "lan.test": LAN_ADDR,
         "meta.test": META_ADDR}
TOKEN = "porthole-network-test-token-" + secrets.token_hex(16)

# Runs inside the namespace: one HTTP server on :80, one HTTPS server on :443
# (certificate for web.test and other.test), a DNS server on :53; each request
# is logged as a JSON line (destination address, Host, path).
SERVERS = r'''
import http.server, json, socket, socketserver, ssl, struct, sys, threading
log_path, cert, key, names = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
lock = threading.Lock()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with lock, open(log_path, "a") as f:
            f.write(json.dumps({"dst": self.connection.getsockname()[0],
                                "host": self.headers.get("Host"), "path": self.path,
                                "tls": isinstance(self.connection, ssl.SSLSocket)}) + "\n")
        body = (self.headers.get("Host", "") + " says hello\n").encode()
        if self.path.startswith("/big"):
            body = b"x" * 1000000
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
plain = S(("0.0.0.0", 80), H)
tls = S(("0.0.0.0", 443), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
tls.socket = ctx.wrap_socket(tls.socket, server_side=True)
def dns():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 53))
    while True:
        q, peer = s.recvfrom(512)
        i, labels = 12, []
        while q[i]:
            labels.append(q[i + 1:i + 1 + q[i]].decode()); i += 1 + q[i]
        qtype = struct.unpack(">H", q[i + 1:i + 3])[0]
        name = ".".join(labels).lower()
        addr = names.get(name)
        question = q[12:i + 5]
        if addr and qtype == 1:
            ans = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 30, 4) + socket.inet_aton(addr)
            head = q[:2] + b"\x81\x80" + struct.pack(">HHHH", 1, 1, 0, 0)
        else:
            ans = b""
            head = q[:2] + (b"\x81\x80" if addr else b"\x81\x83") + struct.pack(">HHHH", 1, 0, 0, 0)
        s.sendto(head + question + ans, peer)
for target in (plain.serve_forever, tls.serve_forever, dns):
    threading.Thread(target=target, daemon=True).start()
print("up", flush=True)
threading.Event().wait()
'''


def sh(*argv, check_rc=True):
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if check_rc and r.returncode != 0:
        raise TestFailure("%s: exit %d: %s" % (" ".join(argv), r.returncode, r.stderr.strip()))
    return r


class World:
    """The namespace, its servers, a loopback listener and our own gateway."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="porthole-net-")
        self.state = os.path.join(self.tmp, "state")
        self.server_log = os.path.join(self.tmp, "requests.jsonl")
        self.procs = []
        self.loopback = None
        self.gateway = None
        self.port = None

    def up(self):
        sh("ip", "netns", "add", NS)
        sh("ip", "link", "add", VETH_HOST, "type", "veth", "peer", "name", VETH_NS)
        sh("ip", "link", "set", VETH_NS, "netns", NS)
        sh("ip", "addr", "add", HOST_ADDR + "/24", "dev", VETH_HOST)
        sh("ip", "link", "set", VETH_HOST, "up")
        for a in (LAN_ADDR, META_ADDR):
            sh("ip", "route", "add", a + "/32", "dev", VETH_HOST)
        nsx = ("ip", "netns", "exec", NS)
        for a in (WEB_ADDR + "/24", LAN_ADDR + "/32", META_ADDR + "/32"):
            sh(*nsx, "ip", "addr", "add", a, "dev", VETH_NS)
        sh(*nsx, "ip", "link", "set", VETH_NS, "up")
        sh(*nsx, "ip", "link", "set", "lo", "up")
        sh(*nsx, "ip", "route", "add", "default", "via", HOST_ADDR)
        cert, key = os.path.join(self.tmp, "cert.pem"), os.path.join(self.tmp, "key.pem")
        sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
           "/CN=web.test", "-addext", "subjectAltName=DNS:web.test,DNS:other.test", "-keyout",
           key, "-out", cert)
        self.ca = open(cert, "rb").read()
        srv = subprocess.Popen([*nsx, sys.executable, "-c", SERVERS, self.server_log, cert, key,
                                json.dumps(NAMES)], stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=sys.stderr, text=True)
        self.procs.append(srv)
        check_eq(srv.stdout.readline().strip(), "up", "namespace servers")

        # A host service on loopback that no guest may reach.
        self.loopback = socket.socket()
        self.loopback.bind(("127.0.0.1", 0))
        self.loopback.listen(8)
        self.loopback_hits = []

        def accept():
            while True:
                try:
                    c, _ = self.loopback.accept()
                except OSError:
                    return
                self.loopback_hits.append(time.time())
                c.close()
        threading.Thread(target=accept, daemon=True).start()

        os.makedirs(self.state, mode=0o700)
        with open(os.path.join(self.state, "token"), "w") as f:
            f.write(TOKEN + "\n")
        cfg = os.path.join(self.tmp, "config.json")
        with open(cfg, "w") as f:
            json.dump({"browser_pool": 0, "max_sandboxes": 4, "egress_dns": WEB_ADDR,
                       "boot_timeout_s": 420}, f)
        self.port = fixture.free_port()
        logf = open(os.path.join(self.tmp, "gateway.log"), "ab")
        self.gateway = subprocess.Popen(
            [fixture.EXE, "gateway", "--listen", "127.0.0.1:%d" % self.port, "--state-dir",
             self.state, "--config", cfg], stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
        fixture.wait_until(lambda: fixture.healthy(self.port, timeout=2), 60)

    def down(self):
        if self.gateway:
            fixture.stop_own_gateway(self.gateway, self.port, TOKEN, [self.state])
        for pid in fixture.qemu_pids(self.state):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for p in self.procs:
            p.kill()
            p.wait()
        if self.loopback:
            self.loopback.close()
        sh("ip", "link", "del", VETH_HOST, check_rc=False)
        sh("ip", "netns", "del", NS, check_rc=False)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def req(self, method, path, body=None, **kw):
        return fixture.request(self.port, method, path, body, token=TOKEN, **kw)

    def api(self, method, path, body=None, expect=200):
        r = self.req(method, path, body)
        if r.status != expect:
            raise TestFailure("%s %s: %d %s" % (method, path, r.status, r.body[:300]))
        return r.json()

    def sandbox(self, **body):
        sb = self.api("POST", "/v1/sandboxes", dict(body, timeout_minutes=20), expect=201)
        check_eq(sb["status"], "ready", "sandbox status")
        return sb

    def run(self, sid, command, timeout=60):
        return self.api("POST", "/v1/sandboxes/%s/exec" % sid,
                        {"command": command, "timeout": timeout})

    def arrived(self, pred):
        if not os.path.exists(self.server_log):
            return []
        with open(self.server_log) as f:
            return [e for e in map(json.loads, f) if pred(e)]


def tcp_probe(host, port):
    """A shell line that prints open/closed for host:port (bash's /dev/tcp),
    never through the proxy."""
    return ("timeout 5 bash -c 'exec 3<>/dev/tcp/%s/%d' 2>/dev/null && echo open || echo closed"
            % (host, port))


def main():
    if os.geteuid() != 0 or not shutil.which("ip"):
        print("SKIP: needs root and ip(8) for a network namespace")
        return 77
    w = World()
    failures = 0
    try:
        w.up()
        inet = w.sandbox()
        sid = inet["id"]
        check_eq(inet["network"]["mode"], "internet", "default network mode")

        def test_no_way_in():
            # Every loopback port the host has open, ours included, and the
            # gateway itself, through QEMU's 10.0.2.2.
            ports = {w.port, w.loopback.getsockname()[1]}
            for line in open("/proc/net/tcp").read().splitlines()[1:]:
                f = line.split()
                if f[3] == "0A" and f[1].startswith("0100007F:"):
                    ports.add(int(f[1].split(":")[1], 16))
            script = "; ".join("echo %d $(%s)" % (p, tcp_probe("10.0.2.2", p))
                               for p in sorted(ports))
            out = w.run(sid, script, timeout=300)["stdout"]
            opened = [ln for ln in out.splitlines() if ln.endswith("open")]
            check_eq(opened, [], "host loopback ports open to the guest")
            check_eq(len(out.splitlines()), len(ports), "every port probed")
            check_eq(w.loopback_hits, [], "connections that reached the loopback listener")
            # The LAN, the metadata server and the internet directly (not
            # through the proxy): closed too.
            for host in (LAN_ADDR, META_ADDR, WEB_ADDR, HOST_ADDR):
                check_eq(w.run(sid, tcp_probe(host, 80))["stdout"].strip(), "closed",
                         "direct TCP to %s:80" % host)

        def test_internet_by_name():
            r = w.run(sid, "curl -sS --max-time 30 http://web.test/plain")
            check_eq((r["exit_code"], r["stdout"]), (0, "web.test says hello\n"), "HTTP by name")
            check_eq(w.req("PUT", "/v1/sandboxes/%s/files?path=/root/ca.pem" % sid, w.ca).status,
                     200, "CA upload")
            r = w.run(sid, "curl -sS --max-time 30 --cacert /root/ca.pem https://web.test/tls")
            check_eq((r["exit_code"], r["stdout"]), (0, "web.test says hello\n"), "HTTPS by name")
            hits = w.arrived(lambda e: e["path"] in ("/plain", "/tls"))
            check_eq(sorted((e["path"], e["tls"]) for e in hits),
                     [("/plain", False), ("/tls", True)], "requests at the server")

        def test_private_targets_refused():
            for url in ("http://lan.test/lan", "http://meta.test/meta",
                        "http://%s/lan-ip" % LAN_ADDR, "http://%s/latest/meta-data" % META_ADDR,
                        "http://%s/host-ip" % HOST_ADDR, "http://127.0.0.1:%d/" % w.port,
                        "http://10.0.2.2:%d/" % w.port):
                r = w.run(sid, "curl -s -o /dev/null -w '%%{http_code}' --max-time 30 "
                               "--proxy http://10.0.2.100:3128 '%s'" % url)
                check(r["stdout"] in ("403", "000"), "%s answered %s", url, r["stdout"])
            check_eq(w.arrived(lambda e: e["dst"] in (LAN_ADDR, META_ADDR) or
                               e["path"] in ("/host-ip",)), [], "private requests that arrived")
            audit = os.path.join(w.state, "audit.jsonl")
            refused = [json.loads(ln) for ln in open(audit) if "egress_refused" in ln]
            check(any(e.get("host") == "lan.test" for e in refused),
                  "no audit line for lan.test: %r", refused[-3:])

        def test_counters():
            before = w.api("GET", "/v1/sandboxes/" + sid)["network"]
            r = w.run(sid, "curl -sS --max-time 60 -o /dev/null -w '%{size_download}' "
                           "http://web.test/big")
            check_eq(r["stdout"], "1000000", "downloaded bytes")
            after = w.api("GET", "/v1/sandboxes/" + sid)["network"]
            got = after["bytes_in"] - before["bytes_in"]
            check(1000000 <= got <= 1100000, "bytes_in grew by %d for a 1 MB download", got)
            check(after["connections"] > before["connections"], "connections counted")
            check(after["refused"] >= 1, "refusals counted: %r", after)

        def test_none():
            sb = w.sandbox(network="none")
            check_eq(sb["network"]["mode"], "none", "mode")
            r = w.run(sb["id"], "curl -s -o /dev/null -w '%{http_code}' --max-time 20 "
                                "http://web.test/none; echo; getent hosts web.test || echo no-dns")
            lines = r["stdout"].split()
            check(lines[0] in ("403", "000"), "network none answered %r", lines)
            check_eq(lines[-1], "no-dns", "DNS under network none")
            check_eq(w.arrived(lambda e: e["path"] == "/none"), [], "requests that arrived")
            w.req("DELETE", "/v1/sandboxes/" + sb["id"])

        def test_allowed_domains():
            sb = w.sandbox(allowed_domains=["web.test"])
            check_eq(sb["network"]["mode"], "allowlist", "mode")
            ok = w.run(sb["id"], "curl -sS --max-time 30 http://web.test/allowed")
            check_eq(ok["stdout"], "web.test says hello\n", "the allowed name")
            for url in ("http://other.test/other", "http://%s/bare-ip" % WEB_ADDR):
                r = w.run(sb["id"], "curl -s -o /dev/null -w '%%{http_code}' --max-time 20 '%s'"
                                    % url)
                check_eq(r["stdout"], "403", url)
            # HTTPS: CONNECT to an allowed name carrying another name's SNI.
            r = w.run(sb["id"], "echo | timeout 20 openssl s_client -proxy 10.0.2.100:3128 "
                                "-connect web.test:443 -servername other.test 2>&1 | "
                                "grep -c 'BEGIN CERTIFICATE'")
            check_eq(r["stdout"].strip(), "0", "TLS handshakes for another name behind an "
                                               "allowed CONNECT")
            check_eq(w.arrived(lambda e: e["path"] in ("/other", "/bare-ip")), [],
                     "refused requests that arrived")
            w.req("DELETE", "/v1/sandboxes/" + sb["id"])

        for t in (test_no_way_in, test_internet_by_name, test_private_targets_refused,
                  test_counters, test_none, test_allowed_domains):
            start = time.monotonic()
            try:
                t()
                print("ok   %s (%.1f s)" % (t.__name__, time.monotonic() - start), flush=True)
            except Exception as e:  # noqa: BLE001
                failures += 1
                print("FAIL %s: %s" % (t.__name__, e), flush=True)
    finally:
        if failures:
            with contextlib.suppress(OSError):
                print("--- gateway.log:\n" + fixture.tail(os.path.join(w.tmp, "gateway.log"), 40))
        w.down()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
