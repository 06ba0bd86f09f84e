#!/usr/bin/env bash
# Builds a Porthole guest image (kernel, initramfs, read-only ext4 root) from
# Debian packages, without Docker and without mounting anything.
#
#   build.sh FLAVOUR [--cache-dir DIR] [--force] [--verbose]
#   build.sh NAME --packages a,b,c | --recipe FILE [--cache-dir DIR] [--force] [--verbose]
#
# FLAVOUR is `base` (command sandbox) or `browser` (adds Chromium and Xorg).
# NAME is a custom sandbox image: base plus the packages given (a recipe
# file lists one per line, '#' starts a comment), for POST /v1/sandboxes
# {"image": NAME}.
# Output: CACHE/images/FLAVOUR-HASH12/{vmlinuz,initrd.img,rootfs.img,manifest.json}
# and the symlink CACHE/images/FLAVOUR pointing at it. CACHE is --cache-dir,
# else $CACHE, else ${XDG_CACHE_HOME:-$HOME/.cache}/porthole.
# Environment: MIRROR (Debian mirror URL), SECURITY_MIRROR, CC.
set -euo pipefail

readonly STEPS=6
readonly SUITE=bookworm
# Loaded by the guest's stage-1 init in this order (dependencies first,
# computed below); the VM's disk, NIC, fw_cfg blobs and vsock need them.
readonly INITRAMFS_MODULES=(virtio_ring virtio virtio_mmio virtio_blk failover net_failover
    virtio_net qemu_fw_cfg virtio_console virtio_rng vsock vmw_vsock_virtio_transport_common
    vmw_vsock_virtio_transport)
# The browser's screen, pointer and keyboard are virtio devices QEMU shows
# on the host (virtio-gpu's DRM driver gives Xorg /dev/dri/card0). Its
# generic kernel has ext4 as a module too, and ext4 asks the crypto API for
# crc32c at mount time, which nothing could load on demand in the initramfs.
readonly BROWSER_MODULES=(crc32c_generic ext4 virtio_gpu virtio_input evdev)
# Debian's cloud kernel boots fastest but has no DRM drivers at all; the
# browser's screen needs the generic kernel's virtio-gpu.
kernel_package() {
    case $1 in
    browser) echo linux-image-amd64 ;;
    *) echo linux-image-cloud-amd64 ;;
    esac
}

usage() {
    echo "usage: $0 base|browser [--cache-dir DIR] [--force] [--verbose]" >&2
    echo "       $0 NAME --packages a,b,c | --recipe FILE [--cache-dir DIR] [--force] [--verbose]" >&2
    exit 2
}

note() { printf '%s\n' "$*" >&2; }
die() {
    note "build.sh: error: $*"
    exit 1
}

# A package list: one per line, '#' starts a comment.
read_list() {
    grep -v '^[[:space:]]*\(#\|$\)' "$1" | tr -d '[:blank:]'
}

step_no=0
step() {
    step_no=$((step_no + 1))
    note "[$step_no/$STEPS] $* (${SECONDS}s)"
}

flavour=""
cache_dir=""
force=0
verbose=0
extra_list=""
recipe_file=""
while (($# > 0)); do
    case $1 in
    --cache-dir) (($# >= 2)) || usage; cache_dir=$2; shift ;;
    --cache-dir=*) cache_dir=${1#--cache-dir=} ;;
    --packages) (($# >= 2)) || usage; extra_list=$2; shift ;;
    --packages=*) extra_list=${1#--packages=} ;;
    --recipe) (($# >= 2)) || usage; recipe_file=$2; shift ;;
    --recipe=*) recipe_file=${1#--recipe=} ;;
    --force) force=1 ;;
    --verbose | -v) verbose=1 ;;
    -h | --help) usage ;;
    -*) note "unknown argument: $1"; usage ;;
    *) [[ -z $flavour ]] || usage; flavour=$1 ;;
    esac
    shift
done
[[ -n $flavour ]] || usage

# A custom image: its extra packages, from --packages and --recipe.
extra=()
if [[ $flavour == base || $flavour == browser ]]; then
    [[ -z $extra_list && -z $recipe_file ]] ||
        die "$flavour is built from its own lists; give a custom image a NAME of its own"
else
    [[ $flavour =~ ^[a-z0-9][a-z0-9_-]{0,30}$ ]] ||
        die "image name '$flavour': 1 to 31 of a-z, 0-9, '-' and '_', starting with a letter or digit"
    [[ -n $extra_list || -n $recipe_file ]] || die "custom image $flavour: give --packages or --recipe"
    IFS=', ' read -r -a extra <<<"$extra_list"
    if [[ -n $recipe_file ]]; then
        [[ -r $recipe_file ]] || die "cannot read recipe $recipe_file"
        mapfile -t -O "${#extra[@]}" extra < <(read_list "$recipe_file")
    fi
    for p in "${extra[@]}"; do
        [[ $p =~ ^[a-z0-9][a-z0-9+.-]+$ ]] || die "'$p' is not a Debian package name"
    done
    ((${#extra[@]} > 0)) || die "custom image $flavour: no packages given"
    # Sorted and unique, so the same set gives the same image.
    mapfile -t extra < <(printf '%s\n' "${extra[@]}" | LC_ALL=C sort -u)
fi

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_root=${cache_dir:-${CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/porthole}}
images=$cache_root/images
mirror=${MIRROR:-http://deb.debian.org/debian}
security_mirror=${SECURITY_MIRROR:-http://deb.debian.org/debian-security}
cc_bin=${CC:-cc}

# The guest init is the files init/sources names (compiled together).
mapfile -t init_files < <(grep -v '^#' "$here/init/sources" | sed 's|^|init/|')
init_c=()
for f in "${init_files[@]}"; do
    if [[ $f == *.c ]]; then init_c+=("$here/$f"); fi
done
recipe=(build.sh init/sources "${init_files[@]}" packages/base.list files/sshd_config)
[[ $flavour == browser ]] && recipe+=(packages/browser.list)

# Names and lengths go into the hash too, so moving bytes between files
# cannot produce the same digest.
recipe_hash() {
    local f
    for f in "${recipe[@]}"; do
        [[ -f $here/$f ]] || die "recipe file missing: $here/$f"
        printf '%s\0%s\0' "$f" "$(wc -c <"$here/$f")"
        cat "$here/$f"
    done
    printf 'flavour\0%s\0' "$flavour"
    ((${#extra[@]} == 0)) || printf 'packages\0%s\0' "${extra[*]}"
}
hash=$(recipe_hash | sha256sum | cut -c1-64)
name=$flavour-${hash:0:12}
final=$images/$name

# Points images/FLAVOUR at the build atomically: readers see old or new.
publish_link() {
    ln -sfn "$name" "$images/.$flavour.link.$$"
    mv -T "$images/.$flavour.link.$$" "$images/$flavour"
}

mkdir -p "$images"
# One build per flavour at a time; a second caller waits, then finds the
# image complete and returns at once.
exec 9>"$images/.$flavour.lock"
flock 9

if [[ $force == 0 && -f $final/manifest.json ]]; then
    publish_link
    note "$flavour image is up to date: $final"
    exit 0
fi

[[ $(id -u) == 0 ]] || die "must run as root (mmdebstrap builds the root filesystem in root mode)"
for tool in mmdebstrap mke2fs cpio gzip "$cc_bin" modprobe sha256sum flock findmnt; do
    command -v "$tool" >/dev/null || die "missing tool: $tool"
done

# A build killed with SIGKILL leaves its temp dir; we hold the lock, so any
# temp dir of this flavour is stale.
umount_below() {
    local dir=$1 mnt
    while read -r mnt; do
        umount -l "$mnt" || true
    done < <(findmnt -rn -o TARGET | grep -F "$dir/" | sort -r || true)
}
for stale in "$images"/.build-"$flavour".*; do
    [[ -d $stale ]] || continue
    umount_below "$stale"
    rm -rf --one-file-system "$stale"
done

build=$(mktemp -d "$images/.build-$flavour.XXXXXX")
bg_pid=""
cleanup() {
    local rc=$?
    # Cleanup must run to the end whatever fails in it.
    set +e
    if [[ -n $bg_pid ]]; then
        kill "$bg_pid" 2>/dev/null
        wait "$bg_pid" 2>/dev/null
    fi
    # mmdebstrap mounts /proc, /sys and /dev inside its target while it runs;
    # never let rm descend into those.
    umount_below "$build"
    rm -rf --one-file-system "$build"
    ((rc == 0)) || note "build.sh: $flavour build failed after ${SECONDS}s"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Runs a long command with its output in a log; prints a heartbeat so a CI
# log without a TTY still shows progress, and the log tail on failure.
run_logged() {
    local log=$1 last=$SECONDS line
    shift
    if ((verbose)); then
        "$@" 2>&1 | tee "$log" >&2
        return
    fi
    "$@" >"$log" 2>&1 &
    bg_pid=$!
    while kill -0 "$bg_pid" 2>/dev/null; do
        sleep 1
        if ((SECONDS - last >= 15)); then
            last=$SECONDS
            line=$(tail -n 1 "$log" | tr -cd '[:print:]' | cut -c1-100)
            note "      ... ${line:-working} (${SECONDS}s)"
        fi
    done
    local rc=0
    wait "$bg_pid" || rc=$?
    bg_pid=""
    if ((rc != 0)); then
        tail -n 40 "$log" >&2
        die "$1 failed (exit $rc)"
    fi
}

# ---------------------------------------------------------------------------
step "compiling porthole-init (static)"
init_bin=$build/porthole-init
"$cc_bin" -std=c11 -D_GNU_SOURCE -static -Os -Wall -Wextra -Werror -Wshadow \
    -Wstrict-prototypes -Wmissing-prototypes -o "$init_bin" "${init_c[@]}"
strip "$init_bin" 2>/dev/null || true

# ---------------------------------------------------------------------------
mapfile -t packages < <(read_list "$here/packages/base.list")
packages+=("$(kernel_package "$flavour")")
if [[ $flavour == browser ]]; then
    mapfile -t -O "${#packages[@]}" packages < <(read_list "$here/packages/browser.list")
fi
packages+=("${extra[@]}")
step "mmdebstrap: installing ${#packages[@]} packages from $mirror (log: mmdebstrap.log)"
root=$build/root
include=$(IFS=,; echo "${packages[*]}")
# The dpkg excludes stay in the image, so packages installed later inside a
# guest skip docs too. INITRD=No keeps the kernel's postinst from building
# an initramfs we would throw away. A mirror that drops connections now and
# then (seen here: "Unable to connect" for a few seconds) gets retries.
run_logged "$build/mmdebstrap.log" env INITRD=No mmdebstrap \
    --variant=minbase \
    --aptopt='Acquire::Retries "8"' \
    --include="$include" \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --dpkgopt='path-exclude=/usr/share/lintian/*' \
    --dpkgopt='path-exclude=/usr/share/doc-base/*' \
    "$SUITE" "$root" \
    "deb $mirror $SUITE main" \
    "deb $mirror $SUITE-updates main" \
    "deb $security_mirror $SUITE-security main"

# ---------------------------------------------------------------------------
step "configuring the root filesystem"
kver=$(ls "$root/lib/modules")
[[ $(wc -w <<<"$kver") == 1 ]] || die "expected one kernel in the rootfs, found: $kver"
[[ -f $root/boot/vmlinuz-$kver ]] || die "no /boot/vmlinuz-$kver in the rootfs"

install -m 0755 "$init_bin" "$root/sbin/porthole-init"
install -m 0644 "$here/files/sshd_config" "$root/etc/ssh/sshd_config"
rm -rf "$root/etc/ssh/sshd_config.d"
# Host keys are per VM and arrive through fw_cfg; a baked-in key would be
# shared by every guest.
rm -f "$root"/etc/ssh/ssh_host_*
# sshd refuses logins for accounts whose password field marks them locked.
sed -i 's/^root:[^:]*:/root:*:/' "$root/etc/shadow"
sed -i 's#^root:\([^:]*:[^:]*:[^:]*:[^:]*:[^:]*\):.*$#root:\1:/bin/bash#' "$root/etc/passwd"
install -d -m 0700 "$root/root" "$root/root/.ssh"
echo porthole >"$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
rm -f "$root/etc/resolv.conf"
: >"$root/etc/machine-id"
rm -f "$root"/boot/initrd.img-* "$root"/boot/System.map-*
rm -rf "$root"/var/cache/apt/*.bin "$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old
find "$root/var/log" -type f -delete
find "$root/tmp" "$root/var/tmp" -mindepth 1 -delete
chmod 1777 "$root/tmp"
if [[ $flavour == browser ]]; then
    # porthole-init writes the policy per VM; the directory is expected.
    install -d -m 0755 "$root/etc/chromium/policies/managed"
    install -d -m 0700 "$root/root/porthole"
fi

# ---------------------------------------------------------------------------
step "kernel $kver and initramfs"
out=$build/out
mkdir -p "$out"
cp "$root/boot/vmlinuz-$kver" "$out/vmlinuz"
# The kernel boots from outside the disk; a second copy inside is dead weight.
rm -f "$root/boot/vmlinuz-$kver"

kconfig=$root/boot/config-$kver
if grep -q '^CONFIG_RD_ZSTD=y' "$kconfig" && command -v zstd >/dev/null; then
    compress=(zstd -q -19 -T0 --stdout)
elif grep -q '^CONFIG_RD_GZIP=y' "$kconfig"; then
    compress=(gzip -9 -n -c)
else
    die "kernel supports neither zstd nor gzip initramfs"
fi

ird=$build/initramfs
mkdir -p "$ird"/{dev,proc,sys,newroot,lib/modules}
# Without /dev/console in the initramfs the kernel starts PID 1 with no
# stdin/stdout/stderr.
mknod -m 0600 "$ird/dev/console" c 5 1
mknod -m 0666 "$ird/dev/null" c 1 3
install -m 0755 "$init_bin" "$ird/init"
# The marker is how the single binary knows it is stage 1.
echo "$kver" >"$ird/porthole-initramfs"

# modprobe resolves the dependency order from the rootfs's modules.dep; each
# module is listed once, first occurrence wins, so dependencies come first.
declare -A seen=()
order=()
modules=("${INITRAMFS_MODULES[@]}")
[[ $flavour == browser ]] && modules+=("${BROWSER_MODULES[@]}")
for mod in "${modules[@]}"; do
    deps=$(modprobe --show-depends -d "$root" -S "$kver" "$mod") ||
        die "module $mod not found for kernel $kver"
    while read -r verb path _; do
        # "builtin" lines need nothing from us.
        [[ $verb == insmod ]] || continue
        [[ -n ${seen[$path]:-} ]] && continue
        seen[$path]=1
        order+=("$path")
    done <<<"$deps"
done
: >"$ird/lib/modules/order"
for path in "${order[@]}"; do
    file=$(basename "$path")
    # The init uses plain finit_module(), so compressed modules are unpacked.
    case $file in
    *.ko) cp "$path" "$ird/lib/modules/$file" ;;
    *.ko.xz) file=${file%.xz}; xz -dc "$path" >"$ird/lib/modules/$file" ;;
    *.ko.zst) file=${file%.zst}; zstd -qdc "$path" >"$ird/lib/modules/$file" ;;
    *.ko.gz) file=${file%.gz}; gzip -dc "$path" >"$ird/lib/modules/$file" ;;
    *) die "unexpected module file: $path" ;;
    esac
    echo "/lib/modules/$file" >>"$ird/lib/modules/order"
done
note "      modules: $(cd "$ird/lib/modules" && ls ./*.ko | sed 's#^\./##; s#\.ko$##' | paste -sd' ')"
(cd "$ird" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) |
    "${compress[@]}" >"$out/initrd.img"

# ---------------------------------------------------------------------------
step "rootfs.img (ext4)"
used_mib=$(du -sx --block-size=1M "$root" | cut -f1)
size_mib=$((used_mib + used_mib / 4 + 64))
files=$(find "$root" -xdev | wc -l)
# Enough inodes for the base plus what a sandbox installs; resize2fs in the
# guest grows inode tables with the disk.
inodes=$((files * 2 + 32768))
run_logged "$build/mke2fs.log" mke2fs -q -F -t ext4 -b 4096 -m 0 -N "$inodes" \
    -L porthole-root -d "$root" "$out/rootfs.img" "${size_mib}M"
rootfs_bytes=$(stat -c %s "$out/rootfs.img")

# ---------------------------------------------------------------------------
step "manifest and publish"
built_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
cat >"$out/manifest.json" <<EOF
{"flavour": "$flavour", "recipe_hash": "$hash", "kernel_version": "$kver", "built_at": "$built_at", "rootfs_bytes": $rootfs_bytes, "packages": "${extra[*]}"}
EOF
# The manifest marks a complete image, so it must appear last: the outputs
# move into place as one directory rename.
rm -rf --one-file-system "$final"
mv -T "$out" "$final"
publish_link

# Older builds go, unless a running VM still has one open (a QEMU process
# reads its backing file by path only when it opens the disk).
for old in "$images/$flavour"-*; do
    # Only this image's builds (NAME-HASH12), not another image's NAME-x.
    [[ ${old##*/} =~ ^$flavour-[0-9a-f]{12}$ && -d $old && ! -L $old && $old != "$final" ]] ||
        continue
    if find /proc/[0-9]*/fd -lname "$old/*" -print -quit 2>/dev/null | grep -q .; then
        note "      keeping $old: still in use"
        continue
    fi
    rm -rf --one-file-system "$old"
done

note "built $final in ${SECONDS}s: rootfs.img $((rootfs_bytes / 1048576)) MiB," \
    "initrd.img $(($(stat -c %s "$final/initrd.img") / 1024)) KiB, kernel $kver"
