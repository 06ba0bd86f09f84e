#!/bin/sh
# The guest init's config parser and the files it writes from a config,
# through its check-config command: Chromium's policy mirrors
# allowed_domains, invalid lines are refused, an empty list allows nothing.
set -eu
init=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fails=0

expect() { # NAME FILE PATTERN: the output for FILE contains PATTERN
    if grep -qF -- "$3" "$2"; then
        echo "ok   $1"
    else
        echo "FAIL $1: no $3 in"; cat "$2"; fails=$((fails + 1))
    fi
}
reject() { # NAME FILE PATTERN: ... does not contain it
    if grep -qF -- "$3" "$2"; then
        echo "FAIL $1: $3 in"; cat "$2"; fails=$((fails + 1))
    else
        echo "ok   $1"
    fi
}

printf '%s\n' kind=browser browser.allow_domain=allowed.test 'browser.allow_domain=*.example.com' \
    'browser.allow_domain=*.both.test' browser.allow_domain=both.test \
    'browser.allow_domain=Bad_Name' 'browser.allow_domain=x"],"y' network.proxy=10.0.2.100:3128 \
    >"$dir/list.conf"
"$init" check-config "$dir/list.conf" >"$dir/list.out" 2>"$dir/list.err"
expect "exact host: Chromium's exact filter" "$dir/list.out" '"URLAllowlist": ["about:blank", ".allowed.test", "example.com", "both.test", ".both.test"]'
# *.both.test with both.test listed too: both.test is not blocked.
expect "subdomains only: the domain itself blocked" "$dir/list.out" '"URLBlocklist": ["*", ".example.com"]}'
expect "the proxy policy stays" "$dir/list.out" '"ProxySettings": {"ProxyMode": "fixed_servers", "ProxyServer": "10.0.2.100:3128"}'
expect "invalid names are refused" "$dir/list.err" 'ignoring invalid browser.allow_domain'
reject "no invalid name reaches the policy" "$dir/list.out" 'Bad_Name'
reject "no quote reaches the policy" "$dir/list.out" '"y'

printf '%s\n' kind=browser browser.allow_domain= >"$dir/empty.conf"
"$init" check-config "$dir/empty.conf" >"$dir/empty.out" 2>&1
expect "an empty list allows nothing" "$dir/empty.out" '"URLAllowlist": ["about:blank"], "URLBlocklist": ["*"]'

printf '%s\n' kind=browser >"$dir/none.conf"
"$init" check-config "$dir/none.conf" >"$dir/none.out" 2>&1
reject "no list, no URL policy" "$dir/none.out" 'URLBlocklist'

# As many patterns as the gateway allows, long ones: the whole policy is
# written (Chromium would start without any if it did not fit).
{
    echo kind=browser
    echo network.proxy=10.0.2.100:3128
    for i in $(seq -w 1 64); do
        echo "browser.allow_domain=*.host-$i.a-rather-long-subdomain-name.of-an-example-domain.test"
    done
} >"$dir/many.conf"
"$init" check-config "$dir/many.conf" >"$dir/many.out" 2>&1 || true
expect "64 long patterns: all allowed" "$dir/many.out" '"host-64.a-rather-long-subdomain-name.of-an-example-domain.test"]'
expect "64 long patterns: all blocked as domains" "$dir/many.out" '".host-64.a-rather-long-subdomain-name.of-an-example-domain.test"]}'

# Env values as large as the gateway takes (32 KiB of config lines), all
# quotes: quoted, the script is 4 times that, and still written whole,
# proxy lines included.
q=$(printf "%4088s" "" | tr ' ' "'")
{
    echo network.proxy=10.0.2.100:3128
    for i in 1 2 3 4 5 6 7 8; do echo "env=V$i=$q"; done
} >"$dir/quotes.conf"
"$init" check-config "$dir/quotes.conf" >"$dir/quotes.out" 2>&1 || true
expect "quote-heavy env: the proxy lines" "$dir/quotes.out" 'export https_proxy=http://10.0.2.100:3128'
expect "quote-heavy env: the last value" "$dir/quotes.out" "export V8=''\\'''\\''"

echo "$fails failed"
[ "$fails" -eq 0 ]
