#!/usr/bin/env python3
"""A computer-use loop on a live Porthole browser session: the model sees
screenshots and sends clicks, typing and scrolling (OpenAI Responses API,
computer tool). Navigation is limited by the session's allowed_domains,
which the gateway enforces; the loop stops after a step limit, and a
pending safety check stops it unless --yes is given.

    OPENAI_API_KEY=sk-... python3 examples/computer_use.py \
        --url https://example.com --allow example.com "Find the main heading."

Watch it happen: the live_url printed at start opens the session's screen.
OPENAI_COMPUTER_MODEL (default computer-use-preview) and
OPENAI_COMPUTER_TOOL (default computer_use_preview) pick the model and
the tool type.
"""

import argparse
import json
import os
import sys
import urllib.request

from porthole import BrowserSession, BrowserSessionConfig
from porthole.tools import Tools

API_URL = "https://api.openai.com/v1/responses"


def openai_responses(body):
    req = urllib.request.Request(API_URL, data=json.dumps(body).encode(), headers={
        "Authorization": "Bearer " + os.environ["OPENAI_API_KEY"],
        "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as resp:
        return json.load(resp)


def output_text(resp):
    return "".join(c.get("text", "") for item in resp.get("output", [])
                   if item.get("type") == "message" for c in item.get("content", [])
                   if c.get("type") == "output_text")


def run_computer_agent(task, session, call=openai_responses, max_steps=20,
                       approve_safety_checks=False, model=None, tool_type=None, log=print):
    """Drives session with the model until it answers; returns the answer."""
    tools = Tools(session=session)
    defs = tools.openai_responses(computer=True, computer_type=tool_type or os.environ.get(
        "OPENAI_COMPUTER_TOOL", "computer_use_preview"))
    body = {"model": model or os.environ.get("OPENAI_COMPUTER_MODEL", "computer-use-preview"),
            "tools": defs, "truncation": "auto",
            "input": [{"role": "user", "content": task}]}
    resp = call(body)
    for step in range(max_steps):
        calls = [o for o in resp.get("output", [])
                 if o.get("type") in ("computer_call", "function_call")]
        if not calls:
            return output_text(resp)
        outputs = []
        for c in calls:
            checks = c.get("pending_safety_checks") or []
            if checks and not approve_safety_checks:
                raise RuntimeError("the model asks to confirm: %s (run with --yes to accept)" %
                                   "; ".join(x.get("message", "") for x in checks))
            log("step %d: %s" % (step + 1, json.dumps(c.get("action") or
                                                     {"function": c.get("name")})))
            out = tools.handle(c)
            if checks:
                out["acknowledged_safety_checks"] = checks
            outputs.append(out)
        resp = call({"model": body["model"], "tools": defs, "truncation": "auto",
                     "previous_response_id": resp["id"], "input": outputs})
    raise RuntimeError("no answer within %d steps" % max_steps)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("task", nargs="*", default=["Describe what the page shows."])
    p.add_argument("--url", default="https://example.com")
    p.add_argument("--allow", action="append", default=None,
                   help="a host the browser may visit, or *.domain for its subdomains "
                        "(repeat); default: the --url's host")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--yes", action="store_true", help="accept pending safety checks")
    a = p.parse_args()
    if not os.environ.get("OPENAI_API_KEY"):
        print("set OPENAI_API_KEY to run this example", file=sys.stderr)
        return 2
    from urllib.parse import urlsplit
    allowed = a.allow or [urlsplit(a.url).hostname]
    config = BrowserSessionConfig(mode="live", viewport={"width": 1280, "height": 720},
                                  allowed_domains=allowed)
    with BrowserSession(config) as session:
        print("watch: %s" % session.live_url)
        session.navigate(a.url)
        print(run_computer_agent(" ".join(a.task), session, max_steps=a.steps,
                                 approve_safety_checks=a.yes))
        session.screenshot("computer_use_final.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
