#!/bin/sh
# Assembles the live view's static root: our web files plus Debian's noVNC
# (core/ and vendor/, the parts the RFB client imports) under novnc/.
# The tree is built beside the target and renamed into place, so a gateway
# serving the old tree never sees a half-copied one.
#   assemble-root.sh ROOT NOVNC_DIR STAMP FILE...
set -eu
root=$1 novnc=$2 stamp=$3
shift 3
tmp="$root.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp/novnc"
cp "$@" "$tmp/"
# -L: Debian may symlink vendored libraries to /usr/share/javascript.
cp -RL "$novnc/core" "$novnc/vendor" "$tmp/novnc/"
if [ -f /usr/share/doc/novnc/copyright ]; then
    cp /usr/share/doc/novnc/copyright "$tmp/novnc/COPYRIGHT.txt"
fi
rm -rf "$root.old"
if [ -e "$root" ]; then mv "$root" "$root.old"; fi
mv "$tmp" "$root"
rm -rf "$root.old"
touch "$stamp"
