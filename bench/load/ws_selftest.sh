#!/usr/bin/env bash
# End-to-end self-test of ferry-load's WebSocket modes over loopback: `serve --mode ws-echo` on a
# free port, then `run --mode ws-verify` (100 messages of 70000 bytes over 4 connections, every
# echoed byte compared) and a short `run --mode ws-rr --text`. Usage: ws_selftest.sh FERRY_LOAD
set -euo pipefail

load=${1:?usage: ws_selftest.sh path/to/ferry-load}
out=$(mktemp)
server=
cleanup() {
    if [[ -n $server ]]; then
        kill "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
    fi
    rm -f "$out"
}
trap cleanup EXIT

"$load" serve --listen 127.0.0.1:0 --mode ws-echo >"$out" &
server=$!
for _ in $(seq 100); do
    grep -q '^listening on' "$out" && break
    sleep 0.05
done
addr=$(sed -n 's/^listening on //p' "$out")
[[ -n $addr ]] || { echo "ws-echo server did not start"; exit 1; }

timeout 20 "$load" run --target "$addr" --mode ws-verify --count 100 --connections 4 \
    --size 70000 --warmup 0s --timeout 15s
timeout 20 "$load" run --target "$addr" --mode ws-rr --text --subprotocol chat --path /x \
    --connections 8 --size 64 --warmup 0s --duration 300ms
