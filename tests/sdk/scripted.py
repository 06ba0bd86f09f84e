"""Scripted models for the examples' tests: each replays a fixed list of
responses in one vendor's wire format, with no network, and keeps every
request it was sent so a test can check what the loop sent back."""

import json

from sdkfixture import TestFailure, check


class ScriptedModel:
    """steps: response dicts, or functions(request, model) -> response for a
    step that must quote what an earlier tool returned (a session id)."""

    def __init__(self, steps):
        self.steps = list(steps)
        self.requests = []
        self.responses = []

    def __call__(self, body):
        # What the loop sends must be plain JSON, as on the wire.
        body = json.loads(json.dumps(body))
        self.requests.append(body)
        if not self.steps:
            raise TestFailure("the loop asked the model more often than scripted")
        step = self.steps.pop(0)
        resp = step(body, self) if callable(step) else step
        self.responses.append(resp)
        return resp

    def done(self):
        check(not self.steps, "%d scripted responses were never asked for", len(self.steps))


# ---- OpenAI Chat Completions ----------------------------------------------------

def chat_tool_calls(*calls, id_prefix="call_"):
    """A chat.completion whose message asks for tool calls: (name, args)."""
    return {
        "id": "chatcmpl-scripted", "object": "chat.completion", "created": 1767225600,
        "model": "gpt-4.1-scripted",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "logprobs": None,
                     "message": {"role": "assistant", "content": None, "refusal": None,
                                 "tool_calls": [{"id": "%s%d" % (id_prefix, i), "type": "function",
                                                 "function": {"name": n,
                                                              "arguments": json.dumps(a)}}
                                                for i, (n, a) in enumerate(calls)]}}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
    }


def chat_answer(text):
    return {
        "id": "chatcmpl-scripted-end", "object": "chat.completion", "created": 1767225601,
        "model": "gpt-4.1-scripted",
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                     "message": {"role": "assistant", "content": text, "refusal": None}}],
        "usage": {"prompt_tokens": 200, "completion_tokens": 10, "total_tokens": 210},
    }


def chat_tool_results(request):
    """{tool_call_id: content} of the tool messages in a request."""
    return {m["tool_call_id"]: m["content"] for m in request["messages"] if m["role"] == "tool"}


# ---- Anthropic Messages -----------------------------------------------------------

def anthropic_tool_use(*uses, text="Let me check."):
    content = [{"type": "text", "text": text}]
    for i, (name, args) in enumerate(uses):
        content.append({"type": "tool_use", "id": "toolu_scripted%02d" % i, "name": name,
                        "input": args})
    return {"id": "msg_scripted", "type": "message", "role": "assistant",
            "model": "claude-scripted", "content": content, "stop_reason": "tool_use",
            "stop_sequence": None, "usage": {"input_tokens": 100, "output_tokens": 20}}


def anthropic_answer(text):
    return {"id": "msg_scripted_end", "type": "message", "role": "assistant",
            "model": "claude-scripted", "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": 200, "output_tokens": 10}}


def anthropic_tool_results(request):
    """{tool_use_id: block} of the tool_result blocks in the last user turn."""
    last = request["messages"][-1]
    check(last["role"] == "user", "the last message must be the user's tool results")
    return {b["tool_use_id"]: b for b in last["content"] if b.get("type") == "tool_result"}


# ---- OpenAI Responses (computer use) -------------------------------------------------

def responses_output(items, rid):
    return {"id": rid, "object": "response", "status": "completed",
            "model": "computer-use-preview-scripted", "output": items,
            "usage": {"input_tokens": 500, "output_tokens": 20, "total_tokens": 520}}


def computer_call(call_id, action, checks=None):
    return {"type": "computer_call", "id": "cu_" + call_id, "call_id": call_id,
            "action": action, "pending_safety_checks": checks or [], "status": "completed"}


def responses_message(text):
    return {"type": "message", "id": "msg_end", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}
