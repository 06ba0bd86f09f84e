"""Ready tool definitions for agent frameworks, and one dispatcher.

    tools = Tools(sandbox=sb, session=browser)
    tools.openai()             # Chat Completions "tools"
    tools.openai_responses()   # Responses API "tools" (computer=True adds the computer tool)
    tools.anthropic()          # Messages API "tools" (computer=True adds the computer tool)
    reply = tools.handle(call) # one tool call in, that API's tool result out

handle() accepts a tool call as the vendor sends it (a dict, or an SDK
object with model_dump()):
- Chat Completions: {"id", "type": "function", "function": {"name", "arguments"}}
  -> {"role": "tool", "tool_call_id", "content"}
- Responses API: {"type": "function_call", "call_id", "name", "arguments"}
  -> {"type": "function_call_output", "call_id", "output"};
  {"type": "computer_call", "call_id", "action"}
  -> {"type": "computer_call_output", "call_id", "output": {"type": "computer_screenshot", ...}}
- Messages API: {"type": "tool_use", "id", "name", "input"}
  -> {"type": "tool_result", "tool_use_id", "content", "is_error"}

Errors the SDK raises while running a tool (a blocked command, a timeout,
a refused navigation) become error results the model can read; the agent
loop goes on. Pending safety checks of an OpenAI computer_call are never
acknowledged here: that is the caller's decision (see examples/).
"""

import base64
import json
from typing import Any, Dict, List, Optional, Tuple

from .errors import PortholeError, ValidationError

OUTPUT_LIMIT = 20000
# Pixels per wheel step when a model gives scroll distances in pixels.
SCROLL_PX_PER_STEP = 100
MAX_SCROLL_STEPS = 50

_SANDBOX_TOOLS = [
    ("run_command", "Run a shell command in the isolated Linux sandbox (Debian) and return its "
     "exit code, stdout and stderr.", {
         "type": "object",
         "properties": {
             "command": {"type": "string", "description": "Shell command to run."},
             "shell": {"type": "string", "enum": ["login", "raw"],
                       "description": "login (default) loads the profile and environment; "
                                      "raw runs the command without a shell wrapper."},
             "timeout": {"type": "integer", "minimum": 1, "maximum": 3600,
                         "description": "Seconds before the command is killed (default 30)."},
         },
         "required": ["command"],
         "additionalProperties": False,
     }),
    ("read_file", "Read a text file from the sandbox.", {
        "type": "object",
        "properties": {"path": {"type": "string", "description": "Absolute path in the guest."}},
        "required": ["path"],
        "additionalProperties": False,
    }),
    ("write_file", "Write a text file in the sandbox (replacing it).", {
        "type": "object",
        "properties": {
            "path": {"type": "string", "description": "Absolute path in the guest."},
            "content": {"type": "string", "description": "The file's new content."},
        },
        "required": ["path", "content"],
        "additionalProperties": False,
    }),
]

_COMPUTER_ACTIONS = ["screenshot", "click", "double_click", "right_click", "move", "drag",
                     "scroll", "type", "key", "wait"]

_BROWSER_TOOLS = [
    ("navigate", "Open a URL in the browser and wait for the page to load.", {
        "type": "object",
        "properties": {"url": {"type": "string", "description": "Absolute URL."}},
        "required": ["url"],
        "additionalProperties": False,
    }),
    ("screenshot", "Take a screenshot of the browser's screen.", {
        "type": "object", "properties": {}, "additionalProperties": False,
    }),
    ("computer", "Use the mouse and keyboard on the browser's screen; returns a screenshot "
     "of the result. Coordinates are screen pixels from the top left.", {
         "type": "object",
         "properties": {
             "action": {"type": "string", "enum": _COMPUTER_ACTIONS},
             "x": {"type": "integer"}, "y": {"type": "integer"},
             "start_x": {"type": "integer", "description": "drag: where it starts"},
             "start_y": {"type": "integer"},
             "button": {"type": "string", "enum": ["left", "right", "middle"]},
             "text": {"type": "string", "description": "type: the text"},
             "keys": {"type": "string", "description": "key: a combination such as ctrl+l"},
             "scroll_x": {"type": "integer", "description": "scroll: wheel steps, + is right"},
             "scroll_y": {"type": "integer", "description": "scroll: wheel steps, + is down"},
             "ms": {"type": "integer", "description": "wait: milliseconds"},
         },
         "required": ["action"],
         "additionalProperties": False,
     }),
]


class ToolResult:
    """What a tool produced: text, maybe a PNG, and whether it failed."""

    def __init__(self, text: str, png: Optional[bytes] = None, is_error: bool = False) -> None:
        self.text = text
        self.png = png
        self.is_error = is_error

    @property
    def data_url(self) -> Optional[str]:
        if self.png is None:
            return None
        return "data:image/png;base64," + base64.b64encode(self.png).decode()

    def __repr__(self) -> str:
        return "<ToolResult %s%r%s>" % ("error " if self.is_error else "", self.text[:60],
                                        " +png" if self.png else "")


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + "\n[... %d more characters cut]" % (len(text) - limit)


def _as_dict(call: Any) -> Dict[str, Any]:
    if isinstance(call, dict):
        return call
    dump = getattr(call, "model_dump", None)
    if callable(dump):
        return dump()
    to_dict = getattr(call, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    raise ValidationError("tool call must be a dict or have model_dump(), got %s" %
                          type(call).__name__)


def _args(raw: Any) -> Dict[str, Any]:
    if raw is None or raw == "":
        return {}
    if isinstance(raw, dict):
        return raw
    try:
        out = json.loads(raw)
    except (TypeError, ValueError) as e:
        raise ValidationError("tool arguments are not JSON: %s" % e)
    if not isinstance(out, dict):
        raise ValidationError("tool arguments must be a JSON object")
    return out


class Tools:
    """Tool definitions and a dispatcher for one sandbox and/or one browser
    session (either may be None: its tools are then left out)."""

    def __init__(self, sandbox: Any = None, session: Any = None, *,
                 output_limit: int = OUTPUT_LIMIT) -> None:
        if sandbox is None and session is None:
            raise ValidationError("Tools needs a sandbox, a browser session, or both")
        self.sandbox = sandbox
        self.session = session
        self.output_limit = output_limit
        self._cursor: Optional[Tuple[int, int]] = None

    # ---- definitions --------------------------------------------------------

    def specs(self) -> List[Tuple[str, str, Dict[str, Any]]]:
        """(name, description, JSON schema) of every tool offered."""
        out = []
        if self.sandbox is not None:
            out += _SANDBOX_TOOLS
        if self.session is not None:
            out += _BROWSER_TOOLS
        return [(n, d, json.loads(json.dumps(s))) for n, d, s in out]

    def names(self) -> List[str]:
        return [n for n, _, _ in self.specs()]

    def openai(self) -> List[Dict[str, Any]]:
        """Chat Completions function tools."""
        return [{"type": "function", "function": {"name": n, "description": d, "parameters": s}}
                for n, d, s in self.specs()]

    def _display(self) -> Tuple[int, int]:
        vp = self.session.viewport if self.session is not None else {}
        return int(vp.get("width", 1280)), int(vp.get("height", 720))

    def openai_responses(self, computer: bool = False,
                         computer_type: str = "computer_use_preview") -> List[Dict[str, Any]]:
        """Responses API tools; computer=True replaces the function-style
        `computer` tool with OpenAI's own computer tool."""
        out: List[Dict[str, Any]] = [{"type": "function", "name": n, "description": d,
                                      "parameters": s}
                                     for n, d, s in self.specs()
                                     if not (computer and n == "computer")]
        if computer:
            if self.session is None:
                raise ValidationError("the computer tool needs a browser session")
            w, h = self._display()
            tool: Dict[str, Any] = {"type": computer_type}
            if computer_type == "computer_use_preview":
                tool.update({"display_width": w, "display_height": h, "environment": "browser"})
            out.append(tool)
        return out

    def anthropic(self, computer: bool = False,
                  computer_type: str = "computer_20250124") -> List[Dict[str, Any]]:
        """Messages API tools; computer=True replaces the function-style
        `computer` tool with Anthropic's computer-use tool."""
        out: List[Dict[str, Any]] = [{"name": n, "description": d, "input_schema": s}
                                     for n, d, s in self.specs()
                                     if not (computer and n == "computer")]
        if computer:
            if self.session is None:
                raise ValidationError("the computer tool needs a browser session")
            w, h = self._display()
            out.append({"type": computer_type, "name": "computer", "display_width_px": w,
                        "display_height_px": h})
        return out

    # ---- running one call ---------------------------------------------------

    def call(self, name: str, args: Dict[str, Any]) -> ToolResult:
        """Runs one tool by name; SDK errors come back as error results."""
        try:
            return self._call(name, args)
        except PortholeError as e:
            code = getattr(e, "code", None) or type(e).__name__
            return ToolResult("error (%s): %s" % (code, e.message), is_error=True)

    def _call(self, name: str, args: Dict[str, Any]) -> ToolResult:
        if name in ("run_command", "read_file", "write_file") and self.sandbox is None:
            raise ValidationError("tool %s needs a sandbox" % name)
        if name in ("navigate", "screenshot", "computer") and self.session is None:
            raise ValidationError("tool %s needs a browser session" % name)
        if name == "run_command":
            r = self.sandbox.run(args.get("command", ""), shell=args.get("shell", "login"),
                                 timeout=args.get("timeout", 30))
            text = "exit_code: %d\nstdout:\n%s\nstderr:\n%s" % (
                r.exit_code, r.stdout.strip() or "<empty>", r.stderr.strip() or "<empty>")
            return ToolResult(_clip(text, self.output_limit))
        if name == "read_file":
            data = self.sandbox.read_file(args.get("path", ""))
            return ToolResult(_clip(data.decode("utf-8", "replace"), self.output_limit))
        if name == "write_file":
            n = self.sandbox.write_file(args.get("path", ""), args.get("content", ""))
            return ToolResult("wrote %d bytes to %s" % (n, args.get("path")))
        if name == "navigate":
            r = self.session.navigate(args.get("url", ""))
            return ToolResult("url: %s\ntitle: %s" % (r.get("url"), r.get("title")))
        if name == "screenshot":
            png = self.session.screenshot_bytes()
            return ToolResult("screenshot (%d bytes PNG)" % len(png), png=png)
        if name == "computer":
            return self._computer(dict(args))
        raise ValidationError("unknown tool %r (offered: %s)" % (name, ", ".join(self.names())))

    def _computer(self, body: Dict[str, Any]) -> ToolResult:
        """A gateway computer action, then a screenshot of its result."""
        action = body.get("action")
        if action == "screenshot":
            png = self.session.screenshot_bytes()
            return ToolResult("screenshot (%d bytes PNG)" % len(png), png=png)
        if action == "cursor_position":
            if self._cursor is None:
                return ToolResult("cursor position unknown (no pointer action yet)")
            return ToolResult("x=%d, y=%d" % self._cursor)
        body["screenshot"] = True
        d = self.session.computer(body)
        cur = d.get("cursor") or {}
        if "x" in cur and "y" in cur:
            self._cursor = (int(cur["x"]), int(cur["y"]))
        png = d.get("screenshot_png")
        text = "%s done" % action
        if self._cursor is not None:
            text += "; cursor at (%d, %d)" % self._cursor
        return ToolResult(text, png=png)

    # ---- vendor formats -------------------------------------------------------

    def handle(self, tool_call: Any) -> Dict[str, Any]:
        """Runs one tool call; returns the tool result its API expects."""
        d = _as_dict(tool_call)
        kind = d.get("type")
        if kind == "tool_use":
            return self._anthropic(d)
        if kind == "function_call":
            r = self._function(d.get("name"), d.get("arguments"))
            return {"type": "function_call_output", "call_id": d.get("call_id"),
                    "output": self._responses_output(r)}
        if kind == "computer_call":
            r = self._run_openai_computer(d.get("action") or {})
            out: Dict[str, Any] = {"type": "computer_call_output", "call_id": d.get("call_id"),
                                   "output": {"type": "computer_screenshot",
                                              "image_url": r.data_url or ""}}
            return out
        fn = d.get("function")
        if isinstance(fn, dict):
            r = self._function(fn.get("name"), fn.get("arguments"))
            text = r.text if r.png is None else r.text + " (the image is not sent: Chat " \
                "Completions tool results are text only)"
            return {"role": "tool", "tool_call_id": d.get("id"), "content": text}
        raise ValidationError("not a tool call this dispatcher knows: %r" % (d,)[:200])

    def _function(self, name: Any, raw_args: Any) -> ToolResult:
        try:
            args = _args(raw_args)
        except ValidationError as e:
            return ToolResult("error: %s" % e.message, is_error=True)
        return self.call(str(name), args)

    @staticmethod
    def _responses_output(r: ToolResult) -> Any:
        if r.png is None:
            return ("error: " if r.is_error and not r.text.startswith("error") else "") + r.text
        return [{"type": "input_text", "text": r.text},
                {"type": "input_image", "image_url": r.data_url}]

    def _anthropic(self, d: Dict[str, Any]) -> Dict[str, Any]:
        name = d.get("name")
        args = d.get("input") or {}
        if name == "computer" and _is_anthropic_native(args):
            r = self._run_anthropic_computer(args)
        else:
            r = self.call(str(name), args)
        content: Any
        if r.png is not None:
            content = [{"type": "text", "text": r.text},
                       {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                    "data": base64.b64encode(r.png).decode()}}]
        else:
            content = r.text
        return {"type": "tool_result", "tool_use_id": d.get("id"), "content": content,
                "is_error": r.is_error}

    # ---- computer-use vocabularies ---------------------------------------------

    def _run_openai_computer(self, a: Dict[str, Any]) -> ToolResult:
        """OpenAI's computer_call actions (click, double_click, drag,
        keypress, move, screenshot, scroll, type, wait)."""
        t = a.get("type")
        body: Dict[str, Any]
        if t == "click":
            button = a.get("button", "left")
            if button == "wheel":
                button = "middle"
            if button not in ("left", "right", "middle"):
                return ToolResult("error: mouse button %r is not available" % button,
                                  is_error=True)
            body = {"action": "click", "x": a.get("x"), "y": a.get("y"), "button": button}
        elif t == "double_click":
            body = {"action": "double_click", "x": a.get("x"), "y": a.get("y")}
        elif t == "drag":
            body = {"action": "drag", "path": [{"x": p.get("x"), "y": p.get("y")}
                                               for p in a.get("path") or []]}
        elif t == "keypress":
            body = {"action": "keypress", "keys": list(a.get("keys") or [])}
        elif t == "move":
            body = {"action": "move", "x": a.get("x"), "y": a.get("y")}
        elif t == "screenshot":
            body = {"action": "screenshot"}
        elif t == "scroll":
            body = {"action": "scroll", "x": a.get("x"), "y": a.get("y"),
                    "scroll_x": _px_to_steps(a.get("scroll_x", 0)),
                    "scroll_y": _px_to_steps(a.get("scroll_y", 0))}
        elif t == "type":
            body = {"action": "type", "text": a.get("text", "")}
        elif t == "wait":
            body = {"action": "wait", "ms": int(a.get("ms", 1000))}
        else:
            return ToolResult("error: computer action %r is not available" % (t,),
                              is_error=True)
        try:
            return self._computer(body)
        except PortholeError as e:
            # The model still needs a screen to go on from.
            png = None
            try:
                png = self.session.screenshot_bytes()
            except PortholeError:
                pass
            return ToolResult("error: %s" % e.message, png=png, is_error=True)

    def _run_anthropic_computer(self, a: Dict[str, Any]) -> ToolResult:
        """Anthropic's computer tool actions."""
        act = a.get("action")
        xy = a.get("coordinate")
        body: Dict[str, Any] = {"action": act}
        if act in ("left_click", "right_click", "middle_click", "double_click", "triple_click",
                   "mouse_move"):
            if not (isinstance(xy, (list, tuple)) and len(xy) == 2):
                if act == "mouse_move" or self._cursor is None:
                    return ToolResult("error: %s needs coordinate [x, y]" % act, is_error=True)
                xy = self._cursor
            body.update({"x": xy[0], "y": xy[1]})
        elif act == "left_click_drag":
            start = a.get("start_coordinate") or self._cursor
            if not start or not xy:
                return ToolResult("error: left_click_drag needs start_coordinate and coordinate",
                                  is_error=True)
            body.update({"start_x": start[0], "start_y": start[1], "x": xy[0], "y": xy[1]})
        elif act == "type":
            body["text"] = a.get("text", "")
        elif act == "key":
            body = {"action": "key", "keys": a.get("text", "")}
        elif act == "scroll":
            w, h = self._display()
            x, y = (xy if xy else (w // 2, h // 2))
            amount = int(a.get("scroll_amount", 3))
            direction = a.get("scroll_direction", "down")
            sx, sy = {"up": (0, -amount), "down": (0, amount), "left": (-amount, 0),
                      "right": (amount, 0)}.get(direction, (0, 0))
            if not sx and not sy:
                return ToolResult("error: scroll_direction must be up, down, left or right",
                                  is_error=True)
            body = {"action": "scroll", "x": x, "y": y, "scroll_x": sx, "scroll_y": sy}
        elif act == "wait":
            body = {"action": "wait", "ms": int(float(a.get("duration", 1)) * 1000)}
        elif act in ("screenshot", "cursor_position"):
            body = {"action": act}
        else:
            return ToolResult("error: computer action %r is not available" % (act,),
                              is_error=True)
        try:
            return self._computer(body)
        except PortholeError as e:
            return ToolResult("error: %s" % e.message, is_error=True)


_ANTHROPIC_ONLY = ("left_click", "middle_click", "triple_click", "mouse_move",
                   "left_click_drag", "cursor_position", "left_mouse_down", "left_mouse_up",
                   "hold_key")
_ANTHROPIC_FIELDS = ("coordinate", "start_coordinate", "scroll_direction", "scroll_amount",
                     "duration")


def _is_anthropic_native(args: Dict[str, Any]) -> bool:
    """Anthropic's computer tool and the function-style `computer` tool share
    a name; their inputs tell them apart."""
    if args.get("action") in _ANTHROPIC_ONLY or any(f in args for f in _ANTHROPIC_FIELDS):
        return True
    return args.get("action") == "key" and "keys" not in args


def _px_to_steps(px: Any) -> int:
    try:
        v = float(px or 0)
    except (TypeError, ValueError):
        return 0
    if v == 0:
        return 0
    steps = int(round(abs(v) / SCROLL_PX_PER_STEP)) or 1
    steps = min(steps, MAX_SCROLL_STEPS)
    return steps if v > 0 else -steps
