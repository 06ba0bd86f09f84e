#!/usr/bin/python3
"""SmolVM's BrowserSession example that needs no Playwright (import changed
only), and examples/agent_browser.py driven by a scripted model through the
real `porthole` CLI."""

import contextlib
import io
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sdkfixture  # noqa: E402
from sdkfixture import check, check_eq  # noqa: E402
import scripted  # noqa: E402

sys.path.insert(0, os.path.join(sdkfixture.ROOT, "examples"))
import agent_browser  # noqa: E402

import porthole  # noqa: E402

FX = sdkfixture.ensure()

BROWSER_CONFIG = '''
from porthole.smolvm import BrowserSession, BrowserSessionConfig

with BrowserSession(
    BrowserSessionConfig(
        mode="live",
        viewport={"width": 1920, "height": 1080},
        timeout_minutes=60,
        mem_size_mib=4096,
        env_vars={"MY_API_KEY": "sk-..."},
    )
) as session:
    print(session.cdp_url)
'''


def sessions():
    return FX.client().json("GET", "/v1/browser/sessions")["sessions"]


def test_browser_session_config_example():
    FX.release_shared_sandbox()
    ns = {"__name__": "seed_example"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(BROWSER_CONFIG, "<seed example>", "exec"), ns)
    s = ns["session"]
    check(out.getvalue().strip() == s.cdp_url and "/cdp/%s/" % s.session_id in s.cdp_url,
          "printed %r", out.getvalue())
    check_eq(s._info["viewport"], {"width": 1920, "height": 1080}, "viewport")
    check_eq((s._info["mem_size_mib"], s._info["timeout_minutes"]), (4096, 60), "sizes")
    check_eq(s._info["env_vars"], {"MY_API_KEY": "sk-..."}, "env")
    check(s.session_id not in [x["session_id"] for x in sessions()], "stopped at exit")


def test_agent_browser_example():
    FX.release_shared_sandbox()
    os.environ["PATH"] = os.path.dirname(os.path.abspath(sdkfixture.EXE)) + ":" + \
        os.environ["PATH"]
    shot = os.path.join(sdkfixture.SCRATCH, "agent-browser.png")
    if os.path.exists(shot):
        os.unlink(shot)

    def session_of(body):
        out = body["messages"][-1]["content"]
        check("parsed_browser_session:" in out, "start output %r", out[:400])
        return dict(line.split(": ", 1) for line in out.split("parsed_browser_session:\n")[1]
                    .splitlines())

    def screenshot_step(body, model):
        sid = session_of(body)["session_id"]
        return scripted.chat_tool_calls(("run_host_bash", {
            "command": "porthole browser screenshot %s %s && porthole browser list --json" %
                       (sid, shot)}), id_prefix="call_shot")

    def stop_step(body, model):
        sid = session_of({"messages": [m for m in body["messages"] if m["role"] == "tool"][:1]})[
            "session_id"]
        return scripted.chat_tool_calls(("run_host_bash", {
            "command": "porthole browser stop %s" % sid}), id_prefix="call_stop")

    def answer_step(body, model):
        sid = session_of({"messages": [m for m in body["messages"] if m["role"] == "tool"][:1]})[
            "session_id"]
        return scripted.chat_answer("title: start\nurl: about:blank\nscreenshot_path: %s\n"
                                    "session_id: %s" % (shot, sid))

    model = scripted.ScriptedModel([
        scripted.chat_tool_calls(("run_host_bash", {"command": "porthole browser start --live "
                                                    "--json", "timeout": 900})),
        screenshot_step, stop_step, answer_step])
    deps = agent_browser.BrowserCliDeps()
    answer = agent_browser.run_agent("open a session and screenshot it", deps, chat=model)
    model.done()
    check(deps.session and deps.session["session_id"].startswith("bs-"), "deps %r", deps.session)
    check(deps.session["cdp_url"].startswith("http://127."), "cdp_url %r", deps.session)
    check(answer.endswith("session_id: %s" % deps.session["session_id"]), "answer %r", answer)
    with open(shot, "rb") as f:
        check_eq(f.read(8), b"\x89PNG\r\n\x1a\n", "the screenshot the model asked for")
    stop_out = model.requests[3]["messages"][-1]["content"]
    check(stop_out.startswith("exit_code: 0"), "stop output %r", stop_out)
    check(deps.session["session_id"] not in [x["session_id"] for x in sessions()],
          "the session is gone")
    check_eq(model.requests[0]["tools"][0]["function"]["name"], "run_host_bash", "tool")


if __name__ == "__main__":
    sdkfixture.run([test_browser_session_config_example, test_agent_browser_example])
