#!/usr/bin/python3
"""veto: a command matching the deny list never reaches the guest."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture  # noqa: E402
from fixture import check, check_eq, check_error  # noqa: E402

fx = fixture.ensure()
MARKER = "/root/vetoed-marker-%d" % os.getpid()


def blocked_never_ran(cmd, rule, shell="login"):
    fx.exec("rm -f %s" % MARKER)
    r = fx.exec_raw(cmd, shell=shell)
    check_error(r, 403, "blocked", "denied command %r" % cmd, message_contains=rule)
    res = fx.exec("test -e %s" % MARKER, expect_exit=None)
    check_eq(res["exit_code"], 1, "test -e %s after a vetoed command (0 means it ran)" % MARKER)
    lines = fixture.find_audit(lambda a: a.get("event") == "blocked" and a.get("command") == cmd)
    check(lines, "no 'blocked' audit line for %r", cmd)
    a = lines[-1]
    check_eq(a.get("vm_id"), fx.sandbox, "audit vm_id")
    check_eq(a.get("shell"), shell, "audit shell")
    check(rule in (a.get("reason") or ""), "audit reason %r lacks the rule %r", a.get("reason"),
          rule)
    check(a.get("actor"), "audit line without an actor: %r", a)
    check(a.get("ts"), "audit line without ts: %r", a)
    # The run after it works on the same sandbox.
    res = fx.exec("echo after-veto")
    check_eq(res["stdout"], "after-veto\n", "exec after a veto")


def test_deny_rule():
    blocked_never_ran("touch %s; rm -rf /" % MARKER, "rm -rf /")


def test_deny_rule_raw_shell():
    blocked_never_ran("touch %s; rm -rf /" % MARKER, "rm -rf /", shell="raw")


def test_deny_rule_extra_whitespace():
    # Extra spaces or tabs do not get around a rule.
    blocked_never_ran("touch %s;  rm   -rf \t /" % MARKER, "rm -rf /")


def test_second_rule():
    blocked_never_ran("touch %s; mkfs.ext4 /dev/null" % MARKER, "mkfs")


def test_similar_command_allowed():
    # Only the rule's text is refused: rm -r -f on a scratch dir is fine.
    d = "/tmp/veto-allowed-%d" % os.getpid()
    fx.exec("mkdir -p %s/sub" % d)
    fx.exec("rm -r -f %s" % d)
    fx.exec("test ! -e %s" % d)
    lines = fixture.find_audit(lambda a: a.get("command") == "rm -r -f %s" % d)
    check(lines and lines[-1].get("event") == "run" and lines[-1].get("exit_code") == 0,
          "allowed command's audit line: %r", lines)


def test_actor_on_behalf():
    # An admin client that names who it acts for (the MCP server sends its
    # client's name) is audited as admin/NAME; a name with quotes or control
    # characters is kept printable.
    cmd = "echo actor-%d" % os.getpid()
    r = fixture.request(fx.port, "POST", "/v1/sandboxes/%s/exec" % fx.sandbox,
                        {"command": cmd}, headers={"X-Porthole-Actor": 'mcp:test "client"\t1'})
    check_eq(r.status, 200, "exec on behalf of a client")
    lines = fixture.find_audit(lambda a: a.get("command") == cmd)
    check(lines, "no audit line for %r", cmd)
    check_eq(lines[-1].get("actor"), "admin/mcp:test _client__1", "actor")


fixture.run([test_actor_on_behalf, test_deny_rule, test_deny_rule_raw_shell, test_deny_rule_extra_whitespace,
             test_second_rule, test_similar_command_allowed])
