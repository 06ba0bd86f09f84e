#!/bin/bash
# guest-image/init/sources names every file of the guest init, and nothing
# else: build.sh compiles and hashes only what it names, so a file missing
# from it would be left out of the guest (or its changes out of the hash).
set -euo pipefail
init=$(cd "$(dirname "$0")/../../guest-image/init" && pwd)
listed=$(grep -v '^#' "$init/sources" | LC_ALL=C sort)
present=$(cd "$init" && ls -- *.c *.h | LC_ALL=C sort)
if [[ $listed != "$present" ]]; then
    echo "init/sources and the files of guest-image/init differ:" >&2
    diff <(echo "$listed") <(echo "$present") >&2 || true
    exit 1
fi
echo "init/sources: $(echo "$listed" | wc -l) files, all present, none missing"
