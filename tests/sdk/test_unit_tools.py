#!/usr/bin/python3
"""porthole.tools without a gateway: tool definitions in each vendor's
format, and handle() turning each vendor's tool call into the right
sandbox/session call and the right tool result shape."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sdkfixture  # noqa: E402
from sdkfixture import check, check_eq  # noqa: E402

import porthole  # noqa: E402
from porthole.callbacks import CommandResult  # noqa: E402
from porthole.tools import Tools  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n" + b"0" * 20


class FakeSandbox:
    def __init__(self):
        self.calls = []
        self.files = {}

    def run(self, command, shell="login", timeout=30):
        self.calls.append(("run", command, shell, timeout))
        if "blocked" in command:
            raise porthole.CommandBlockedError("denied", vm_id="sb-1", command=command)
        return CommandResult(0, "out of %s\n" % command, "")

    def read_file(self, path):
        return self.files[path]

    def write_file(self, path, data):
        self.files[path] = data.encode()
        return len(data.encode())


class FakeSession:
    viewport = {"width": 1024, "height": 768}

    def __init__(self):
        self.actions = []

    def computer(self, body):
        self.actions.append(dict(body))
        return {"ok": True, "cursor": {"x": body.get("x", 0), "y": body.get("y", 0)},
                "screenshot_png": PNG}

    def screenshot_bytes(self):
        return PNG

    def navigate(self, url):
        return {"url": url, "title": "T"}


def test_definitions():
    t = Tools(sandbox=FakeSandbox(), session=FakeSession())
    names = ["run_command", "read_file", "write_file", "navigate", "screenshot", "computer"]
    oa = t.openai()
    check_eq([x["function"]["name"] for x in oa], names, "chat names")
    check(all(x["type"] == "function" and x["function"]["parameters"]["type"] == "object"
              for x in oa), "chat shape")
    rs = t.openai_responses(computer=True)
    check_eq([x.get("name") for x in rs][:5], names[:5], "responses names")
    check_eq(rs[-1], {"type": "computer_use_preview", "display_width": 1024,
                      "display_height": 768, "environment": "browser"}, "computer tool")
    an = t.anthropic()
    check(all(set(x) == {"name", "description", "input_schema"} for x in an), "anthropic keys")
    check_eq(t.anthropic(computer=True)[-1]["type"], "computer_20250124", "anthropic computer")
    json.dumps([oa, rs, an])  # plain JSON
    check_eq(Tools(sandbox=FakeSandbox()).names(), names[:3], "sandbox only")


def test_handle_formats():
    sb, s = FakeSandbox(), FakeSession()
    t = Tools(sandbox=sb, session=s)
    r = t.handle({"id": "call_1", "type": "function", "function": {
        "name": "run_command", "arguments": json.dumps({"command": "ls", "timeout": 5})}})
    check_eq(r, {"role": "tool", "tool_call_id": "call_1",
                 "content": "exit_code: 0\nstdout:\nout of ls\nstderr:\n<empty>"}, "chat")
    check_eq(sb.calls[-1], ("run", "ls", "login", 5), "run args")
    r = t.handle({"type": "function_call", "call_id": "fc_1", "name": "write_file",
                  "arguments": json.dumps({"path": "/a", "content": "xyz"})})
    check_eq(r, {"type": "function_call_output", "call_id": "fc_1",
                 "output": "wrote 3 bytes to /a"}, "responses")
    r = t.handle({"type": "tool_use", "id": "toolu_1", "name": "read_file",
                  "input": {"path": "/a"}})
    check_eq(r, {"type": "tool_result", "tool_use_id": "toolu_1", "content": "xyz",
                 "is_error": False}, "anthropic")
    r = t.handle({"type": "tool_use", "id": "toolu_2", "name": "run_command",
                  "input": {"command": "blocked thing"}})
    check(r["is_error"] and "denied" in r["content"], "blocked as error %r", r)
    r = t.handle({"id": "call_2", "type": "function", "function": {"name": "nope",
                                                                   "arguments": "{}"}})
    check("unknown tool" in r["content"], "unknown tool %r", r)
    r = t.handle({"id": "call_3", "type": "function", "function": {"name": "run_command",
                                                                   "arguments": "{bad"}})
    check("not JSON" in r["content"], "bad JSON %r", r)

    class Obj:  # an SDK object with model_dump()
        def model_dump(self):
            return {"type": "tool_use", "id": "toolu_3", "name": "screenshot", "input": {}}
    r = t.handle(Obj())
    check_eq(r["content"][1]["source"]["media_type"], "image/png", "image block")


def test_computer_vocabularies():
    s = FakeSession()
    t = Tools(session=s)
    t.handle({"type": "computer_call", "call_id": "c", "action": {
        "type": "scroll", "x": 10, "y": 20, "scroll_x": 0, "scroll_y": 350}})
    check_eq(s.actions[-1], {"action": "scroll", "x": 10, "y": 20, "scroll_x": 0, "scroll_y": 4,
                             "screenshot": True}, "OpenAI scroll pixels to steps")
    t.handle({"type": "computer_call", "call_id": "c", "action": {
        "type": "keypress", "keys": ["CTRL", "L"]}})
    check_eq(s.actions[-1]["keys"], ["CTRL", "L"], "keypress")
    r = t.handle({"type": "computer_call", "call_id": "c", "action": {
        "type": "click", "x": 1, "y": 2, "button": "back"}})
    check(r["output"]["image_url"] == "", "unsupported button gives no screenshot action")
    t.handle({"type": "tool_use", "id": "u", "name": "computer", "input": {
        "action": "left_click_drag", "start_coordinate": [1, 2], "coordinate": [30, 40]}})
    check_eq(s.actions[-1], {"action": "left_click_drag", "start_x": 1, "start_y": 2, "x": 30,
                             "y": 40, "screenshot": True}, "Anthropic drag")
    t.handle({"type": "tool_use", "id": "u", "name": "computer", "input": {
        "action": "key", "text": "ctrl+s"}})
    check_eq(s.actions[-1], {"action": "key", "keys": "ctrl+s", "screenshot": True}, "key")
    t.handle({"type": "tool_use", "id": "u", "name": "computer", "input": {
        "action": "scroll", "scroll_direction": "up", "scroll_amount": 2}})
    check_eq(s.actions[-1], {"action": "scroll", "x": 512, "y": 384, "scroll_x": 0,
                             "scroll_y": -2, "screenshot": True}, "Anthropic scroll")
    r = t.handle({"type": "tool_use", "id": "u", "name": "computer",
                  "input": {"action": "cursor_position"}})
    check_eq(r["content"], "x=512, y=384", "cursor position")
    # The function-style computer tool.
    t.handle({"type": "tool_use", "id": "u", "name": "computer",
              "input": {"action": "click", "x": 5, "y": 6}})
    check_eq(s.actions[-1], {"action": "click", "x": 5, "y": 6, "screenshot": True}, "function")


if __name__ == "__main__":
    sdkfixture.run([test_definitions, test_handle_formats, test_computer_vocabularies])
