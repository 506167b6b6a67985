#!/usr/bin/env bash
# The two-cluster demo as an end-to-end test: tools/demo.sh over a WAN link with 20 ms each way and
# 1% loss, in namespaces named for this run. Every WebSocket and gRPC message must come back
# intact with a trail naming both clusters, the verified bytes must match, and afterwards no
# namespace and no process of the run may be left. Skipped (77) where network namespaces cannot
# be made (not root, or no CAP_NET_ADMIN).
#
#   demo_test.sh SOURCE_DIR BUILD_DIR
set -uo pipefail

src=${1:?source directory}
build=${2:?build directory}
prefix="fdt$$-"
ns_a="${prefix}cluster-a"
ns_b="${prefix}cluster-b"
out=$(mktemp /tmp/ferry-demo-test.XXXXXX)

# Removes what the run made if the demo could not (namespaces named above; their processes).
cleanup() {
    if ip netns list 2>/dev/null | awk '{print $1}' | grep -qx -- "$ns_a\|$ns_b"; then
        "$src/tools/netns.sh" down --ns-a "$ns_a" --ns-b "$ns_b" --state-dir "/tmp/$prefix-state" || true
    fi
    pkill -f "ferry-delay-line $ns_a $ns_b" 2>/dev/null || true
    rm -f "$out"
}
trap cleanup EXIT

fail() {
    echo "demo_test: FAIL: $*" >&2
    sed 's/^/  | /' "$out" >&2
    exit 1
}

probe="${prefix}probe"
if ! ip netns add "$probe" 2>/dev/null; then
    echo "demo_test: cannot create network namespaces here (needs root): skipped"
    exit 77
fi
ip netns delete "$probe"

rc=0
timeout --kill-after=10 300 "$src/tools/demo.sh" --no-setup --no-build --build-dir "$build" \
    --delay-ms 20 --loss-pct 1 --messages 100 --verify-bytes 256KiB --ns-prefix "$prefix" \
    >"$out" 2>&1 || rc=$?
((rc == 0)) || fail "demo.sh exited with status $rc"

grep -q 'user-space delay line 20 ms each way, 1% loss each way\|tc netem 20 ms each way, 1% loss each way' "$out" ||
    fail "the WAN link did not get 20 ms and 1% loss"
grep -q '^  verify: PASSED - 16/16 connections verified' "$out" || fail "verify did not pass"
grep -q '^  all 300 messages arrived intact, trails ferry-a-x7k2p -> ferry-b-q4m8z$' "$out" ||
    fail "the WebSocket and gRPC clients did not get every message back with both clusters' trail"
grep -q '^  grpc bidi Stream: 100 messages in flight at once, all back intact and in order$' "$out" ||
    fail "the bidi stream lost or reordered messages"
grep -q '"trail": \["ferry-a-x7k2p", "ferry-b-q4m8z"\]' "$out" || fail "no reply shows the trail"
grep -q 'Auto-trigger complete — 5/5 messages sent.' "$out" || fail "the auto-trigger did not complete"
grep -Eq '^  latency: websocket +100 messages, latency p50 [0-9.]+ ms' "$out" || fail "no latency line"
grep -q 'initiator exited with status 0' "$out" || fail "the initiator did not drain cleanly"
grep -q 'terminator exited with status 0' "$out" || fail "the terminator did not drain cleanly"

# Nothing of the run is left: its namespaces, its delay line, the processes it reported.
if ip netns list 2>/dev/null | awk '{print $1}' | grep -qx -- "$ns_a\|$ns_b"; then
    fail "a namespace of the run is still there"
fi
for pid in $(grep -o '(pid [0-9]*)' "$out" | tr -dc '0-9\n'); do
    if [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "ferry\|$prefix"; then
        fail "process $pid of the run is still running: $(tr '\0' ' ' <"/proc/$pid/cmdline")"
    fi
done
if pgrep -f "ferry-delay-line $ns_a" >/dev/null; then
    fail "the delay line of the run is still running"
fi
echo "demo_test: passed"
grep -E '^  latency: ' "$out"
