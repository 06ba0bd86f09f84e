#!/usr/bin/python3
"""stream: POST .../exec with "stream": true answers newline-delimited JSON
events as the command prints ({"type": "stdout"|"stderr", "data"}, then
{"type": "exit", ...} or {"type": "error", "error"}); the first arrives while
the command still runs. A veto is the blocking form's 403; a timeout ends
the stream with an error event after the output so far; observers (the
audit log) see the whole result; `porthole sandbox exec` prints output as it
comes."""
import http.client
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture  # noqa: E402
from fixture import check, check_eq, check_error  # noqa: E402

fx = fixture.ensure()
TAG = "stream-%d" % os.getpid()


def open_stream(command, timeout=30, shell="login"):
    c = http.client.HTTPConnection("127.0.0.1", fx.port, timeout=120)
    body = json.dumps({"command": command, "timeout": timeout, "shell": shell, "stream": True})
    c.request("POST", "/v1/sandboxes/%s/exec" % fx.sandbox, body,
              {"Authorization": "Bearer " + fx.token, "Content-Type": "application/json"})
    return c, c.getresponse()


def events(resp):
    """Yields the stream's events one at a time, as they arrive."""
    while True:
        line = resp.readline()
        if not line:
            return
        yield json.loads(line)


def test_first_chunk_before_the_end():
    done = "/tmp/%s-done" % TAG
    c, resp = open_stream("rm -f %s; for i in 1 2 3; do echo $i; sleep 2; done; touch %s"
                          % (done, done))
    check_eq(resp.status, 200, "status of a streamed exec")
    check_eq(resp.getheader("Content-Type"), "application/x-ndjson", "content type")
    check_eq(resp.getheader("Transfer-Encoding"), "chunked", "transfer encoding")
    it = events(resp)
    first = next(it)
    check_eq(first, {"type": "stdout", "data": "1\n"}, "first event")
    # The command has not finished: its last step has not run yet.
    res = fx.exec("test -e %s" % done, expect_exit=None)
    check_eq(res["exit_code"], 1, "the command already ended when its first line arrived")
    rest = list(it)
    check_eq([e for e in rest if e["type"] == "stdout"],
             [{"type": "stdout", "data": "2\n"}, {"type": "stdout", "data": "3\n"}],
             "later output events")
    end = rest[-1]
    check_eq((end["type"], end["exit_code"]), ("exit", 0), "last event")
    check(end["duration_ms"] >= 4000, "duration %r", end)
    c.close()


def test_stderr_utf8_and_exit_code():
    # An e-acute split across two writes arrives whole; stderr has its own
    # events; a non-zero exit is an exit event, not an error.
    c, resp = open_stream("printf 'caf\\303'; sleep 1; printf '\\251\\n'; echo oops >&2; exit 3")
    check_eq(resp.status, 200, "status")
    evs = list(events(resp))
    out = "".join(e["data"] for e in evs if e["type"] == "stdout")
    err = "".join(e["data"] for e in evs if e["type"] == "stderr")
    check_eq(out, "caf\u00e9\n", "stdout joined")
    check_eq(err, "oops\n", "stderr joined")
    check_eq((evs[-1]["type"], evs[-1]["exit_code"]), ("exit", 3), "exit event")
    c.close()


def test_timeout_and_veto():
    c, resp = open_stream("echo before; sleep 30", timeout=2)
    check_eq(resp.status, 200, "status of a stream that times out")
    evs = list(events(resp))
    check_eq(evs[0], {"type": "stdout", "data": "before\n"}, "output before the timeout")
    check_eq(evs[-1]["type"], "error", "last event of a timed-out stream")
    check_eq(evs[-1]["error"]["code"], "timeout", "error code")
    c.close()
    # Vetoed before it reaches the guest: the blocking form's answer.
    r = fx.req("POST", "/v1/sandboxes/%s/exec" % fx.sandbox,
               {"command": "true; rm -rf /", "stream": True})
    check_error(r, 403, "blocked", "a deny-listed command, streamed")
    r = fx.req("POST", "/v1/sandboxes/%s/exec" % fx.sandbox, {"command": "true", "stream": "yes"})
    check_error(r, 400, "bad_request", "stream must be a boolean")
    # Observers saw the whole result of a streamed command.
    marker = "echo %s-audit; echo two" % TAG
    c, resp = open_stream(marker)
    list(events(resp))
    c.close()
    found = fixture.find_audit(lambda a: a.get("command") == marker)
    check(found, "no audit line for the streamed command")
    check_eq((found[0].get("exit_code"), found[0].get("stdout_bytes")),
             (0, len("%s-audit\ntwo\n" % TAG)), "audited result of the streamed command")


def test_quiet_command():
    # Longer than the server's send timeout without a byte of output: the
    # stream stays open.
    c, resp = open_stream("echo a; sleep 50; echo b", timeout=120)
    t0 = time.monotonic()
    evs = list(events(resp))
    check_eq([e.get("data") for e in evs], ["a\n", "b\n", None], "events of a quiet command")
    check_eq(evs[-1]["type"], "exit", "last event")
    check(time.monotonic() - t0 > 31, "the quiet part was shorter than the send timeout (30 s)")
    c.close()


def test_leaving_cancels():
    # A client that closes the stream cancels the command: it is killed in
    # the guest, and observers hear of it as an error.
    command = "echo started; sleep 47; echo never"
    c, resp = open_stream(command, timeout=120)
    check_eq(next(events(resp)), {"type": "stdout", "data": "started\n"}, "first event")
    resp.close()  # the response holds the socket too
    c.close()
    gone = fixture.wait_until(
        lambda: fx.exec("pgrep -f 'sleep 4[7]'", expect_exit=None)["exit_code"] == 1, 20, 0.5)
    check(gone, "the command of a left stream still runs in the guest")
    found = fixture.find_audit(lambda a: a.get("command") == command and a.get("error"), 10)
    check(found, "no audit line for the cancelled command")
    check("cancelled" in json.dumps(found[0]), "audit of a cancelled command: %r", found)


def test_cli_prints_live():
    env = dict(os.environ, PORTHOLE_URL=fx.url, PORTHOLE_TOKEN=fx.token)
    done = "/tmp/%s-cli-done" % TAG
    p = subprocess.Popen([fixture.EXE, "sandbox", "exec", fx.sandbox, "--",
                          "echo first; sleep 4; touch %s; echo second" % done],
                         env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        check_eq(p.stdout.readline(), "first\n", "the CLI's first line")
        check_eq(fx.exec("test -e %s" % done, expect_exit=None)["exit_code"], 1,
                 "the command already ended when the CLI printed its first line")
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    check_eq((p.returncode, out, err), (0, "second\n", ""), "the CLI's exit and the rest")
    # --json still gives the whole result in one envelope.
    r = subprocess.run([fixture.EXE, "sandbox", "exec", fx.sandbox, "--json", "--",
                        "echo a; echo b >&2; exit 4"], env=env, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=120)
    env_out = json.loads(r.stdout)
    check_eq((r.returncode, env_out["data"]["stdout"], env_out["data"]["stderr"],
              env_out["data"]["exit_code"]), (4, "a\n", "b\n", 4), "exec --json")


fixture.run([test_first_chunk_before_the_end, test_stderr_utf8_and_exit_code,
             test_timeout_and_veto, test_quiet_command, test_leaving_cancels,
             test_cli_prints_live])
