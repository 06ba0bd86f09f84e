#!/usr/bin/python3
"""exec: output streams, exit codes, login vs raw shells, odd and large output."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture  # noqa: E402
from fixture import check, check_eq  # noqa: E402

fx = fixture.ensure()


def test_streams_and_exit_codes():
    res = fx.exec("echo to-stdout; echo to-stderr >&2; exit 3", expect_exit=3)
    check_eq(res["stdout"], "to-stdout\n", "stdout")
    check_eq(res["stderr"], "to-stderr\n", "stderr")
    check(isinstance(res["duration_ms"], int) and res["duration_ms"] >= 0,
          "duration_ms %r", res["duration_ms"])
    res = fx.exec("true")
    check_eq((res["stdout"], res["stderr"]), ("", ""), "output of true")
    res = fx.exec("false", expect_exit=1)
    res = fx.exec("porthole-no-such-command-xyz", expect_exit=127)
    check("not found" in res["stderr"], "stderr of unknown command: %r", res["stderr"])
    # The same through the raw shell.
    res = fx.exec("exit 3", shell="raw", expect_exit=3)
    res = fx.exec("porthole-no-such-command-xyz", shell="raw", expect_exit=127)
    # stdin is not a terminal and not left open: cat ends at once.
    res = fx.exec("cat; echo cat-done", timeout=20)
    check_eq(res["stdout"], "cat-done\n", "stdout of cat with no input")


def test_exit_code_of_killed_command():
    # A command killed by a signal has no exit status: the API reports -1
    # (the CLI maps it to 255); a shell wrapper would say 128+N.
    res = fx.exec("kill -9 $$", shell="raw", expect_exit=None)
    check(res["exit_code"] in (-1, 137), "exit_code of a SIGKILLed command: %r", res)


def test_login_vs_raw():
    res = fx.exec("shopt login_shell; echo \"0=$0\"")
    check_eq(res["stdout"], "login_shell    \ton\n0=bash\n", "login shell")
    res = fx.exec("shopt login_shell", shell="raw", expect_exit=1)
    check_eq(res["stdout"].split(), ["login_shell", "off"], "raw shell's login_shell")

    # The sandbox's env vars come from the profile: login sees them verbatim,
    # quotes, dollars and backticks included, raw does not see them at all.
    res = fx.exec('printf "%s|%s" "$PH_TEST_GREETING" "$PH_TEST_TRICKY"')
    check_eq(res["stdout"], "%s|%s" % (fixture.SANDBOX_ENV["PH_TEST_GREETING"],
                                       fixture.SANDBOX_ENV["PH_TEST_TRICKY"]),
             "env vars in a login shell")
    res = fx.exec('echo "${PH_TEST_GREETING-unset}"', shell="raw")
    check_eq(res["stdout"], "unset\n", "env var in a raw shell")

    # Login runs the command through bash -l -c: the command's own quoting
    # must survive the wrapping unchanged.
    cmd = "printf '%s\\n' 'single quoted' \"double $((6*7))\" 'a'\\''b'"
    for shell in ("login", "raw"):
        res = fx.exec(cmd, shell=shell)
        check_eq(res["stdout"], "single quoted\ndouble 42\na'b\n", "quoting via %s" % shell)


def test_binary_output():
    # Invalid UTF-8 becomes U+FFFD; NUL survives as \u0000; the reply stays
    # valid JSON and the gateway keeps serving.
    res = fx.exec(r"printf 'a\377b\300\n\000z'; printf 'e\376\n' >&2", shell="raw")
    check_eq(res["stdout"], "a\ufffdb\ufffd\n\x00z", "stdout with invalid UTF-8")
    check_eq(res["stderr"], "e\ufffd\n", "stderr with invalid UTF-8")
    # Valid multi-byte UTF-8 is kept as is.
    res = fx.exec("printf 'caf\\303\\251 \\342\\202\\254 \\360\\237\\232\\200'", shell="raw")
    check_eq(res["stdout"], "caf\u00e9 \u20ac \U0001f680", "valid UTF-8")
    # A burst of random bytes: nothing to compare, but it must not break anything.
    res = fx.exec("head -c 65536 /dev/urandom", shell="raw")
    check(len(res["stdout"]) > 10000, "random bytes came back short: %d chars",
          len(res["stdout"]))
    fx.exec("true")


def test_large_output():
    # seq 1 320000 is about 2.1 MB; it must arrive complete and in order.
    want = "".join("%d\n" % i for i in range(1, 320001))
    res = fx.exec("seq 1 320000", shell="raw", timeout=120)
    check(len(want) > 2000000, "test data too small")
    check_eq(len(res["stdout"]), len(want), "length of 2 MB stdout")
    check(res["stdout"] == want, "2 MB stdout differs from seq's output")
    check_eq(res.get("stdout_truncated"), False, "stdout_truncated")
    # Large output on both streams at once (no deadlock between them).
    res = fx.exec("seq 1 200000 >&2 & seq 1 200000; wait", timeout=120)
    want = "".join("%d\n" % i for i in range(1, 200001))
    check(res["stdout"] == want, "stdout of concurrent streams differs (len %d)",
          len(res["stdout"]))
    check(res["stderr"] == want, "stderr of concurrent streams differs (len %d)",
          len(res["stderr"]))


def run_parallel(commands, **kw):
    """Runs commands at once, each on its own connection; returns results."""
    results = {}

    def one(i, cmd):
        try:
            results[i] = fx.exec(cmd, expect_exit=None, **kw)
        except Exception as e:  # reported by the caller
            results[i] = e

    threads = [threading.Thread(target=one, args=(i, c)) for i, c in enumerate(commands)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [results[i] for i in range(len(commands))]


def test_concurrent_commands():
    # Several commands at once on one sandbox each get their own result.
    results = run_parallel(["sleep 1; echo job-%d; exit %d" % (i, i) for i in range(4)])
    for i, res in enumerate(results):
        check(isinstance(res, dict), "job %d failed: %r", i, res)
        check_eq((res["exit_code"], res["stdout"]), (i, "job-%d\n" % i), "job %d" % i)


def test_commands_run_side_by_side():
    # A channel per command: two commands on one sandbox run at the same
    # time. Each announces itself and waits (up to 10 s) for the other; run
    # one after the other, the first would give up and exit 1.
    d = "/tmp/rendezvous-%d" % os.getpid()
    fx.exec("mkdir -p %s" % d)
    cmd = ("touch %s/{me}; for i in $(seq 100); do test -e %s/{other} && exit 0; sleep 0.1; "
           "done; exit 1" % (d, d))
    results = run_parallel([cmd.format(me="a", other="b"), cmd.format(me="b", other="a")],
                           shell="raw", timeout=60)
    for name, res in zip("ab", results):
        check(isinstance(res, dict), "command %s failed: %r", name, res)
        check_eq(res["exit_code"], 0, "command %s saw the other one running (1: it did not; "
                 "commands on one sandbox are serialized)" % name)


def test_qemu_environment_is_its_own():
    # The gateway runs with PORTHOLE_TOKEN set (the fixture's); QEMU must
    # not inherit it, or anything that can read QEMU's environment has it.
    pid = fx.qemu_pid()
    with open("/proc/%d/environ" % pid, "rb") as f:
        names = [item.split(b"=", 1)[0].decode() for item in f.read().split(b"\0") if item]
    check("PATH" in names, "QEMU has no PATH: %r", names)
    check(not any(n.startswith("PORTHOLE") for n in names), "QEMU inherited %r", names)


def test_guest_clock_keeps_pace():
    # Ten seconds of the guest's clock take ten seconds of the host's: a
    # guest told the wrong TSC rate (software emulation runs the guest's TSC
    # at the host's) sees time run fast or slow by the ratio.
    t0 = time.monotonic()
    res = fx.exec("a=$(date +%s%N); sleep 10; b=$(date +%s%N); echo $(( (b - a) / 1000000 ))",
                  timeout=60)
    host_ms = (time.monotonic() - t0) * 1000
    guest_ms = int(res["stdout"])
    check(guest_ms >= 10000, "the guest's sleep 10 lasted %d ms of its clock", guest_ms)
    # The host saw at least the guest's interval (less 2 %), and not much
    # more than it plus the command's own start-up.
    check(host_ms >= guest_ms * 0.98, "guest clock runs fast: %d ms of it in %.0f ms of the "
          "host's", guest_ms, host_ms)
    check(host_ms <= guest_ms * 1.02 + 8000, "guest clock runs slow: %d ms of it in %.0f ms of "
          "the host's", guest_ms, host_ms)


fixture.run([test_streams_and_exit_codes, test_exit_code_of_killed_command, test_login_vs_raw,
             test_binary_output, test_large_output, test_concurrent_commands,
             test_commands_run_side_by_side, test_qemu_environment_is_its_own,
             test_guest_clock_keeps_pace])
