#!/usr/bin/env bash
# The CLI's contract without a gateway: exit codes, the --json envelope, usage
# errors, and a clear gateway_unreachable. Usage: test_cli.sh PATH/TO/porthole
#
# PORTHOLE_URL points at a port nothing listens on, so no command here can
# start a local gateway or touch the user's state dir.
set -u

porthole=${1:?usage: test_cli.sh PATH/TO/porthole [PATH/TO/porthole-egress-relay]}
relay=${2:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export PORTHOLE_URL=http://127.0.0.1:1 PORTHOLE_TOKEN=test-token
export PORTHOLE_STATE_DIR=$tmp/state

failures=0
fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

# run EXPECTED_RC ARGS...: runs porthole, keeps stdout/stderr in $out/$err.
run() {
    local want=$1
    shift
    "$porthole" "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    out=$(cat "$tmp/out")
    err=$(cat "$tmp/err")
    [[ $rc == "$want" ]] || fail "porthole $* exited $rc, want $want (stderr: $err)"
}

# envelope OK COMMAND EXIT_CODE [ERROR_CODE]: checks $out is one envelope.
envelope() {
    python3 - "$out" "$@" <<'EOF' || fail "envelope of: $out"
import json, sys
text, ok, command, exit_code = sys.argv[1], sys.argv[2] == "true", sys.argv[3], int(sys.argv[4])
code = sys.argv[5] if len(sys.argv) > 5 else None
assert text.count("\n") == 0, "more than one line"
env = json.loads(text)
assert list(env) == ["ok", "command", "exit_code", "data", "error"], list(env)
assert env["ok"] is ok and env["command"] == command and env["exit_code"] == exit_code, env
if ok:
    assert env["error"] is None, env
else:
    assert env["error"]["code"] == code and env["error"]["message"], env
EOF
}

run 0 --version
[[ $out == "porthole "* ]] || fail "--version printed: $out"
run 0 --version --json
envelope true version 0

run 0 help
[[ $out == *"sandbox create"* && $out == *"browser start"* ]] || fail "help lacks commands"
run 0 sandbox exec --help
[[ $out == *"sandbox exec ID"* ]] || fail "per-command help: $out"
run 0 help browser start
[[ $out == *"--viewport-width"* ]] || fail "help browser start: $out"

# Usage errors: exit 2, a message and the usage on stderr, nothing on stdout.
run 2
run 2 frobnicate
[[ -z $out && $err == *"unknown command"* && $err == *"Usage:"* ]] || fail "unknown command: $err"
run 2 sandbox create --vcpus lots
[[ $err == *"--vcpus"* && $err == *"Usage: porthole sandbox create"* ]] || fail "bad number: $err"
run 2 sandbox create --no-such-flag
run 2 sandbox exec sb-1
run 2 sandbox exec sb-1 --shell zsh -- true
run 2 sandbox delete
run 2 sandbox delete sb-1 --all
run 2 sandbox upload sb-1 "$tmp/out" relative/path
run 2 sandbox env sb-1 1NOTANAME=x
run 2 browser start --viewport-width 10
run 2 browser start --record-video
run 2 browser start --profile-mode persistent
run 2 browser record frob sb-1
run 2 image build nonsense
run 2 doctor --accel warp
run 2 gateway --ready-fd 987

# The same in --json mode: one envelope with usage_error, wherever --json is.
run 2 sandbox create --vcpus lots --json
envelope false sandbox.create 2 usage_error
run 2 --json browser start --memory 1
envelope false browser.start 2 usage_error
run 2 frobnicate --json
envelope false porthole 2 usage_error

# A gateway that does not answer: exit 1, gateway_unreachable with a hint.
run 1 sandbox list
[[ $err == *"cannot reach the gateway"* && $err == *"hint:"* ]] || fail "unreachable text: $err"
run 1 browser start --live --json
envelope false browser.start 1 gateway_unreachable
python3 -c 'import json,sys; assert json.loads(sys.argv[1])["error"]["recovery"]' "$out" ||
    fail "gateway_unreachable without recovery"
run 1 sandbox exec sb-1 --json -- echo hi
envelope false sandbox.exec 1 gateway_unreachable

PORTHOLE_URL=https://example.invalid run 1 sandbox list --json
envelope false sandbox.list 1 invalid_url

[[ ! -e $tmp/state ]] || fail "a client touched the state dir while PORTHOLE_URL was set"

# A gateway refuses a guessable token before it listens anywhere.
PORTHOLE_TOKEN=short-token run 1 gateway --state-dir "$tmp/gw" --listen 127.0.0.1:0
[[ $err == *"at least 32"* ]] || fail "short PORTHOLE_TOKEN: stderr does not say why: $err"

# egress-relay (hidden): stdin/stdout <-> a Unix socket, both directions
# half-closed; once with pipes, once with one socket as stdin and stdout as
# QEMU's guestfwd gives it; for the subcommand and the standalone binary.
python3 - "$porthole" "$tmp/relay.sock" "$relay" <<'EOF' || fail "egress-relay did not relay both ways"
import socket, subprocess, sys, threading
porthole, path, relay = sys.argv[1], sys.argv[2], sys.argv[3]
commands = [[porthole, "egress-relay", path]] + ([[relay, path]] if relay else [])
srv = socket.socket(socket.AF_UNIX)
srv.bind(path)
srv.listen(2)
def serve():
    for _ in range(2 * len(commands)):
        c, _ = srv.accept()
        data = b""
        while chunk := c.recv(65536):
            data += chunk
        c.sendall(data.upper())
        c.close()
threading.Thread(target=serve, daemon=True).start()
for cmd in commands:
    p = subprocess.run(cmd, input=b"via pipes", capture_output=True, timeout=10)
    assert p.returncode == 0 and p.stdout == b"VIA PIPES", p
    guest, relay_end = socket.socketpair()
    proc = subprocess.Popen(cmd, stdin=relay_end, stdout=relay_end)
    relay_end.close()
    guest.sendall(b"x" * 200000)
    guest.shutdown(socket.SHUT_WR)
    got = b""
    while chunk := guest.recv(65536):
        got += chunk
    assert got == b"X" * 200000, (cmd, len(got))
    assert proc.wait(timeout=10) == 0
EOF
run 1 egress-relay "$tmp/nothing.sock"

if ((failures)); then
    echo "$failures failure(s)" >&2
    exit 1
fi
echo "ok"
