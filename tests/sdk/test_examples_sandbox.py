#!/usr/bin/python3
"""examples/openai_tool_loop.py and examples/anthropic_tool_loop.py driven by
scripted models (each vendor's wire format, no network) on the fixture's
shared sandbox; the tools' effects are checked in the guest."""

import os
import secrets
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sdkfixture  # noqa: E402
from sdkfixture import check, check_eq  # noqa: E402
import scripted  # noqa: E402

sys.path.insert(0, os.path.join(sdkfixture.ROOT, "examples"))
import anthropic_tool_loop  # noqa: E402
import openai_tool_loop  # noqa: E402

from porthole import Sandbox  # noqa: E402

FX = sdkfixture.ensure()
SID = FX.shared_sandbox_id()


def test_openai_loop():
    sb = Sandbox.from_id(SID, client=FX.client())
    tag = secrets.token_hex(4)
    note, upper = "/root/oa-%s.txt" % tag, "/root/oa-%s.up" % tag
    model = scripted.ScriptedModel([
        scripted.chat_tool_calls(("write_file", {"path": note, "content": "hello %s\n" % tag})),
        scripted.chat_tool_calls(("run_command", {"command": "tr a-z A-Z < %s > %s && cat %s"
                                                  % (note, upper, upper)}),
                                 ("read_file", {"path": note})),
        scripted.chat_answer("The file says HELLO."),
    ])
    answer = openai_tool_loop.run_agent("make a note", sb, chat=model)
    model.done()
    check_eq(answer, "The file says HELLO.", "final answer")
    first = model.requests[0]
    check_eq([t["function"]["name"] for t in first["tools"]],
             ["run_command", "read_file", "write_file"], "tools offered")
    check_eq(first["tools"][0]["type"], "function", "tool type")
    check_eq(first["tools"][0]["function"]["parameters"]["required"], ["command"], "schema")
    r1 = scripted.chat_tool_results(model.requests[1])
    check_eq(r1, {"call_0": "wrote %d bytes to %s" % (len("hello %s\n" % tag), note)},
             "write_file result")
    r2 = scripted.chat_tool_results(model.requests[2])
    check_eq(r2["call_0"], "exit_code: 0\nstdout:\nHELLO %s\nstderr:\n<empty>" % tag.upper(),
             "run_command result")
    check_eq(r2["call_1"], "hello %s\n" % tag, "read_file result")
    # Each assistant turn with tool calls is sent back before its results.
    msgs = model.requests[2]["messages"]
    check_eq([m["role"] for m in msgs], ["system", "user", "assistant", "tool", "assistant",
                                         "tool", "tool"], "conversation shape")
    check_eq(sb.read_file(upper), ("HELLO %s\n" % tag.upper()).encode(), "effect in the guest")


def test_anthropic_loop():
    sb = Sandbox.from_id(SID, client=FX.client(), callbacks=[anthropic_tool_loop.NoDestruction()])
    tag = secrets.token_hex(4)
    path = "/root/an-%s.txt" % tag
    model = scripted.ScriptedModel([
        scripted.anthropic_tool_use(("run_command", {"command": "echo %s > %s; wc -c < %s" %
                                                     (tag, path, path)}),
                                    ("run_command", {"command": "rm -rf / --no-preserve-root"})),
        scripted.anthropic_tool_use(("run_command",
                                     {"command": "echo %s" % sdkfixture.SERVER_DENY}),
                                    ("read_file", {"path": path})),
        scripted.anthropic_answer("Wrote the file; the wipe was refused."),
    ])
    answer = anthropic_tool_loop.run_agent("task", sb, call=model)
    model.done()
    check_eq(answer, "Wrote the file; the wipe was refused.", "answer")
    first = model.requests[0]
    check_eq(first["tools"][0]["name"], "run_command", "tool name")
    check("input_schema" in first["tools"][0], "anthropic schema key")
    res1 = scripted.anthropic_tool_results(model.requests[1])
    check_eq(res1["toolu_scripted00"]["is_error"], False, "first call ok")
    check_eq(res1["toolu_scripted00"]["content"],
             "exit_code: 0\nstdout:\n%d\nstderr:\n<empty>" % (len(tag) + 1), "first result")
    check_eq(res1["toolu_scripted01"]["is_error"], True, "the callback's veto is an error")
    check("refused" in res1["toolu_scripted01"]["content"], "veto text %r",
          res1["toolu_scripted01"]["content"])
    check_eq(FX.audit_for("rm -rf / --no-preserve-root"), [], "the vetoed command reached "
             "the gateway")
    res2 = scripted.anthropic_tool_results(model.requests[2])
    check_eq(res2["toolu_scripted00"]["is_error"], True, "the gateway's block is an error")
    check("deny rule" in res2["toolu_scripted00"]["content"], "block text")
    check_eq(res2["toolu_scripted01"]["content"], "%s\n" % tag, "read_file result")
    # Assistant turns go back verbatim, tool_use blocks included.
    check_eq(model.requests[1]["messages"][1], {"role": "assistant",
                                                "content": model.responses[0]["content"]},
             "assistant turn")
    check_eq(sb.run("cat %s" % path).output, tag, "effect in the guest")


if __name__ == "__main__":
    sdkfixture.run([test_openai_loop, test_anthropic_loop])
