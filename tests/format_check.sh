#!/usr/bin/env bash
# Fails when a C file of the tree differs from what .clang-format makes of it,
# and prints the diff. Run from anywhere; checks the files git knows.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v clang-format >/dev/null || { echo "format_check: clang-format is not installed" >&2; exit 1; }
bad=0
while IFS= read -r f; do
    [ -f "$f" ] || continue
    if ! clang-format --style=file "$f" | diff -u --label "$f" --label "$f (clang-format)" "$f" -; then
        bad=$((bad + 1))
    fi
done < <(git ls-files '*.c' '*.h' 2>/dev/null || find . -name '*.[ch]' -not -path './build*')
if [ "$bad" -gt 0 ]; then
    echo "format_check: $bad file(s) differ from .clang-format; run: git ls-files '*.c' '*.h' | xargs clang-format -i" >&2
    exit 1
fi
echo "format_check: all files match .clang-format"
