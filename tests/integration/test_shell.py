#!/usr/bin/python3
"""shell: `porthole sandbox shell ID` opens a terminal in the sandbox over the
gateway's WebSocket PTY endpoint. Driven here on a real pseudo-terminal (the
CLI is the session leader of its own pty, as under a terminal emulator): the
guest sees a tty of the window's size, a window resize reaches it, ^C goes
to the guest rather than ending the CLI, the CLI exits with the shell's exit
code, and the policy and audit see it as one command."""
import base64
import errno
import fcntl
import http.client
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture  # noqa: E402
from fixture import check, check_eq  # noqa: E402

fx = fixture.ensure()
ENV = dict(os.environ, PORTHOLE_URL=fx.url, PORTHOLE_TOKEN=fx.token,
           PORTHOLE_STATE_DIR=os.path.join(fixture.SCRATCH, "cli-state"))
WAIT_S = 60


class Terminal:
    """The CLI on a pty of its own: write keys, read the screen's bytes."""

    def __init__(self, args, cols, rows):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execve(fixture.EXE, [fixture.EXE] + list(args), ENV)
        self.resize(cols, rows)
        self.seen = b""
        self.status = None

    def resize(self, cols, rows):
        # The kernel sends SIGWINCH to the foreground group on a change.
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def send(self, text):
        os.write(self.fd, text.encode() if isinstance(text, str) else text)

    def expect(self, needle, timeout=WAIT_S):
        """Reads until needle (bytes or str) appears after what was matched
        before; returns everything read up to it."""
        needle = needle.encode() if isinstance(needle, str) else needle
        deadline = time.monotonic() + timeout
        while needle not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0:
                raise fixture.TestFailure("no %r on the terminal in %d s; it shows:\n%r" %
                                          (needle, timeout, self.seen[-2000:]))
            if select.select([self.fd], [], [], min(left, 1))[0]:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError as e:
                    if e.errno != errno.EIO:
                        raise
                    chunk = b""
                if not chunk:
                    raise fixture.TestFailure("the terminal closed before %r; it showed:\n%r" %
                                              (needle, self.seen[-2000:]))
                self.seen += chunk
        i = self.seen.index(needle) + len(needle)
        got, self.seen = self.seen[:i], self.seen[i:]
        return got

    def wait(self, timeout=WAIT_S):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # Drain, or the CLI could block writing to a full pty.
            if select.select([self.fd], [], [], 0.2)[0]:
                try:
                    self.seen += os.read(self.fd, 65536)
                except OSError:
                    pass
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(st)
                os.close(self.fd)
                return self.status
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        raise fixture.TestFailure("the CLI did not exit in %d s; the terminal shows:\n%r" %
                                  (timeout, self.seen[-2000:]))


def shell_cli(*args, stdin=b"", timeout=120):
    p = subprocess.run([fixture.EXE, "sandbox", "shell"] + list(args), env=ENV, input=stdin,
                       capture_output=True, timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def test_interactive():
    t = Terminal(["sandbox", "shell", fx.sandbox], cols=100, rows=30)
    # Markers are built by the shell, so the echo of the typed line never
    # matches them.
    t.send("echo ready-$((6*7))\r")
    t.expect("ready-42")
    t.send("stty size; tty; echo TERM=$TERM; echo size-$((1+1))\r")
    out = t.expect("size-2").decode(errors="replace")
    check("30 100" in out, "stty size in the guest: %r", out)
    check("/dev/pts/" in out, "the guest's stdin is a pty: %r", out)
    check("TERM=xterm-256color" in out, "TERM: %r", out)

    t.resize(120, 40)
    # The resize travels as its own message; ask until the guest has it.
    deadline = time.monotonic() + WAIT_S
    while True:
        t.send("stty size; echo asked-$((2+2))\r")
        out = t.expect("asked-4").decode(errors="replace")
        if "40 120" in out:
            break
        check(time.monotonic() < deadline, "the resize never reached the guest: %r", out)
        time.sleep(0.5)

    # ^C interrupts the guest's command, not the CLI.
    t.send("sleep 300\r")
    time.sleep(1)
    t.send(b"\x03")
    t.send("echo after-$((3*3))\r")
    t.expect("after-9")
    t.send("exit 7\r")
    check_eq(t.wait(), 7, "the CLI's exit code is the shell's")

    lines = fixture.find_audit(lambda a: a.get("command") == "shell" and
                               a.get("exit_code") == 7 and a.get("vm_id") == fx.sandbox)
    check(lines, "no audit line for the shell's end")
    check_eq(lines[-1].get("event"), "run", "audit event")


def test_command_on_a_tty():
    # The command is wrapped in a login shell and runs on a terminal even
    # when the CLI's own stdin is a pipe; the pipe's end arrives as ^D.
    rc, out, err = shell_cli(fx.sandbox, "--", "test -t 0 && echo on-a-tty; cat; exit 3",
                             stdin=b"piped-line\n")
    check_eq(rc, 3, "exit code (stderr %r)" % err)
    check("on-a-tty" in out, "the command's stdin is a terminal: %r", out)
    check("piped-line" in out, "piped input reached the command: %r", out)


def test_piped_login_shell():
    # A login shell goes raw at its first prompt, where a ^D sent earlier
    # is only a byte: the CLI asks for a terminal rather than hang.
    rc, out, err = shell_cli(fx.sandbox, stdin=b"echo piped\n")
    check_eq(rc, 2, "a login shell without a terminal is a usage error (stdout %r)" % out)
    check("not a terminal" in err, "message: %r", err)


def test_blocked():
    marker = "/root/shell-vetoed-%d" % os.getpid()
    rc, out, err = shell_cli(fx.sandbox, "--", "touch %s; rm -rf /" % marker)
    check_eq(rc, 1, "a refused shell (stdout %r)" % out)
    check("rm -rf /" in err, "the reason names the rule: %r", err)
    res = fx.exec("test -e %s" % marker, expect_exit=None)
    check_eq(res["exit_code"], 1, "the refused command never ran")
    lines = fixture.find_audit(lambda a: a.get("event") == "blocked" and
                               a.get("command") == "touch %s; rm -rf /" % marker)
    check(lines, "no 'blocked' audit line for the refused shell")


def test_unknown_sandbox():
    rc, out, err = shell_cli("sb-doesnotexist", "--", "true")
    check_eq(rc, 1, "exit code")
    check("no sandbox" in err, "message: %r", err)


def upgrade(path, token):
    c = http.client.HTTPConnection("127.0.0.1", fx.port, timeout=30)
    headers = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode()}
    if token:
        headers["Authorization"] = "Bearer " + token
    try:
        c.request("GET", path, headers=headers)
        return c.getresponse().status
    finally:
        c.close()


def test_upgrade_refused():
    path = "/v1/sandboxes/%s/shell" % fx.sandbox
    check_eq(upgrade(path, None), 401, "no token")
    check_eq(upgrade(path, "wrong-" + fx.token), 401, "wrong token")
    check_eq(upgrade(path + "?cols=0", fx.token), 400, "cols out of range")
    check_eq(upgrade("/v1/sandboxes/sb-doesnotexist/shell", fx.token), 404, "unknown sandbox")
    check_eq(upgrade(path, fx.token), 101, "the same upgrade with the token")


def test_sandbox_deleted():
    # A sandbox that ends closes its terminals (the CLI says so) and is
    # not held up by them.
    sid = fx.create_sandbox(timeout_minutes=10)["id"]
    t = Terminal(["sandbox", "shell", sid], cols=80, rows=24)
    t.send("echo open-$((4+4))\r")
    t.expect("open-8")
    r = fx.delete_sandbox(sid)
    check_eq(r.status, 200, "delete with a terminal open: %r" % r.body[:300])
    check_eq(t.wait(), 1, "the CLI's exit code when the sandbox went away")
    check(b"going away" in t.seen, "the CLI says why: %r", t.seen[-500:])


fixture.run([test_interactive, test_command_on_a_tty, test_piped_login_shell, test_blocked,
             test_unknown_sandbox, test_upgrade_refused, test_sandbox_deleted])
