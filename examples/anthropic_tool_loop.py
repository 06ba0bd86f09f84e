#!/usr/bin/env python3
"""An Anthropic tool-use loop (Messages API) whose tools run in a Porthole
sandbox, guarded by a callback that vetoes destructive commands before they
reach the guest.

    ANTHROPIC_API_KEY=sk-ant-... python3 examples/anthropic_tool_loop.py "task"

ANTHROPIC_MODEL picks the model (default claude-sonnet-4-5). run_agent()
takes the function that talks to the model, so any source of Messages API
responses can drive it.
"""

import json
import os
import sys
import urllib.request

from porthole import Callback, CommandBlockedError, Sandbox
from porthole.tools import Tools

API_URL = "https://api.anthropic.com/v1/messages"
SYSTEM = "You have a Debian sandbox. Use the tools, then answer briefly."


class NoDestruction(Callback):
    """Refuses commands that would wipe the guest; the model sees the refusal."""

    DENY = ("rm -rf /", "mkfs", "dd if=/dev/zero of=/dev/")

    def on_pre_run(self, ctx):
        for bad in self.DENY:
            if bad in ctx.command:
                raise CommandBlockedError("refused: %r is not allowed" % bad, vm_id=ctx.vm_id,
                                          command=ctx.command)


def anthropic_messages(body):
    """One Messages API request with the key from ANTHROPIC_API_KEY."""
    req = urllib.request.Request(API_URL, data=json.dumps(body).encode(), headers={
        "x-api-key": os.environ["ANTHROPIC_API_KEY"], "anthropic-version": "2023-06-01",
        "content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as resp:
        return json.load(resp)


def run_agent(task, sandbox, call=anthropic_messages, model=None, max_steps=12):
    tools = Tools(sandbox=sandbox)
    messages = [{"role": "user", "content": task}]
    for _ in range(max_steps):
        resp = call({"model": model or os.environ.get("ANTHROPIC_MODEL", "claude-sonnet-4-5"),
                     "max_tokens": 2048, "system": SYSTEM, "tools": tools.anthropic(),
                     "messages": messages})
        messages.append({"role": "assistant", "content": resp["content"]})
        uses = [b for b in resp["content"] if b.get("type") == "tool_use"]
        if resp.get("stop_reason") != "tool_use" or not uses:
            return "".join(b.get("text", "") for b in resp["content"] if b.get("type") == "text")
        messages.append({"role": "user", "content": [tools.handle(b) for b in uses]})
    raise RuntimeError("the model gave no answer within %d steps" % max_steps)


def main():
    if not os.environ.get("ANTHROPIC_API_KEY"):
        print("set ANTHROPIC_API_KEY to run this example", file=sys.stderr)
        return 2
    task = " ".join(sys.argv[1:]) or "How much disk space is free in the sandbox?"
    with Sandbox(callbacks=[NoDestruction()]) as sandbox:
        print(run_agent(task, sandbox))
    return 0


if __name__ == "__main__":
    sys.exit(main())
