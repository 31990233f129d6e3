#!/bin/sh
# Runs an example server and example clients against it, for CTest:
#   run_with_server.sh SERVER [SERVER ARGS...] -- CLIENT [-- CLIENT ...]
# The server is started with --listen 127.0.0.1:0 and must print
# "listening on ADDR" first; each client is run with ADDR as its argument.
# Passes when every client and then the server exit 0 (all bounded in time).
set -u
server=$1
shift
sargs=""
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
    sargs="$sargs $1"
    shift
done
[ $# -gt 0 ] && shift
out=$(mktemp)
trap 'rm -f "$out"; [ -n "${spid:-}" ] && kill "$spid" 2>/dev/null' EXIT
# shellcheck disable=SC2086
timeout 60 "$server" --listen 127.0.0.1:0 $sargs >"$out" &
spid=$!
addr=""
i=0
while [ -z "$addr" ] && [ $i -lt 100 ]; do
    addr=$(sed -n 's/^listening on //p' "$out")
    [ -n "$addr" ] || sleep 0.1
    i=$((i + 1))
done
if [ -z "$addr" ]; then
    echo "FAIL: $server did not print 'listening on'" >&2
    exit 1
fi
echo "server $server listening on $addr"
while [ $# -gt 0 ]; do
    client=$1
    shift
    [ "$client" = "--" ] && continue
    if ! timeout 30 "$client" "$addr"; then
        echo "FAIL: $client $addr" >&2
        exit 1
    fi
done
wait "$spid"
rc=$?
spid=""
if [ $rc -ne 0 ]; then
    echo "FAIL: $server exited $rc" >&2
    exit 1
fi
echo "PASS"
