#!/usr/bin/env python3
"""An OpenAI tool-calling loop (Chat Completions) whose tools run in a
Porthole sandbox: run_command, read_file and write_file.

    OPENAI_API_KEY=sk-... python3 examples/openai_tool_loop.py "Which kernel runs here?"

The sandbox is created for the task and deleted afterwards. OPENAI_MODEL
picks the model (default gpt-4.1). run_agent() takes the function that
talks to the model, so the loop can be driven by anything that speaks the
Chat Completions wire format.
"""

import json
import os
import sys
import urllib.request

from porthole import Sandbox
from porthole.tools import Tools

API_URL = "https://api.openai.com/v1/chat/completions"
SYSTEM = ("You are a coding assistant with a Debian sandbox. Use the tools to inspect and "
          "change it, then answer in one short paragraph.")


def openai_chat(body):
    """One Chat Completions request with the key from OPENAI_API_KEY."""
    req = urllib.request.Request(API_URL, data=json.dumps(body).encode(), headers={
        "Authorization": "Bearer " + os.environ["OPENAI_API_KEY"],
        "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as resp:
        return json.load(resp)


def run_agent(task, sandbox, chat=openai_chat, model=None, max_steps=12):
    """Lets the model work on task with the sandbox's tools; returns its answer."""
    tools = Tools(sandbox=sandbox)
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": task}]
    for _ in range(max_steps):
        resp = chat({"model": model or os.environ.get("OPENAI_MODEL", "gpt-4.1"),
                     "messages": messages, "tools": tools.openai()})
        msg = resp["choices"][0]["message"]
        calls = msg.get("tool_calls") or []
        messages.append({"role": "assistant", "content": msg.get("content"),
                         **({"tool_calls": calls} if calls else {})})
        if not calls:
            return msg.get("content") or ""
        for call in calls:
            messages.append(tools.handle(call))
    raise RuntimeError("the model gave no answer within %d steps" % max_steps)


def main():
    if not os.environ.get("OPENAI_API_KEY"):
        print("set OPENAI_API_KEY to run this example", file=sys.stderr)
        return 2
    task = " ".join(sys.argv[1:]) or "Write a file /root/hello.txt saying hello, then show " \
                                     "its size and the kernel version."
    with Sandbox() as sandbox:
        print(run_agent(task, sandbox))
    return 0


if __name__ == "__main__":
    sys.exit(main())
