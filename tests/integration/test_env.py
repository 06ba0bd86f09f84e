#!/usr/bin/python3
"""env: create-time env vars reach login shells; PUT /env replaces them."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture  # noqa: E402
from fixture import check, check_eq, check_error  # noqa: E402

fx = fixture.ensure()
# A sandbox of its own: replacing the shared sandbox's variables would
# pull them from under the tests running next to this one.
FIRST = {
    "PH_ENV_A": "alpha",
    "PH_ENV_B": "two  words",
    "PH_ENV_Q": "it's \"q\" $HOME `id` $(id) \\ \u00e9",
    "_PH_ENV_UNDERSCORE1": "u",
}
SECOND = {"PH_ENV_A": "changed", "PH_ENV_C": "new"}
sid = None


def show(*names):
    cmd = "printf '%s|' " + " ".join('"${%s-unset}"' % n for n in names)
    return fx.exec(cmd, sandbox=sid)["stdout"]


def test_create_time_env():
    global sid
    sb = fx.create_sandbox(env_vars=FIRST, timeout_minutes=30)
    sid = sb["id"]
    check_eq(sb.get("env_vars"), FIRST, "env_vars of the created sandbox")
    check_eq(show(*FIRST), "".join(v + "|" for v in FIRST.values()), "login shell sees env vars")
    check_eq(fx.api("GET", "/v1/sandboxes/%s/env" % sid), {"env_vars": FIRST}, "GET /env")
    # Raw shells do not load the profile.
    res = fx.exec('echo "${PH_ENV_A-unset}"', shell="raw", sandbox=sid)
    check_eq(res["stdout"], "unset\n", "raw shell and env vars")


def test_put_replaces():
    check(sid, "no sandbox (the first case failed)")
    got = fx.api("PUT", "/v1/sandboxes/%s/env" % sid, {"env_vars": SECOND})
    check_eq(got, {"env_vars": SECOND}, "PUT /env reply")
    check_eq(show("PH_ENV_A", "PH_ENV_B", "PH_ENV_C", "PH_ENV_Q"), "changed|unset|new|unset|",
             "login shell after PUT /env")
    check_eq(fx.api("GET", "/v1/sandboxes/%s/env" % sid), {"env_vars": SECOND}, "GET /env")
    check_eq(fx.api("GET", "/v1/sandboxes/%s" % sid).get("env_vars"), SECOND,
             "sandbox's env_vars")
    # Empty clears everything.
    check_eq(fx.api("PUT", "/v1/sandboxes/%s/env" % sid, {"env_vars": {}}), {"env_vars": {}},
             "PUT empty env")
    check_eq(show("PH_ENV_A", "PH_ENV_C"), "unset|unset|", "login shell after clearing")
    fx.api("PUT", "/v1/sandboxes/%s/env" % sid, {"env_vars": SECOND})


def test_invalid():
    check(sid, "no sandbox (the first case failed)")
    path = "/v1/sandboxes/%s/env" % sid
    bad = [
        {"env_vars": {"1BAD": "x"}},
        {"env_vars": {"A-B": "x"}},
        {"env_vars": {"A B": "x"}},
        {"env_vars": {"A=B": "x"}},
        {"env_vars": {"": "x"}},
        {"env_vars": {"\u00e9T\u00e9": "x"}},
        {"env_vars": {"OK": "line\nbreak"}},
        {"env_vars": {"OK": "cr\rhere"}},
        {"env_vars": {"OK": "nul\u0000here"}},
        {"env_vars": {"OK": 5}},
        {"env_vars": {"OK": None}},
        {"env_vars": ["OK=1"]},
        {"env_vars": "OK=1"},
        {"env_vars": {"OK": "1"}, "extra": 1},
    ]
    for body in bad:
        r = fx.req("PUT", path, body)
        check_error(r, 400, "bad_request", "PUT /env %r" % body)
    check_eq(fx.api("GET", path), {"env_vars": SECOND}, "env after refused PUTs")
    check_eq(show("PH_ENV_A", "PH_ENV_C", "OK"), "changed|new|unset|", "login shell after refused PUTs")
    # Invalid names at create time are refused before anything boots.
    for env in ({"1BAD": "x"}, {"OK": "a\nb"}):
        r = fx.req("POST", "/v1/sandboxes", {"env_vars": env})
        check_error(r, 400, "bad_request", "create with env_vars %r" % env)
    # Unknown sandbox.
    r = fx.req("PUT", "/v1/sandboxes/sb-000000000000/env", {"env_vars": {}})
    check_error(r, 404, "not_found", "PUT /env on an unknown sandbox")


def test_cleanup():
    check(sid, "no sandbox (the first case failed)")
    r = fx.delete_sandbox(sid)
    check_eq(r.status, 200, "DELETE of the env test's sandbox")


fixture.run([test_create_time_env, test_put_replaces, test_invalid, test_cleanup])
