#!/usr/bin/python3
"""templates: a gateway builds the sandbox template in the background, and
sandboxes created once it is ready are clones of it, each with an identity
of its own (host name, machine id, RNG output, clock, SSH client key), its
own disk and its own env vars. A changed image gets a new template, and the
old one goes with its image.

Runs its own gateway on a cache dir of its own, whose base image is the
real one seen through symlinks, so that "a changed image" is a new image
dir the test makes, not a rebuild."""
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture  # noqa: E402
from fixture import TestFailure, check, check_eq  # noqa: E402

TOKEN = "porthole-template-test-token-0b9e4d71c2a85f36aa"
IMAGE_FILES = ("vmlinuz", "initrd.img", "rootfs.img", "manifest.json")
BUILD_TIMEOUT_S = 600


def real_cache():
    base = os.environ.get("PORTHOLE_CACHE_DIR")
    if base:
        return base
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(xdg, "porthole")


class Gateway:
    def __init__(self):
        # A short path: QEMU's sockets in run dirs under it must fit in
        # sun_path (108 bytes), and the build tree's scratch dir is deep.
        self.tmp = tempfile.mkdtemp(prefix="ph-tpl-")
        self.state = os.path.join(self.tmp, "state")
        self.cache = os.path.join(self.tmp, "cache")
        self.images = os.path.join(self.cache, "images")
        self.real_base = os.path.realpath(os.path.join(real_cache(), "images", "base"))
        check(os.path.exists(os.path.join(self.real_base, "rootfs.img")),
              "no base image at %s", self.real_base)
        os.makedirs(self.state, mode=0o700)
        os.makedirs(self.images)
        self.image_version("base-0000000000a1")
        cfg = os.path.join(self.tmp, "config.json")
        with open(cfg, "w") as f:
            json.dump({"browser_pool": 0, "max_sandboxes": 6, "boot_timeout_s": 300,
                       "egress_dns": "127.0.0.1:9"}, f)
        self.port = fixture.free_port()
        self.log = os.path.join(self.tmp, "gateway.log")
        env = dict(os.environ, PORTHOLE_TOKEN=TOKEN, PORTHOLE_CACHE_DIR=self.cache)
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen(
                [fixture.EXE, "gateway", "--listen", "127.0.0.1:%d" % self.port, "--state-dir",
                 self.state, "--config", cfg], stdin=subprocess.DEVNULL, stdout=logf,
                stderr=logf, env=env)
        fixture.wait_until(lambda: fixture.healthy(self.port, timeout=2), 60)

    def image_version(self, name):
        """A new base image dir (the real image's files, linked) that
        images/base points at from now on."""
        d = os.path.join(self.images, name)
        os.makedirs(d)
        for f in IMAGE_FILES:
            os.symlink(os.path.join(self.real_base, f), os.path.join(d, f))
        link = os.path.join(self.images, "base.new")
        os.symlink(name, link)
        os.replace(link, os.path.join(self.images, "base"))
        return d

    def req(self, method, path, body=None, **kw):
        return fixture.request(self.port, method, path, body, token=TOKEN, **kw)

    def api(self, method, path, body=None, expect=200, timeout=120):
        r = self.req(method, path, body, timeout=timeout)
        if r.status != expect:
            raise TestFailure("%s %s: HTTP %d, want %d: %r" % (method, path, r.status, expect,
                                                              r.body[:500]))
        return r.json() if r.body else None

    def template(self, kind="sandbox"):
        for t in self.api("GET", "/v1/status")["templates"]:
            if t["kind"] == kind:
                return t
        raise TestFailure("no %s template in /v1/status" % kind)

    def wait_template(self, not_name=None):
        t0 = time.monotonic()
        last = {}

        def ready():
            last.update(self.template())
            check(last["state"] != "failed", "template build failed: %r", last)
            return last["state"] == "ready" and last["name"] != not_name
        if not fixture.wait_until(ready, BUILD_TIMEOUT_S, interval=1):
            raise TestFailure("sandbox template not ready after %d s: %r\n%s" %
                              (BUILD_TIMEOUT_S, last, fixture.tail(self.log)))
        fixture.log("template %s ready after %.1f s (build %s ms)" %
                    (last["name"], time.monotonic() - t0, last.get("build_ms")))
        return last

    def sandbox(self, **body):
        t0 = time.monotonic()
        sb = self.api("POST", "/v1/sandboxes", dict(body, timeout_minutes=20), expect=201,
                      timeout=400)
        check_eq(sb["status"], "ready", "sandbox status")
        fixture.log("sandbox %s (%s) ready in %.2f s" % (sb["id"], sb.get("served_from"),
                                                         time.monotonic() - t0))
        return sb

    def run(self, sid, command):
        res = self.api("POST", "/v1/sandboxes/%s/exec" % sid,
                       {"command": command, "timeout": 60})
        check_eq(res["exit_code"], 0, "exit code of %r (stderr %r)" % (command, res["stderr"]))
        return res["stdout"]

    def down(self):
        fixture.stop_own_gateway(self.proc, self.port, TOKEN, [self.state, self.cache])
        shutil.rmtree(self.tmp, ignore_errors=True)


def identity(gw, sid):
    """What a guest shows as its own; "clock" is checked against the host's
    clock around the command."""
    before = time.time()
    out = gw.run(sid, "hostname; cat /etc/machine-id; head -c 16 /dev/urandom | od -An -tx1 | "
                      "tr -d ' \\n'; echo; date +%s.%N; "
                      "ssh-keygen -y -f /etc/ssh/ssh_host_ed25519_key | cut -d' ' -f2; "
                      "cat /root/.ssh/authorized_keys")
    after = time.time()
    host, mid, rnd, now, hostkey, key = out.split("\n", 5)
    check(before - 2 <= float(now) <= after + 2, "%s: guest clock %s, host %.3f to %.3f", sid, now,
          before, after)
    return {"hostname": host, "machine_id": mid, "random": rnd, "clock": float(now),
            "host_key": hostkey.strip(), "key": key.strip()}


def test_clones(gw):
    tpl = gw.wait_template()
    check_eq(gw.template("browser")["state"], "missing", "browser template without an image")
    tdir = os.path.join(gw.cache, "templates", tpl["name"])
    for f in ("memory.ram", "device.state", "disk.qcow2", "template.json"):
        check(os.path.exists(os.path.join(tdir, f)), "template lacks %s", f)
    a = gw.sandbox(env_vars={"PH_CLONE": "first clone"})
    b = gw.sandbox()
    try:
        for sb in (a, b):
            check_eq(sb["served_from"], "template", "served_from of %s" % sb["id"])
            with open(os.path.join(gw.state, "vms", sb["id"], "template")) as f:
                check_eq(f.read(), tdir, "the template %s names" % sb["id"])
        ia, ib = identity(gw, a["id"]), identity(gw, b["id"])
        for sb, i in ((a, ia), (b, ib)):
            check_eq(i["hostname"], sb["id"], "hostname")
            with open(os.path.join(gw.state, "vms", sb["id"], "client_key.pub")) as f:
                check_eq(i["key"], f.read().strip(), "the only key sshd takes")
            with open(os.path.join(gw.state, "vms", sb["id"], "host_key.pub")) as f:
                check_eq(i["host_key"], f.read().split()[1], "the host key sshd offers")
        check(ia["machine_id"] != ib["machine_id"], "two clones share machine id %s",
              ia["machine_id"])
        check(len(ia["random"]) == 32 and ia["random"] != ib["random"],
              "RNG output of two clones: %s and %s", ia["random"], ib["random"])
        with open(os.path.join(tdir, "client_key.pub")) as f:
            check(f.read().strip() != ia["key"], "a clone still takes the template's key")
        check(ia["host_key"] != ib["host_key"], "two clones offer one host key")
        # Env vars, and the disk: each clone's own.
        check_eq(gw.run(a["id"], "echo $PH_CLONE").strip(), "first clone", "env var")
        check_eq(gw.run(b["id"], "echo \"[$PH_CLONE]\"").strip(), "[]", "env var of the other")
        gw.run(a["id"], "echo only-in-a > /root/mine.txt && sync")
        check_eq(gw.run(b["id"], "cat /root/mine.txt 2>/dev/null || echo absent").strip(),
                 "absent", "a file of another clone")
        # Stop and start: a clone boots again from its own disk.
        gw.api("POST", "/v1/sandboxes/%s/stop" % a["id"], {}, timeout=300)
        got = gw.api("POST", "/v1/sandboxes/%s/start" % a["id"], {}, timeout=400)
        check_eq(got["status"], "ready", "clone started again")
        check_eq(gw.run(a["id"], "cat /root/mine.txt").strip(), "only-in-a",
                 "a clone's file after stop and start")
    finally:
        for sb in (a, b):
            check_eq(gw.req("DELETE", "/v1/sandboxes/" + sb["id"]).status, 200, "delete")
    for sb in (a, b):
        check(not os.path.exists(os.path.join(gw.state, "vms", sb["id"])),
              "run dir of %s left behind", sb["id"])
    check(not fixture.qemu_pids(gw.state), "QEMU left running: %r", fixture.qemu_pids(gw.state))
    return tpl


def test_snapshot(gw):
    """A snapshot keeps the disk and the running processes of its instant;
    what starts from it has an identity of its own; it cannot go while a
    sandbox's disk is on it, and leaves nothing once deleted."""
    src = gw.sandbox()
    try:
        gw.run(src["id"], "echo written-before > /root/before.txt; sleep 100000 >/dev/null "
                          "2>&1 </dev/null & echo $! > /root/sleeper.pid; sync")
        snap = gw.api("POST", "/v1/sandboxes/%s/snapshot" % src["id"], {}, expect=201,
                      timeout=300)
        sid = snap["snapshot_id"]
        fixture.log("snapshot %s: %s MiB in %s ms" % (sid, snap["size_bytes"] >> 20,
                                                      snap["took_ms"]))
        check_eq(gw.run(src["id"], "cat /root/before.txt").strip(), "written-before",
                 "the source runs on after its snapshot")
        gw.run(src["id"], "echo written-after > /root/after.txt")
        check_eq(gw.req("POST", "/v1/sandboxes", {"from_snapshot": sid, "vcpus": 1}).status, 400,
                 "a size next to from_snapshot")
        check_eq(gw.req("POST", "/v1/sandboxes", {"from_snapshot": "snap-nope"}).status, 404,
                 "an unknown snapshot")
        r = gw.sandbox(from_snapshot=sid)
        try:
            check_eq(r["served_from"], "snapshot", "served_from")
            check_eq(r["from_snapshot"], sid, "from_snapshot")
            check_eq(gw.run(r["id"], "cat /root/before.txt").strip(), "written-before",
                     "a file written before the snapshot")
            check_eq(gw.run(r["id"], "cat /root/after.txt 2>/dev/null || echo absent").strip(),
                     "absent", "a file written after it")
            check_eq(gw.run(r["id"], "kill -0 $(cat /root/sleeper.pid) && echo alive").strip(),
                     "alive", "a process of the snapshot's instant")
            ia, ib = identity(gw, src["id"]), identity(gw, r["id"])
            check_eq(ib["hostname"], r["id"], "hostname of the restored sandbox")
            check(ia["machine_id"] != ib["machine_id"], "restored sandbox kept the machine id")
            check(ia["key"] != ib["key"], "restored sandbox kept the source's SSH key")
            check(ia["host_key"] != ib["host_key"], "restored sandbox kept the source's host key")
            check_eq(gw.req("DELETE", "/v1/snapshots/" + sid).status, 409,
                     "deleting a snapshot a sandbox's disk is on")
        finally:
            check_eq(gw.req("DELETE", "/v1/sandboxes/" + r["id"]).status, 200, "delete restored")
        listed = [s["snapshot_id"] for s in gw.api("GET", "/v1/snapshots")["snapshots"]]
        check(sid in listed, "snapshot %s not listed: %r", sid, listed)
        check_eq(gw.req("DELETE", "/v1/snapshots/" + sid).status, 200, "delete snapshot")
        check(fixture.wait_until(lambda: not os.path.exists(
            os.path.join(gw.state, "snapshots", sid)), 30), "snapshot files left behind")
        check_eq(gw.req("GET", "/v1/snapshots/" + sid).status, 404, "a deleted snapshot")
    finally:
        gw.req("DELETE", "/v1/sandboxes/" + src["id"])


def test_image_change(gw, old):
    """A new image gets a new template; the old template goes with its image."""
    old_image = os.path.realpath(os.path.join(gw.images, "base"))
    gw.image_version("base-0000000000b2")
    shutil.rmtree(old_image)
    new = gw.wait_template(not_name=old["name"])
    check(new["name"] != old["name"], "template name unchanged after the image changed")
    sb = gw.sandbox()
    try:
        check_eq(sb["served_from"], "template", "served_from after the image changed")
        with open(os.path.join(gw.state, "vms", sb["id"], "template")) as f:
            check(f.read().endswith("/" + new["name"]), "a new sandbox uses the new template")
    finally:
        gw.req("DELETE", "/v1/sandboxes/" + sb["id"])
    check(fixture.wait_until(lambda: not os.path.exists(
        os.path.join(gw.cache, "templates", old["name"])), 30),
        "the template of a removed image is still there")


def main():
    gw = Gateway()
    try:
        tpl = test_clones(gw)
        test_snapshot(gw)
        test_image_change(gw, tpl)
    except BaseException:
        fixture.log("--- gateway.log:\n" + fixture.tail(gw.log, 60))
        raise
    finally:
        gw.down()
    print("test_template: OK")


if __name__ == "__main__":
    main()
