#!/usr/bin/env bash
# Sets up everything Porthole needs on a Debian 12 machine, then runs the
# main job (`./bootstrap.sh run`) or the whole test suite (`./bootstrap.sh test`).
# Safe to run again: every step checks what is already there.
set -euo pipefail

MODE=${1:-run}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$ROOT"

step() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'bootstrap: %s\n' "$*" >&2; exit 1; }

case "$MODE" in
run | test) ;;
*) die "usage: $0 run|test" ;;
esac

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "run as root or install sudo"
    SUDO="sudo"
fi

APT_PACKAGES=(
    build-essential pkg-config meson ninja-build git ca-certificates curl
    libwebsockets-dev libjansson-dev libssh-dev libsqlite3-dev libvncserver-dev
    libavcodec-dev libavformat-dev libavutil-dev libswscale-dev
    qemu-system-x86 qemu-utils mmdebstrap kmod cpio e2fsprogs zstd
    openssh-client python3 ffmpeg chromium novnc
    tigervnc-standalone-server x11-xserver-utils
    clang clang-format python3-websocket python3-venv
)

step "apt packages"
missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
# Node.js: whatever the machine has (often a newer one than Debian's, whose
# npm package conflicts with it); Debian's only when there is none.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    missing+=(nodejs npm)
fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}" >&2
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
else
    echo "all ${#APT_PACKAGES[@]} packages present" >&2
fi

step "npm packages (noVNC for the live view, Playwright/Puppeteer clients for tests)"
for dir in web tests/e2e; do
    if [ -f "$dir/package.json" ]; then
        if [ ! -d "$dir/node_modules" ] || [ "$dir/package.json" -nt "$dir/node_modules" ]; then
            (cd "$dir" && npm install --no-audit --no-fund --loglevel=error && touch node_modules)
        else
            echo "$dir: node_modules up to date" >&2
        fi
    fi
done

step "build and install porthole"
if [ ! -d build/release ]; then
    meson setup build/release --prefix=/usr/local --buildtype=release -Dwerror=true
fi
ninja -C build/release
$SUDO meson install -C build/release --quiet --no-rebuild

step "guest images (cached by recipe hash; rebuilt only when the recipe changes)"
porthole image build base
porthole image build browser

if [ "$MODE" = test ]; then
    step "sanitizer build (ASan + UBSan)"
    if [ ! -d build/asan ]; then
        meson setup build/asan --buildtype=debug -Db_sanitize=address,undefined \
            -Db_lundef=false -Dwerror=true
    fi
    ninja -C build/asan
    step "clang build (the tree must build warning-free with clang as with gcc)"
    if [ ! -d build/clang ]; then
        CC=clang meson setup build/clang --buildtype=debug -Dwerror=true
    fi
    ninja -C build/clang
    step "test suite"
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
    exec meson test -C build/asan --print-errorlogs --num-processes 2 --timeout-multiplier 2
fi

step "main job: a gateway with a live browser session"
porthole doctor || true
porthole browser start --live
cat >&2 <<'MSG'

The gateway keeps running in the background (log: ~/.local/state/porthole/gateway.log).
Open live_url in any browser to watch; control_url lets you drive.
Playwright:  const b = await chromium.connectOverCDP(CDP_URL)
Puppeteer:   await puppeteer.connect({browserURL: CDP_URL})
More:        porthole browser list | porthole browser stop ID | porthole sandbox create
MSG
