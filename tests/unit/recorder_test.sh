#!/usr/bin/env bash
# Runs test_recorder against a real VNC server: starts Xtigervnc on a free
# display and a free localhost port, runs the test binary with DISPLAY set
# to it (the test draws with xsetroot and resizes with xrandr), then stops
# the server. Exits 77 (meson: skipped) when the tools are missing.
#
#   recorder_test.sh PATH/TO/test_recorder
set -euo pipefail

BIN=${1:?usage: recorder_test.sh PATH/TO/test_recorder}

for tool in Xtigervnc xsetroot xrandr ffmpeg ffprobe python3; do
    if ! command -v "$tool" >/dev/null; then
        echo "SKIP: $tool not installed (packages: tigervnc-standalone-server x11-xserver-utils ffmpeg)"
        exit 77
    fi
done

WORK=$(mktemp -d /tmp/test_recorder.XXXXXX)
XPID=""
cleanup() {
    if [ -n "$XPID" ]; then
        kill "$XPID" 2>/dev/null || true
        wait "$XPID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Xtigervnc picks a free display itself and writes its number to -displayfd
# once it accepts connections (its VNC port listens by then too). A port
# taken between free_port and the server's bind makes it exit: try again.
DISPLAY_NUM=""
for attempt in 1 2 3; do
    PORT=$(free_port)
    rm -f "$WORK/displayfd"
    mkfifo "$WORK/displayfd"
    rm -f "$WORK/vnc.sock"
    Xtigervnc -displayfd 3 -geometry 640x480 -depth 24 -rfbport "$PORT" \
        -rfbunixpath "$WORK/vnc.sock" \
        -SecurityTypes None -localhost=1 -AlwaysShared \
        3>"$WORK/displayfd" >"$WORK/xvnc.log" 2>&1 &
    XPID=$!
    if read -r -t 30 DISPLAY_NUM <"$WORK/displayfd" && [ -n "$DISPLAY_NUM" ]; then
        break
    fi
    echo "Xtigervnc did not start (attempt $attempt):" >&2
    tail -5 "$WORK/xvnc.log" >&2 || true
    kill "$XPID" 2>/dev/null || true
    wait "$XPID" 2>/dev/null || true
    XPID=""
    DISPLAY_NUM=""
done
if [ -z "$DISPLAY_NUM" ]; then
    echo "could not start Xtigervnc" >&2
    exit 1
fi

echo "Xtigervnc :$DISPLAY_NUM on 127.0.0.1:$PORT" >&2
status=0
DISPLAY=":$DISPLAY_NUM" "$BIN" "$PORT" "$WORK" || status=$?
if [ "$status" -ne 0 ]; then
    echo "--- Xtigervnc log ---" >&2
    tail -20 "$WORK/xvnc.log" >&2 || true
fi
exit "$status"
