#!/usr/bin/python3
"""BrowserSession on a real gateway with a real browser guest: the cdp_url
answering a raw CDP command (Debian's python3-websocket as the client), a
screenshot PNG, a computer-use click, a recording downloaded, logs and
artifacts; porthole.tools on a session; examples/computer_use.py driven by
a scripted model. One live session serves all of them."""

import base64
import ipaddress
import json
import os
import struct
import sys
import tempfile
from urllib.parse import quote, urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sdkfixture  # noqa: E402
from sdkfixture import Skip, TestFailure, check, check_eq  # noqa: E402
import scripted  # noqa: E402

sys.path.insert(0, os.path.join(sdkfixture.ROOT, "examples"))
import computer_use  # noqa: E402

import porthole  # noqa: E402
from porthole import BrowserSession, BrowserSessionConfig  # noqa: E402
from porthole.tools import Tools  # noqa: E402

FX = sdkfixture.ensure()
W, H = 1280, 720

PAGE = """<!doctype html><html><head><title>start</title><style>
html,body{margin:0;height:100%}
#b{position:fixed;left:0;top:0;width:100%;height:50%;font-size:40px}
#t{position:fixed;left:0;top:50%;width:100%;height:50%;font-size:40px}
</style></head><body>
<button id=b onclick="document.title='clicked '+(++window.n)">click me</button>
<input id=t autocomplete=off>
<script>window.n=0</script></body></html>"""
PAGE_URL = "data:text/html," + quote(PAGE)


def is_png(data):
    return data[:8] == b"\x89PNG\r\n\x1a\n"


def png_size(data):
    return struct.unpack(">II", data[16:24])


def loopback(url):
    host = urlsplit(url).hostname
    check(host and ipaddress.ip_address(host).is_loopback, "URL not on loopback: %s", url)
    return url


SESSION = None
START_ERROR = None


def session():
    """The live session the tests share; a failed start fails every test
    that needs it, without booting again."""
    global SESSION, START_ERROR
    if START_ERROR is not None:
        raise TestFailure("the shared browser session did not start: %s" % START_ERROR)
    if SESSION is None:
        # Two VMs at most on these machines: the browser needs the slot of
        # the shared sandbox, which the sandbox tests ran before.
        FX.release_shared_sandbox()
        try:
            SESSION = BrowserSession(BrowserSessionConfig(mode="live",
                                                          viewport={"width": W, "height": H}),
                                     client=FX.client()).start()
        except porthole.PortholeError as e:
            START_ERROR = e
            raise
        sdkfixture.log("browser session %s ready (%s)" % (SESSION.session_id,
                                                          SESSION.info.get("served_from")))
    return SESSION


def reset_page():
    r = session().navigate(PAGE_URL)
    check_eq(r["title"], "start", "page title after navigate")


def test_session_properties():
    s = session()
    check(s.session_id and s.session_id.startswith("bs-"), "session_id %r", s.session_id)
    check(s.vm_id, "vm_id")
    check_eq(s.status, "ready", "status")
    check(s.cdp_url and s.live_url and s.control_url, "urls %r", s.info)
    check("control=1" in s.control_url and "control" not in s.live_url, "live vs control url")
    check_eq(s.info["viewport"], {"width": W, "height": H}, "viewport")


def test_cdp_url_answers_raw_cdp():
    import http.client
    import websocket  # Debian: python3-websocket
    s = session()
    base = loopback(s.cdp_url)
    u = urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    conn.request("GET", u.path + "/json/version")
    resp = conn.getresponse()
    version = json.loads(resp.read())
    conn.close()
    check_eq(resp.status, 200, "/json/version status")
    ws_url = loopback(version["webSocketDebuggerUrl"])
    check_eq(urlsplit(ws_url).netloc, u.netloc, "the WebSocket URL points back at the gateway")
    ws = websocket.create_connection(ws_url, timeout=30)
    try:
        ws.send(json.dumps({"id": 1, "method": "Browser.getVersion"}))
        while True:
            msg = json.loads(ws.recv())
            if msg.get("id") == 1:
                break
    finally:
        ws.close()
    check("Chrome" in msg["result"]["product"], "product %r", msg["result"])
    check_eq(version["Browser"], msg["result"]["product"], "the same browser behind both")
    ws = websocket.create_connection(loopback(s.cdp_ws_url), timeout=30)
    try:
        ws.send(json.dumps({"id": 7, "method": "Target.getTargets"}))
        msg = json.loads(ws.recv())
        while msg.get("id") != 7:
            msg = json.loads(ws.recv())
    finally:
        ws.close()
    check(any(t["type"] == "page" for t in msg["result"]["targetInfos"]), "a page target")


def test_navigate_and_evaluate():
    reset_page()
    check_eq(session().evaluate("1 + 2"), 3, "evaluate")


def test_screenshot_png():
    s = session()
    with tempfile.TemporaryDirectory() as d:
        path = s.screenshot(os.path.join(d, "screen.png"))
        with open(path, "rb") as f:
            data = f.read()
    check(is_png(data), "not a PNG: %r", data[:16])
    check_eq(png_size(data), (W, H), "screenshot size")
    small = s.screenshot_bytes(max_width=640)
    check(is_png(small) and png_size(small)[0] <= 640, "max_width %r", png_size(small))


def test_computer_click_and_type():
    s = session()
    reset_page()
    d = s.computer("click", x=W // 2, y=H // 4, screenshot=True)
    check(d.get("ok") is True, "reply %r", {k: v for k, v in d.items() if "screenshot" not in k})
    check_eq(d["cursor"], {"x": W // 2, "y": H // 4}, "cursor")
    check(is_png(d["screenshot_png"]), "screenshot after the click")
    check_eq(s.evaluate("document.title"), "clicked 1", "the click reached the page")
    s.computer({"action": "click", "x": W // 2, "y": 3 * H // 4})
    s.computer("type", text="Porthole 42!")
    check_eq(s.evaluate("document.getElementById('t').value"), "Porthole 42!", "typed text")
    try:
        s.computer("click", x=W + 10, y=10)
        raise TestFailure("a click outside the screen was accepted")
    except porthole.ValidationError as e:
        check("outside" in e.message, "message %r", e.message)


def test_recording_downloaded():
    s = session()
    rec = s.start_recording()
    check(rec["id"].startswith("rec-") and rec["active"], "recording %r", rec)
    reset_page()
    for i in range(3):
        s.computer("click", x=W // 2, y=H // 4)
    s.computer("wait", ms=1500)
    done = s.stop_recording()
    check_eq(done["id"], rec["id"], "stopped id")
    check(not done["active"] and done["bytes"] > 0, "stopped %r", done)
    listed = {r["id"]: r for r in s.recordings()}
    check(rec["id"] in listed and not listed[rec["id"]]["active"], "listed %r", listed)
    with tempfile.TemporaryDirectory() as d:
        path = s.download_recording(rec["id"], os.path.join(d, "rec.mp4"))
        with open(path, "rb") as f:
            data = f.read()
        check_eq(data[4:8], b"ftyp", "MP4 signature")
        check_eq(len(data), done["bytes"], "downloaded size")
        arts = s.collect_artifacts(os.path.join(d, "artifacts"))
        check(any(p.endswith(rec["id"] + ".mp4") for p in arts["recordings"]), "artifacts %r",
              arts)
        check(len(arts["logs"]) == 2 and all(os.path.getsize(p) >= 0 for p in arts["logs"]),
              "logs %r", arts["logs"])


def test_logs_and_downloads():
    s = session()
    logs = s.logs()
    check(set(logs) >= {"console", "chromium"}, "log keys %r", list(logs))
    check(logs["console"], "the guest console log is empty")
    check(isinstance(s.downloads(), list), "downloads list")


def test_connect_playwright():
    s = session()
    try:
        import playwright  # noqa: F401
    except ImportError:
        try:
            s.connect_playwright()
            raise TestFailure("connect_playwright without Playwright did not raise")
        except porthole.PlaywrightNotInstalledError as e:
            check("pip install playwright" in str(e), "message %r", str(e))
            check(isinstance(e, ImportError), "is an ImportError")
        return
    browser = s.connect_playwright()
    check(browser.contexts, "Playwright sees the session's context")
    s.close()


def test_tools_on_a_session():
    s = session()
    reset_page()
    tools = Tools(session=s)
    comp = [t for t in tools.anthropic(computer=True) if t.get("name") == "computer"][0]
    check_eq(comp, {"type": "computer_20250124", "name": "computer", "display_width_px": W,
                    "display_height_px": H}, "anthropic computer tool")
    r = tools.handle({"type": "tool_use", "id": "toolu_1", "name": "computer",
                      "input": {"action": "left_click", "coordinate": [W // 2, H // 4]}})
    check_eq(r["tool_use_id"], "toolu_1", "id")
    check_eq(r["content"][1]["source"]["media_type"], "image/png", "image block")
    check(is_png(base64.b64decode(r["content"][1]["source"]["data"])), "PNG in the result")
    check_eq(s.evaluate("document.title"), "clicked 1", "Anthropic click reached the page")
    r = tools.handle({"type": "tool_use", "id": "toolu_2", "name": "computer",
                      "input": {"action": "scroll", "coordinate": [W // 2, H // 2],
                                "scroll_direction": "down", "scroll_amount": 2}})
    check_eq(r["is_error"], False, "scroll ok: %r" % (r["content"][0],))
    r = tools.handle({"type": "function_call", "call_id": "fc_1", "name": "navigate",
                      "arguments": json.dumps({"url": PAGE_URL})})
    check_eq(r["type"], "function_call_output", "responses output type")
    check("title: start" in r["output"], "navigate output %r", r["output"])
    r = tools.handle({"id": "call_9", "type": "function",
                      "function": {"name": "screenshot", "arguments": "{}"}})
    check_eq((r["role"], r["tool_call_id"]), ("tool", "call_9"), "chat tool message")
    r = tools.handle({"type": "computer_call", "call_id": "cc_1",
                      "action": {"type": "click", "x": W // 2, "y": H // 4, "button": "left"}})
    check(r["output"]["image_url"].startswith("data:image/png;base64,"), "computer output")
    check_eq(s.evaluate("document.title"), "clicked 1", "OpenAI click reached the new page")


def test_computer_use_example():
    s = session()
    reset_page()

    def type_step(body, model):
        # The loop must have sent the click's screenshot back first.
        out = body["input"][0]
        check_eq((out["type"], out["call_id"]), ("computer_call_output", "call_click"),
                 "first output")
        check(out["output"]["image_url"].startswith("data:image/png;base64,"), "screenshot")
        check_eq(body["previous_response_id"], "resp_1", "chained on the last response")
        return scripted.responses_output([
            scripted.computer_call("call_focus", {"type": "click", "x": W // 2, "y": 3 * H // 4,
                                                  "button": "left"}),
            scripted.computer_call("call_type", {"type": "type", "text": "from the model"}),
        ], "resp_2")

    model = scripted.ScriptedModel([
        scripted.responses_output([scripted.computer_call(
            "call_click", {"type": "click", "x": W // 2, "y": H // 4, "button": "left"})],
            "resp_1"),
        type_step,
        scripted.responses_output([scripted.computer_call(
            "call_shot", {"type": "screenshot"})], "resp_3"),
        scripted.responses_output([scripted.responses_message("Clicked and typed.")], "resp_4"),
    ])
    steps = []
    answer = computer_use.run_computer_agent("click then type", s, call=model,
                                             log=steps.append)
    model.done()
    check_eq(answer, "Clicked and typed.", "answer")
    check_eq(len(steps), 4, "actions run")
    tools = model.requests[0]["tools"]
    check({"type": "computer_use_preview", "display_width": W, "display_height": H,
           "environment": "browser"} in tools, "computer tool %r", tools)
    check_eq([o["call_id"] for o in model.requests[2]["input"]], ["call_focus", "call_type"],
             "outputs of the second turn")
    check_eq(s.evaluate("document.title"), "clicked 1", "the model's click")
    check_eq(s.evaluate("document.getElementById('t').value"), "from the model", "typed")
    # A pending safety check stops the loop unless the caller accepts it.
    checks = [{"id": "sc_1", "code": "malicious_instructions", "message": "page asks to do X"}]
    model = scripted.ScriptedModel([scripted.responses_output(
        [scripted.computer_call("c1", {"type": "screenshot"}, checks)], "r1")])
    try:
        computer_use.run_computer_agent("x", s, call=model, log=steps.append)
        raise TestFailure("a pending safety check was not stopped")
    except RuntimeError as e:
        check("page asks to do X" in str(e), "message %r", str(e))
    model = scripted.ScriptedModel([
        scripted.responses_output([scripted.computer_call("c1", {"type": "screenshot"}, checks)],
                                  "r1"),
        scripted.responses_output([scripted.responses_message("ok")], "r2")])
    computer_use.run_computer_agent("x", s, call=model, approve_safety_checks=True,
                                    log=steps.append)
    check_eq(model.requests[1]["input"][0]["acknowledged_safety_checks"], checks, "ack sent")


def test_pause_resume_fork():
    s = session()
    s.evaluate("window.forkMark = 'set before the fork'")
    s.pause()
    check_eq(s.status, "paused", "status after pause")
    s.resume()
    check_eq(s.status, "ready", "status after resume")
    check_eq(s.evaluate("window.forkMark"), "set before the fork", "the page after resume")
    kids = s.fork(1)
    check_eq(len(kids), 1, "forks")
    kid = kids[0]
    try:
        check(kid.session_id != s.session_id, "the fork has its own id")
        check_eq(kid.info.get("served_from"), "fork", "the fork's served_from")
        check(kid.cdp_url != s.cdp_url, "the fork has its own CDP URL")
        check_eq(kid.evaluate("window.forkMark"), "set before the fork", "the fork's page")
        kid.evaluate("window.forkMark = 'changed in the fork'")
        check_eq(s.evaluate("window.forkMark"), "set before the fork", "the parent after the fork")
    finally:
        kid.stop()
    try:
        s.fork(9)
        raise TestFailure("fork(9) was accepted")
    except porthole.ValidationError:
        pass


def test_stop_finalizes():
    s = session()
    sid = s.session_id
    s.stop()
    try:
        BrowserSession.from_id(sid, client=FX.client())
        raise TestFailure("the session is still there after stop()")
    except porthole.BrowserSessionNotFoundError:
        pass
    # Recordings outlive the session.
    check(s.recordings(), "recordings after stop")


if __name__ == "__main__":
    try:
        sdkfixture.run([
            test_session_properties,
            test_cdp_url_answers_raw_cdp,
            test_navigate_and_evaluate,
            test_screenshot_png,
            test_computer_click_and_type,
            test_recording_downloaded,
            test_logs_and_downloads,
            test_connect_playwright,
            test_tools_on_a_session,
            test_computer_use_example,
            test_pause_resume_fork,
            test_stop_finalizes,
        ])
    finally:
        if SESSION is not None and SESSION.session_id:
            try:
                SESSION.stop()
            except porthole.PortholeError:
                pass
