#!/usr/bin/env python3
"""The agent-browser flow: a model drives one browser session from the host
through shell commands, with a single run_host_bash tool (OpenAI Chat
Completions). It starts the session with `porthole browser start --live
--json`, reads session_id and cdp_url from the JSON envelope, works the
page (agent-browser --cdp CDP_URL when agent-browser is installed; porthole
browser screenshot otherwise), and stops the session. If the model does not
stop it, the safety net here does.

    OPENAI_API_KEY=sk-... python3 examples/agent_browser.py "Open the start page and screenshot it."

The tool runs the model's commands on this machine, as this user: run it
where that is acceptable.
"""

import json
import os
import subprocess
import sys
import urllib.request

API_URL = "https://api.openai.com/v1/chat/completions"

INSTRUCTIONS = """You automate one Porthole browser session from the host.
Plan your commands before you run them, and keep each one simple.
1. Run `porthole browser start --live --json`.
2. Read session_id and cdp_url from the parsed_browser_session section of the tool output.
3. If `agent-browser` exists, use `agent-browser --cdp <cdp_url> ...` for page work.
4. Save a screenshot with `porthole browser screenshot <session_id> <file.png>`.
5. Stop the browser with `porthole browser stop <session_id>` when done.
6. Answer with four lines: title, url, screenshot_path, session_id.
Only use the run_host_bash tool."""

TOOL = {"type": "function", "function": {
    "name": "run_host_bash",
    "description": "Run a shell command on the host machine.",
    "parameters": {"type": "object", "properties": {
        "command": {"type": "string", "description": "Shell command to execute on the host."},
        "timeout": {"type": "integer", "description": "Maximum seconds to wait."}},
        "required": ["command"], "additionalProperties": False}}}


class BrowserCliDeps:
    """What the tool learned: the session it started (for the safety net)."""

    def __init__(self):
        self.session = None


def run_host_bash(deps, command, timeout=120):
    result = subprocess.run(["bash", "-lc", command], capture_output=True, text=True,
                            timeout=timeout, check=False)
    parsed = None
    if result.returncode == 0 and "browser start" in command and "--json" in command:
        try:
            data = json.loads(result.stdout).get("data") or {}
            parsed = {"session_id": data["session_id"], "cdp_url": data["cdp_url"],
                      "live_url": data.get("live_url")}
            deps.session = parsed
        except (ValueError, KeyError, TypeError):
            pass
    lines = ["exit_code: %d" % result.returncode, "stdout:", result.stdout.strip() or "<empty>",
             "stderr:", result.stderr.strip() or "<empty>"]
    if parsed:
        lines += ["parsed_browser_session:", "session_id: %s" % parsed["session_id"],
                  "cdp_url: %s" % parsed["cdp_url"],
                  "live_url: %s" % (parsed["live_url"] or "<none>")]
    return "\n".join(lines)


def openai_chat(body):
    req = urllib.request.Request(API_URL, data=json.dumps(body).encode(), headers={
        "Authorization": "Bearer " + os.environ["OPENAI_API_KEY"],
        "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as resp:
        return json.load(resp)


def run_agent(task, deps, chat=openai_chat, model=None, max_steps=15):
    messages = [{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": task}]
    try:
        for _ in range(max_steps):
            resp = chat({"model": model or os.environ.get("OPENAI_MODEL", "gpt-4.1"),
                         "messages": messages, "tools": [TOOL]})
            msg = resp["choices"][0]["message"]
            calls = msg.get("tool_calls") or []
            messages.append({"role": "assistant", "content": msg.get("content"),
                             **({"tool_calls": calls} if calls else {})})
            if not calls:
                return msg.get("content") or ""
            for call in calls:
                args = json.loads(call["function"]["arguments"] or "{}")
                out = run_host_bash(deps, args["command"], int(args.get("timeout") or 120))
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": out})
        raise RuntimeError("no answer within %d steps" % max_steps)
    finally:
        # Safety net: stop the session if the agent did not.
        if deps.session:
            subprocess.run(["porthole", "browser", "stop", deps.session["session_id"]],
                           capture_output=True, timeout=120, check=False)


def main():
    if not os.environ.get("OPENAI_API_KEY"):
        print("set OPENAI_API_KEY to run this example", file=sys.stderr)
        return 2
    task = " ".join(sys.argv[1:]) or "Open a browser session, take a screenshot, then stop it."
    print(run_agent(task, BrowserCliDeps()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
