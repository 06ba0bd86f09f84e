#!/usr/bin/env bash
# What recording costs a guest whose screen QEMU itself holds, stripped to
# the bone (prints numbers, asserts nothing).
#
# Browser VMs draw into a virtio-gpu framebuffer that QEMU's own VNC server
# serves from the host (tests/bench/recording_bench.mjs measures the whole
# product that way). Here no X server or browser takes part: the gateway's
# recorder (recorder/bench_encode --vnc) records QEMU's VNC server at 15 fps
# while the guest draws straight into /dev/fb0. The guest is a minimal
# busybox initramfs on Debian's generic kernel (the cloud kernel the images
# use has no DRM drivers) with one vCPU: it repaints the whole 1280x720
# screen with random pixels without pause and times a CPU loop over and
# over. The script compares the loop's time with recording off, on, and off
# again, with the vCPU pinned to a host CPU of its own.
#
# Facts it depends on, found while writing it:
#  - microvm's virtio-mmio transport is legacy by default; virtio-gpu and
#    virtio-input only bind to a modern one: -global
#    virtio-mmio.force-legacy=false.
#  - Debian 12's linux-image-amd64 has virtio-gpu, virtio-input and
#    virtio-mmio as modules; fbdev emulation gives /dev/fb0 at xres x yres.
#
#   tests/bench/host_display_bench.sh [--seconds 40] [--build DIR]
#
# Needs qemu-system-x86, apt-get (to download the kernel and busybox-static
# packages into ~/.cache/porthole/bench), cpio, and a built bench_encode
# (made here with ninja when missing).
set -euo pipefail

SECONDS_ON=40
BUILD=build/release
while [[ $# -gt 0 ]]; do
    case $1 in
    --seconds) SECONDS_ON=$2; shift 2 ;;
    --build) BUILD=$2; shift 2 ;;
    -h | --help) sed -n '2,28p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done

REPO=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/porthole/bench/host-display
WORK=$(mktemp -d /tmp/porthole-host-display.XXXXXX)
QPID=""
cleanup() {
    if [[ -n $QPID ]]; then kill "$QPID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
say() { echo "host-display: $*" >&2; }

BENCH=$REPO/$BUILD/recorder/bench_encode
if [[ ! -x $BENCH ]]; then
    say "building $BENCH"
    ninja -C "$REPO/$BUILD" recorder/bench_encode >&2
fi

# The packages, downloaded once.
mkdir -p "$CACHE"
KVER=$(apt-cache depends linux-image-amd64 | sed -n 's/.*Depends: linux-image-\([0-9].*-amd64\)$/\1/p' | head -1)
[[ -n $KVER ]] || { say "cannot find linux-image-amd64's kernel version (apt-get update?)"; exit 1; }
(
    cd "$CACHE"
    ls linux-image-"$KVER"_*.deb >/dev/null 2>&1 || apt-get download "linux-image-$KVER" >&2
    ls busybox-static_*.deb >/dev/null 2>&1 || apt-get download busybox-static >&2
)
mkdir -p "$WORK/k" "$WORK/bb" "$WORK/ird"/{bin,proc,sys,dev,tmp,lib/modules}
dpkg-deb -x "$CACHE"/linux-image-"$KVER"_*.deb "$WORK/k"
dpkg-deb -x "$CACHE"/busybox-static_*.deb "$WORK/bb"
depmod -b "$WORK/k" "$KVER"
cp "$WORK/bb/bin/busybox" "$WORK/ird/bin/"
for m in virtio_mmio virtio-gpu virtio_input evdev; do
    modprobe -d "$WORK/k" -S "$KVER" --show-depends "$m"
done | awk '$1 == "insmod" && !seen[$2]++ {print $2}' | while read -r ko; do
    cp "$ko" "$WORK/ird/lib/modules/"
    basename "$ko" >>"$WORK/ird/lib/modules/order"
done

cat >"$WORK/ird/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in $(cat /lib/modules/order); do insmod /lib/modules/$m || echo "insmod $m failed"; done
for i in $(seq 100); do [ -e /dev/fb0 ] && break; sleep 0.2; done
echo "FB $(cat /sys/class/graphics/fb0/virtual_size 2>&1) bpp $(cat /sys/class/graphics/fb0/bits_per_pixel 2>&1)"
bytes=$(( $(cut -d, -f1 /sys/class/graphics/fb0/virtual_size) * $(cut -d, -f2 /sys/class/graphics/fb0/virtual_size) * 4 ))
dd if=/dev/urandom of=/tmp/f1 bs=$bytes count=1 2>/dev/null
dd if=/dev/urandom of=/tmp/f2 bs=$bytes count=1 2>/dev/null
(while true; do cat /tmp/f1 >/dev/fb0; cat /tmp/f2 >/dev/fb0; done) &
while true; do
    a=$(cut -d' ' -f1 /proc/uptime)
    i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done
    echo "WORK $a $(cut -d' ' -f1 /proc/uptime)"
done
EOF
chmod +x "$WORK/ird/init"
(cd "$WORK/ird" && find . | cpio -o -H newc 2>/dev/null | gzip -1 >"$WORK/initrd")

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
DISPLAYNUM=$((PORT - 5900))
if ((DISPLAYNUM < 0)); then
    PORT=5990 DISPLAYNUM=90
fi
say "kernel $KVER; QEMU VNC on 127.0.0.1:$PORT"
qemu-system-x86_64 -M microvm -accel tcg,thread=multi -cpu max -smp 1 -m 1024 -nodefaults \
    -name host-display,debug-threads=on \
    -no-user-config -no-reboot -global virtio-mmio.force-legacy=false \
    -kernel "$WORK"/k/boot/vmlinuz-"$KVER" -initrd "$WORK/initrd" \
    -append "console=ttyS0 panic=-1 tsc_early_khz=2000000 tsc=reliable" \
    -serial "file:$WORK/serial.log" -device virtio-gpu-device,xres=1280,yres=720 \
    -device virtio-tablet-device -device virtio-keyboard-device \
    -vnc "127.0.0.1:$DISPLAYNUM" >"$WORK/qemu.log" 2>&1 &
QPID=$!

count() {
    local n
    n=$(grep -c '^WORK' "$WORK/serial.log" 2>/dev/null) || true
    echo "${n:-0}"
}
wait_count() { # until at least $1 loop timings are in
    local deadline=$((SECONDS + 600))
    while (($(count) < $1)); do
        kill -0 "$QPID" 2>/dev/null || { say "QEMU exited: $(cat "$WORK/qemu.log")"; exit 1; }
        ((SECONDS < deadline)) || { say "the guest printed no timings"; tail "$WORK/serial.log" >&2; exit 1; }
        sleep 1
    done
}
wait_count 4
# The guest's one vCPU gets host CPU 0 to itself; QEMU's other threads (its
# VNC server among them) and the recorder share the rest. So what the loop
# loses is the guest's own cost, not host work crowding out the vCPU (on a
# 2-core host an unpinned recorder takes its CPU time from the guest).
NCPU=$(nproc)
if ((NCPU >= 2)); then
    for t in "/proc/$QPID/task/"*; do
        if grep -q 'CPU 0/TCG' "$t/comm"; then
            taskset -pc 0 "${t##*/}" >/dev/null
        else
            taskset -pc 1-$((NCPU - 1)) "${t##*/}" >/dev/null
        fi
    done
    PIN=(taskset -c 1-$((NCPU - 1)))
    say "vCPU pinned to host CPU 0, everything else to 1-$((NCPU - 1))"
else
    PIN=()
    say "one host CPU: nothing pinned, the recorder competes with the guest"
fi
grep -m1 '^FB' "$WORK/serial.log" >&2 || true
sleep "$SECONDS_ON"
m0=$(count)
say "recording $SECONDS_ON s through QEMU's VNC server"
"${PIN[@]}" "$BENCH" --vnc "$PORT" "$SECONDS_ON" 15
m1=$(count)
sleep "$SECONDS_ON"
m2=$(count)

# Loops wholly inside each phase: the first one of a phase may straddle it.
awk -v m0="$m0" -v m1="$m1" -v m2="$m2" '
/^WORK/ {
    n++; d = $3 - $2
    if (n > 3 && n <= m0) { off += d; no++ }
    if (n > m0 + 1 && n <= m1) { on += d; nn++ }
    if (n > m1 + 1 && n <= m2) { off2 += d; no2++ }
}
END {
    if (!no || !nn || !no2) { print "host-display: too few timings; raise --seconds"; exit 1 }
    base = (off + off2) / (no + no2)
    printf "guest CPU loop while the screen repaints: off %.2f s (%d runs), recording %.2f s (%d runs), off again %.2f s (%d runs)\n", off / no, no, on / nn, nn, off2 / no2, no2
    printf "slowdown with recording: %.1f%%\n", (on / nn / base - 1) * 100
}' "$WORK/serial.log"
