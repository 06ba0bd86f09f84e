#!/usr/bin/env python3
"""The state database locked by another process, on a gateway of this
test's own: the gateway keeps answering, says the database is failing,
refuses new sandboxes with a clear 503, keeps the change it could not write
and writes it once the lock goes; the database is intact afterwards."""
import contextlib
import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture  # noqa: E402
from fixture import TestFailure, check, check_eq  # noqa: E402

TOKEN = "porthole-state-lock-test-" + secrets.token_hex(16)


class Gateway:
    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="porthole-state-lock-")
        self.state = os.path.join(self.tmp, "state")
        os.makedirs(self.state, mode=0o700)
        with open(os.path.join(self.state, "token"), "w") as f:
            f.write(TOKEN + "\n")
        cfg = os.path.join(self.tmp, "config.json")
        with open(cfg, "w") as f:
            json.dump({"browser_pool": 0, "templates": False, "max_sandboxes": 4,
                       "boot_timeout_s": 420}, f)
        self.port = fixture.free_port()
        self.log = os.path.join(self.tmp, "gateway.log")
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [fixture.EXE, "gateway", "--listen", "127.0.0.1:%d" % self.port, "--state-dir",
             self.state, "--config", cfg], stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
        fixture.wait_until(lambda: fixture.healthy(self.port, timeout=2), 60)

    def req(self, method, path, body=None, timeout=420):
        return fixture.request(self.port, method, path, body, token=TOKEN, timeout=timeout)

    def down(self):
        fixture.stop_own_gateway(self.proc, self.port, TOKEN, [self.state])
        shutil.rmtree(self.tmp, ignore_errors=True)


def rows(db_path):
    db = sqlite3.connect("file:%s?mode=ro" % db_path, uri=True, timeout=10)
    try:
        return {r[0] for r in db.execute("SELECT id FROM objects")}
    finally:
        db.close()


def state_db(gw):
    return gw.req("GET", "/v1/status").json()["state_db"]


def main():
    gw = Gateway()
    lock = None
    try:
        db_path = os.path.join(gw.state, "state.db")
        a = gw.req("POST", "/v1/sandboxes", {})
        check_eq(a.status, 201, "create: %r" % a.body)
        a_id = a.json()["id"]
        fixture.wait_until(lambda: a_id in rows(db_path), 30)
        check_eq(state_db(gw)["status"], "ok", "state_db before the lock")

        # Another process takes the database's write lock and keeps it.
        lock = sqlite3.connect(db_path, timeout=10, isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
        d = gw.req("DELETE", "/v1/sandboxes/" + a_id, timeout=120)
        check(d.status in (200, 202, 204), "delete under the lock: %d %r" % (d.status, d.body))
        # The gateway answers while its write waits on the lock ...
        check_eq(fixture.request(gw.port, "GET", "/healthz", token=None).status, 200, "healthz")
        # ... and says so once a write has failed.
        fixture.wait_until(lambda: state_db(gw)["status"] == "failing", 60)
        st = state_db(gw)
        check("locked" in st.get("error", ""), "the reason: %r" % st)
        refused = gw.req("POST", "/v1/sandboxes", {})
        check_eq(refused.status, 503, "create while the state cannot be saved: %r" % refused.body)
        check("state database" in refused.json()["error"]["message"], refused.body)
        check(a_id in rows(db_path), "the delete is not in the database yet")
        listed = [s["id"] for s in gw.req("GET", "/v1/sandboxes").json()["sandboxes"]]
        check(a_id not in listed, "the API already goes by the change: %r" % listed)

        lock.execute("COMMIT")
        lock.close()
        lock = None
        fixture.wait_until(lambda: state_db(gw)["status"] == "ok", 60)
        check(a_id not in rows(db_path), "the delete went in once the lock went")
        db = sqlite3.connect(db_path, timeout=10)
        check_eq(db.execute("PRAGMA integrity_check").fetchone()[0], "ok", "integrity")
        db.close()
        b = gw.req("POST", "/v1/sandboxes", {})
        check_eq(b.status, 201, "create after the lock: %r" % b.body)
        b_id = b.json()["id"]
        fixture.wait_until(lambda: b_id in rows(db_path), 30)
        fixture.log("state lock: answered under the lock, 503 while failing, delete written after")
    except TestFailure:
        sys.stderr.write(fixture.tail(gw.log))
        raise
    finally:
        if lock:
            with contextlib.suppress(Exception):
                lock.close()
        gw.down()


if __name__ == "__main__":
    main()
