#!/usr/bin/python3
"""image: a custom sandbox image built from Debian packages with `porthole
image build NAME --packages ...` (base plus jq here), listed by `porthole
image list`, booted with {"image": NAME}: the package is there, while the
default image has none of it; bad and unknown names are refused; a stopped
sandbox boots its own image again. The image stays in the cache dir, as the
base images do, so a later run finds it built."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture  # noqa: E402
from fixture import check, check_eq, check_error  # noqa: E402

fx = fixture.ensure()
NAME = "itest-jq"
sid = None


def porthole(*args, timeout=120):
    env = dict(os.environ, PORTHOLE_URL=fx.url, PORTHOLE_TOKEN=fx.token)
    p = subprocess.run([fixture.EXE] + list(args), env=env, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def test_build_and_list():
    # Debian's mirror is the one remote host this needs (mmdebstrap).
    rc, out, err = porthole("image", "build", NAME, "--packages", "jq", "--json", timeout=1500)
    check_eq(rc, 0, "porthole image build %s: %s" % (NAME, err[-2000:]))
    check_eq(json.loads(out)["data"]["built"], [NAME], "built images")
    rc, out, err = porthole("image", "list", "--json")
    check_eq(rc, 0, "image list: " + err)
    images = {i["name"]: i for i in json.loads(out)["data"]["images"]}
    check(NAME in images and "base" in images, "image list %r", sorted(images))
    check_eq(images[NAME].get("packages"), "jq", "the custom image's packages")
    # Usage errors, before anything is built.
    for args in (["image", "build", NAME], ["image", "build", "base", "--packages", "jq"],
                 ["image", "build", "Bad!", "--packages", "jq"]):
        rc, out, err = porthole(*args)
        check(rc != 0, "%r succeeded", args)


def test_sandbox_on_the_image():
    global sid
    sb = fx.create_sandbox(image=NAME, timeout_minutes=20)
    sid = sb["id"]
    check_eq(sb["image"], NAME, "image in the created sandbox")
    res = fx.exec("echo '{\"a\": [1, 2]}' | jq -c '.a | add'", sandbox=sid)
    check_eq(res["stdout"], "3\n", "jq in the custom image")
    check_eq(fx.exec("command -v jq", expect_exit=None)["exit_code"], 1,
             "the default image has no jq")
    check_eq(fx.api("GET", "/v1/sandboxes/" + fx.sandbox)["image"], "base",
             "the shared sandbox's image")


def test_refused():
    for image, what in (("no-such-image-x", "an unknown image"), ("Bad!", "a bad name"),
                        ("browser", "the browser image"), ("../base", "a path"), (5, "a number")):
        check_error(fx.req("POST", "/v1/sandboxes", {"image": image}), 400, "bad_request", what)
    r = fx.req("POST", "/v1/sandboxes", {"image": "no-such-image-x"})
    check("porthole image build no-such-image-x" in r.json()["error"]["message"],
          "the error says how to build it: %r", r.body)


def test_stop_start_keeps_the_image():
    check(sid, "no sandbox (an earlier case failed)")
    check_eq(fx.api("POST", "/v1/sandboxes/%s/stop" % sid, {})["status"], "stopped", "stop")
    got = fx.api("POST", "/v1/sandboxes/%s/start" % sid, {}, timeout=fixture.BOOT_TIMEOUT_S + 60)
    check_eq((got["status"], got["image"]), ("ready", NAME), "after start")
    check_eq(fx.exec("jq -n 1+1", sandbox=sid)["stdout"], "2\n", "jq after a stop and start")
    check_eq(fx.delete_sandbox(sid).status, 200, "delete")


fixture.run([test_build_and_list, test_sandbox_on_the_image, test_refused,
             test_stop_start_keeps_the_image])
