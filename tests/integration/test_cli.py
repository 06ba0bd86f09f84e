#!/usr/bin/python3
"""cli: `porthole sandbox ...` against the shared gateway through
PORTHOLE_URL and PORTHOLE_TOKEN."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture  # noqa: E402
from fixture import check, check_eq  # noqa: E402

fx = fixture.ensure()
ENV = dict(os.environ, PORTHOLE_URL=fx.url, PORTHOLE_TOKEN=fx.token,
           PORTHOLE_STATE_DIR=os.path.join(fixture.SCRATCH, "cli-state"))


def porthole(*args, env=None, timeout=300):
    p = subprocess.run([fixture.EXE] + list(args), env=env or ENV, stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def envelope(out, what):
    check(out.endswith("\n") and out.count("\n") == 1, "%s: not one line: %r", what, out[:500])
    env = json.loads(out)
    check_eq(list(env), ["ok", "command", "exit_code", "data", "error"], "%s: envelope keys" % what)
    return env


def test_exec_json():
    rc, out, err = porthole("sandbox", "exec", fx.sandbox, "--json", "--", "echo", "hi")
    check_eq(rc, 0, "exit code (stderr %r)" % err)
    env = envelope(out, "exec --json")
    check_eq((env["ok"], env["command"], env["exit_code"], env["error"]),
             (True, "sandbox.exec", 0, None), "envelope")
    check_eq(env["data"]["stdout"], "hi\n", "data.stdout")
    check_eq(env["data"]["exit_code"], 0, "data.exit_code")
    # A failing command: envelope and process exit code carry it.
    rc, out, _ = porthole("sandbox", "exec", fx.sandbox, "--json", "--", "echo oops >&2; exit 4")
    env = envelope(out, "failing exec --json")
    check_eq((rc, env["exit_code"], env["data"]["exit_code"], env["data"]["stderr"]),
             (4, 4, 4, "oops\n"), "failing command")


def test_exec_text():
    rc, out, err = porthole("sandbox", "exec", fx.sandbox, "--",
                            "echo to-out; echo to-err >&2; exit 7")
    check_eq(rc, 7, "exit code propagated")
    check_eq(out, "to-out\n", "stdout")
    check("to-err\n" in err, "stderr %r", err)
    rc, out, _ = porthole("sandbox", "exec", fx.sandbox, "--", "echo", "$PH_TEST_GREETING")
    check_eq((rc, out), (0, fixture.SANDBOX_ENV["PH_TEST_GREETING"] + "\n"), "login env var")
    rc, out, _ = porthole("sandbox", "exec", fx.sandbox, "--shell", "raw", "--",
                          'echo "${PH_TEST_GREETING-unset}"')
    check_eq((rc, out), (0, "unset\n"), "raw shell")
    rc, _, _ = porthole("sandbox", "exec", fx.sandbox, "--", "porthole-no-such-command")
    check_eq(rc, 127, "exit code of an unknown command")


def test_list():
    rc, out, err = porthole("sandbox", "list", "--json")
    check_eq(rc, 0, "list exit code (%r)" % err)
    env = envelope(out, "list --json")
    check_eq((env["ok"], env["command"]), (True, "sandbox.list"), "list envelope")
    ids = [s["id"] for s in env["data"]["sandboxes"]]
    check(fx.sandbox in ids, "%s not in %r", fx.sandbox, ids)
    rc, out, _ = porthole("sandbox", "list")
    check(rc == 0 and fx.sandbox in out, "text list: %d %r", rc, out[:500])


def test_usage_error():
    for args in (["sandbox", "exec", "--json"], ["sandbox", "exec", fx.sandbox, "--json"],
                 ["sandbox", "exec", fx.sandbox, "--shell", "zsh", "--json", "--", "true"],
                 ["sandbox", "exec", fx.sandbox, "--timeout", "abc", "--json", "--", "true"],
                 ["sandbox", "frobnicate", "--json"]):
        rc, out, _ = porthole(*args)
        check_eq(rc, 2, "exit code of %r" % args)
        env = envelope(out, " ".join(args))
        check_eq((env["ok"], env["exit_code"], env["error"]["code"]), (False, 2, "usage_error"),
                 "envelope of %r" % args)
    rc, out, err = porthole("sandbox", "exec")
    check_eq(rc, 2, "text-mode usage error exit code")
    check(err.strip(), "usage error printed nothing on stderr")


def test_unknown_id():
    rc, out, _ = porthole("sandbox", "exec", "sb-000000000000", "--json", "--", "true")
    env = envelope(out, "exec unknown id")
    check_eq((rc, env["ok"], env["exit_code"], env["error"]["code"]), (1, False, 1, "not_found"),
             "unknown id")
    rc, out, err = porthole("sandbox", "exec", "sb-000000000000", "--", "true")
    check_eq(rc, 1, "text-mode unknown id exit code")
    check("sb-000000000000" in err or "not" in err, "text-mode error message %r", err)


def test_blocked_and_unauthorized():
    rc, out, _ = porthole("sandbox", "exec", fx.sandbox, "--json", "--", "true; rm -rf /")
    env = envelope(out, "blocked exec")
    check_eq((rc, env["ok"], env["error"]["code"]), (1, False, "blocked"), "blocked via CLI")
    bad = dict(ENV, PORTHOLE_TOKEN="wrong-token")
    rc, out, _ = porthole("sandbox", "list", "--json", env=bad)
    env = envelope(out, "list with a wrong token")
    check_eq((rc, env["ok"], env["error"]["code"]), (1, False, "unauthorized"), "wrong token")


def test_delete_batch():
    """delete ID... tries every id: the real one goes, the unknown one is
    reported, and the exit code says not everything went."""
    rc, out, err = porthole("sandbox", "create", "--json", timeout=600)
    env = envelope(out, "create")
    check_eq((rc, env["ok"]), (0, True), "create via CLI: %s" % err)
    sid = env["data"]["id"]
    rc, out, _ = porthole("sandbox", "delete", sid, "sb-000000000000", "--json")
    env = envelope(out, "delete batch")
    check_eq((rc, env["ok"]), (1, False), "one of two deletes failed")
    check_eq(env["data"]["deleted"], [sid], "deleted ids")
    check_eq([(f["id"], f["code"]) for f in env["data"]["failed"]],
             [("sb-000000000000", "not_found")], "failed ids")
    r = fx.req("GET", "/v1/sandboxes/" + sid)
    check_eq(r.status, 404, "the deleted sandbox is gone")


fixture.run([test_exec_json, test_exec_text, test_list, test_usage_error, test_unknown_id,
             test_blocked_and_unauthorized, test_delete_batch])
