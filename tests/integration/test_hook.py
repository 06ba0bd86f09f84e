#!/usr/bin/python3
"""hook: the external hook program sees the run context and can veto."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture  # noqa: E402
from fixture import check, check_eq, check_error  # noqa: E402

fx = fixture.ensure()
MARKER = "/root/hook-marker-%d" % os.getpid()


def hook_inputs(cmd):
    out = []
    try:
        with open(fixture.HOOK_LOG) as f:
            for line in f:
                try:
                    ctx = json.loads(line)
                except ValueError:
                    continue
                if ctx.get("command") == cmd:
                    out.append(ctx)
    except FileNotFoundError:
        pass
    return out


def test_hook_blocks():
    fx.exec("rm -f %s" % MARKER)
    cmd = "echo %s > %s" % (fixture.HOOK_WORD, MARKER)
    r = fx.exec_raw(cmd)
    check_error(r, 403, "blocked", "command the hook refuses")
    check_eq(r.json()["error"]["message"], fixture.HOOK_REASON, "blocked message (hook's stdout)")
    res = fx.exec("test -e %s" % MARKER, expect_exit=None)
    check_eq(res["exit_code"], 1, "test -e %s after a hooked-out command (0 means it ran)"
             % MARKER)
    lines = fixture.find_audit(lambda a: a.get("event") == "blocked" and a.get("command") == cmd)
    check(lines, "no 'blocked' audit line for %r", cmd)
    check_eq(lines[-1].get("reason"), fixture.HOOK_REASON, "audit reason")
    check_eq(lines[-1].get("vm_id"), fx.sandbox, "audit vm_id")
    res = fx.exec("echo after-hook")
    check_eq(res["stdout"], "after-hook\n", "exec after a hook veto")


def test_hook_blocks_raw():
    cmd = "echo %s-raw-%d" % (fixture.HOOK_WORD, os.getpid())
    r = fx.exec_raw(cmd, shell="raw")
    check_error(r, 403, "blocked", "raw command the hook refuses", message_contains="refuses")


def test_hook_sees_context():
    # The hook gets {vm_id, command, shell, timeout, actor} for allowed
    # commands too, and its "yes" lets them run.
    cmd = "echo hook-allowed-%d" % os.getpid()
    res = fx.exec_raw(cmd, shell="raw", timeout=17)
    check_eq(res.status, 200, "allowed command's status")
    check_eq(res.json()["stdout"], "hook-allowed-%d\n" % os.getpid(), "allowed command's stdout")
    seen = hook_inputs(cmd)
    check(seen, "the hook never saw %r", cmd)
    ctx = seen[-1]
    check_eq(ctx.get("vm_id"), fx.sandbox, "hook ctx vm_id")
    check_eq(ctx.get("shell"), "raw", "hook ctx shell")
    check_eq(ctx.get("timeout"), 17, "hook ctx timeout")
    check(isinstance(ctx.get("actor"), str) and ctx["actor"], "hook ctx actor: %r", ctx)


def test_hook_gets_no_gateway_descriptors():
    # Its stdin and stdout are pipes and its stderr the gateway's log;
    # none of the gateway's sockets (clients, guests' SSH) reaches it.
    fx.exec("echo hook-fds-%d" % os.getpid())
    with open(fixture.HOOK_LOG + ".fds") as f:
        fds = f.read()
    fixture.log("the hook's descriptors:\n" + fds)
    check("pipe:" in fds, "the hook's stdin and stdout are pipes: %s", fds)
    check("socket:" not in fds, "a gateway socket reached the hook: %s", fds)


def test_tricky_command_reaches_hook_intact():
    # Quotes, backslashes, newlines and non-ASCII are JSON-encoded for the
    # hook; it decodes exactly the command that was asked for.
    cmd = "printf '%%s\\n' \"a\\\"b\" 'tab\there' caf\u00e9 # hook-tricky-%d\necho second" \
        % os.getpid()
    res = fx.exec(cmd)
    check_eq(res["stdout"], 'a"b\ntab\there\ncaf\u00e9\nsecond\n', "tricky command's output")
    check(hook_inputs(cmd), "the hook did not get the command verbatim")


fixture.run([test_hook_blocks, test_hook_blocks_raw, test_hook_sees_context,
             test_hook_gets_no_gateway_descriptors, test_tricky_command_reaches_hook_intact])
