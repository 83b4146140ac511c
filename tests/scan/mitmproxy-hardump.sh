#!/bin/sh
# Regenerates tests/scan/mitmproxy-hardump.har with mitmproxy's own HAR
# export (the `hardump` option of mitmdump), for tests/scan.rs.
#
#   sh tests/scan/mitmproxy-hardump.sh [OUT.har]
#
# mitmproxy is installed into a throwaway venv ($MITM_VENV, default
# $TMPDIR/leakscope-mitmproxy-venv) on first use. curl sends requests
# through mitmdump (a regular proxy on 127.0.0.1) to a local plain-HTTP
# origin (mitmproxy_origin.py); nothing leaves the machine. One request
# carries `Host: t.appsflyer.com`, which mitmproxy records as the URL's
# host, so the fixture has a third-party SDK in it.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/mitmproxy-hardump.har}
venv=${MITM_VENV:-${TMPDIR:-/tmp}/leakscope-mitmproxy-venv}
version=11.0.2

if [ ! -x "$venv/bin/mitmdump" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "mitmproxy==$version"
fi

work=$(mktemp -d)
origin_pid=
proxy_pid=
cleanup() {
    [ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null || true
    [ -n "$origin_pid" ] && kill "$origin_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

wait_for_file() {
    for _ in $(seq 100); do
        [ -s "$1" ] && return 0
        sleep 0.1
    done
    echo "timed out waiting for $1" >&2
    exit 1
}

python3 "$here/mitmproxy_origin.py" "$work/origin.port" &
origin_pid=$!
wait_for_file "$work/origin.port"
origin="http://127.0.0.1:$(cat "$work/origin.port")"

proxy_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$venv/bin/mitmdump" --quiet --listen-host 127.0.0.1 --listen-port "$proxy_port" \
    --set confdir="$work/mitmproxy" --set hardump="$work/capture.har" &
proxy_pid=$!
for _ in $(seq 100); do
    curl -s -o /dev/null -x "http://127.0.0.1:$proxy_port" "$origin/collect" && break
    sleep 0.2
done
# The warm-up request above is in the HAR too: an entry without identifiers.

through() {
    curl -sS -o /dev/null -x "http://127.0.0.1:$proxy_port" "$@"
    # Spread the entries out in time, so tests can put a phase switch
    # between them.
    sleep 1
}
through -H 'Host: t.appsflyer.com' \
    "$origin/collect?imei=490154203237518&androidid=3f8a2c1be47d9a05"
through -H 'Content-Type: application/json' \
    --data '{"phone":"+86 138 0013 8000","email":"tester@example.com"}' "$origin/profile"
through --data 'oaid=5f3c9a2e-7d41-4b8e-a6c2-1e9f0b7d3a64&mac=02%3A1a%3A11%3Af0%3A3c%3A77' \
    "$origin/form"
through --compressed "$origin/gzip"
through "$origin/blob"

# mitmdump writes the HAR when it shuts down.
kill -INT "$proxy_pid"
wait "$proxy_pid" || true
proxy_pid=
wait_for_file "$work/capture.har"
cp "$work/capture.har" "$out"
echo "mitmproxy-hardump: wrote $out" >&2
