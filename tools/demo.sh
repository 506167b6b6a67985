#!/usr/bin/env bash
# The two-cluster demo on one machine (Debian 12, as root): installs the build dependencies, builds
# ferry, then runs
#
#   cluster A (netns cluster-a)                           cluster B (netns cluster-b)
#   ferry-load --> ferry initiator ==== WAN link ====> ferry terminator --> echo upstream
#                  127.0.0.1:9000     20 ms each way   198.18.0.2:7443      127.0.0.1:8080
#   WebSocket  --> ws://127.0.0.1:9001/                                 --> built-in sink
#   gRPC       --> grpc://127.0.0.1:9002                                --> built-in sink (lane7)
#                  admin :9900        198.18.0.1/30    ("LoadBalancer IP")  admin :9901
#                  pod ferry-a-x7k2p                                        pod ferry-b-q4m8z
#
# pushes verified and request/response traffic through the tunnel, shows the WebSocket path (the
# auto-trigger's log lines, POST /trigger and GET /output), runs a WebSocket client and a gRPC
# client in cluster A whose every message comes back intact with a trail naming both clusters,
# prints their p50/p99 latency above the WAN's round-trip floor and what crossed (both sides'
# /metrics), then stops both ferry processes with SIGTERM so their drain shows in the logs, and
# removes everything it created (Ctrl-C included). Exit status 0 when every check passed.
#
#   tools/demo.sh                 setup, build, run, clean up
#   tools/demo.sh --keep          leave the two clusters running until Ctrl-C
#   tools/demo.sh --no-build      use the binaries already built in build/
#   tools/demo.sh --plain         plain TCP tunnel instead of the armored one (trusted networks only)
#
# By default the tunnel is armored, as ferry ships: mutual TLS 1.3 with a demo PKI
# (tools/gen-certs.sh), kTLS where the kernel has it, and a key rotation every 2 s.
#
# Other options: --build-dir DIR (default build), --delay-ms MS (one-way WAN delay, default 20),
# --loss-pct P (packets lost on the WAN each way, default 0), --messages N (per client, default
# 200), --verify-bytes SIZE (per verify connection, default 1MiB), --ns-prefix P (namespaces
# Pcluster-a and Pcluster-b), --no-setup (skip tools/setup.sh).
# Without root (no network namespaces) it runs both sides on loopback, without the WAN delay.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

keep=0
do_build=1
build_dir=build
delay_ms=20
loss_pct=0
messages=200
verify_bytes=1MiB
ns_prefix=""
do_setup=1
tls=1
while (($#)); do
    case $1 in
        --keep) keep=1; shift ;;
        --tls) tls=1; shift ;;
        --plain) tls=0; shift ;;
        --no-build) do_build=0; shift ;;
        --build-dir) build_dir=${2:?--build-dir needs a directory}; shift 2 ;;
        --delay-ms) delay_ms=${2:?--delay-ms needs a number}; shift 2 ;;
        --loss-pct) loss_pct=${2:?--loss-pct needs a number}; shift 2 ;;
        --messages) messages=${2:?--messages needs a number}; shift 2 ;;
        --verify-bytes) verify_bytes=${2:?--verify-bytes needs a size}; shift 2 ;;
        --ns-prefix) ns_prefix=${2:?--ns-prefix needs a name prefix}; shift 2 ;;
        --no-setup) do_setup=0; shift ;;
        -h | --help) sed -n '2,32p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "demo.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
[[ "$delay_ms" =~ ^[0-9]+$ ]] || { echo "demo.sh: --delay-ms needs a whole number" >&2; exit 2; }
[[ "$loss_pct" =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "demo.sh: --loss-pct needs a number" >&2; exit 2; }
[[ "$messages" =~ ^[1-9][0-9]*$ ]] || { echo "demo.sh: --messages needs a positive number" >&2; exit 2; }
[[ "$ns_prefix" =~ ^[a-z0-9-]*$ ]] || { echo "demo.sh: --ns-prefix takes a-z, 0-9 and -" >&2; exit 2; }

ns_a="${ns_prefix}cluster-a"
ns_b="${ns_prefix}cluster-b"
addr_a=198.18.0.1
addr_b=198.18.0.2
# What a DaemonSet's pods in the two clusters would be called (--node-name is $POD_NAME there).
node_a="ferry-a-x7k2p"
node_b="ferry-b-q4m8z"
drain_timeout=5s

step=0
section() {
    step=$((step + 1))
    printf '\n==== %d. %s ====\n' "$step" "$*"
}
note() { printf '  %s\n' "$*"; }

logs=$(mktemp -d /tmp/ferry-demo.XXXXXX)
state=$logs/state
mkdir -p "$state"
pids=()      # every process this script started, stopped by pid on the way out
use_netns=0
link_up=0
pid_init=""
pid_term=""
pid_echo=""

# Stops what is still running (by the pids recorded above) and removes the namespaces. Runs on
# every exit, including failures and Ctrl-C.
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local pid alive=()
    for pid in "${pids[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            alive+=("$pid")
        fi
    done
    for pid in "${alive[@]}"; do
        for _ in $(seq 60); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    done
    if ((link_up)); then
        "$root/tools/netns.sh" down --ns-a "$ns_a" --ns-b "$ns_b" --state-dir "$state" || true
    fi
    if ((rc != 0)); then
        printf '\ndemo.sh: failed (exit %d); logs are in %s\n' "$rc" "$logs" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Runs a command inside cluster A or B (or on the host when namespaces are unavailable). Background
# processes are started with "${run_b[@]}" directly, not through these functions, so that $! is
# the pid of the process itself.
run_a=()
run_b=()
# shellcheck disable=SC2317  # called through "$where" in http_get/http_code
in_a() { "${run_a[@]}" "$@"; }
# shellcheck disable=SC2317
in_b() { "${run_b[@]}" "$@"; }

http_get() {  # in_a|in_b URL
    local where=$1 url=$2
    "$where" curl -s --max-time 2 "$url"
}
http_code() {
    local where=$1 url=$2
    "$where" curl -s -o /dev/null --max-time 2 -w '%{http_code}' "$url" 2>/dev/null || true
}

# Waits (bounded) until URL answers 200; fails early if process PID died.
wait_ready() {
    local where=$1 url=$2 pid=$3 what=$4 limit=$5 code=""
    local deadline=$((SECONDS + limit))
    while ((SECONDS < deadline)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            note "$what exited before it was ready; its log:"
            sed 's/^/    /' "$logs/$what.log"
            return 1
        fi
        code=$(http_code "$where" "$url")
        if [[ $code == 200 ]]; then
            return 0
        fi
        sleep 0.2
    done
    note "$what: $url still answers '${code:-nothing}' after ${limit}s; its log:"
    sed 's/^/    /' "$logs/$what.log"
    return 1
}

# Stops one ferry with SIGTERM and waits for it to drain and exit.
stop_ferry() {
    local pid=$1 what=$2 rc=0
    [[ -n $pid ]] || return 0
    if ! kill -0 "$pid" 2>/dev/null; then
        wait "$pid" 2>/dev/null || rc=$?
        note "$what had already exited (status $rc)"
        return 0
    fi
    note "SIGTERM -> $what (pid $pid, --drain-timeout $drain_timeout)"
    kill -TERM "$pid"
    local deadline=$((SECONDS + 15))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        note "$what did not exit in 15 s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || rc=$?
    note "$what exited with status $rc"
}

# Prints selected /metrics lines of one side and a one-line summary of them.
show_metrics() {
    local where=$1 url=$2 label=$3 file=$logs/metrics-$3.txt
    if ! http_get "$where" "$url" >"$file"; then
        note "$label: $url did not answer"
        return 0
    fi
    awk -v label="$label" -v tls="$tls" '
        /^#/ { next }
        /^ferry_(info|tunnel_up|connections_accepted_total|connections_active|streams_opened_total|tunnel_bytes_in_total|tunnel_bytes_out_total|rtt_us)[{]/ ||
        (tls && /^ferry_(tls_handshakes_total|tunnel_ktls|key_updates_sent_total|key_updates_received_total|rotations_reconnect_total)[{]/) {
            printf "  %-10s %s\n", label, $0
        }
        { split($1, parts, "{"); sum[parts[1]] += $2 }
        /^ferry_rtt_us[{]/ && $2 > 0 { rtt = rtt sprintf(" %.2f", $2 / 1000) }
        END {
            printf "  %-10s => streams opened %d, tunnel bytes out %.1f MB / in %.1f MB, local connections accepted %d, PING RTT (ms, per tunnel):%s\n",
                label, sum["ferry_streams_opened_total"], sum["ferry_tunnel_bytes_out_total"] / 1e6,
                sum["ferry_tunnel_bytes_in_total"] / 1e6, sum["ferry_connections_accepted_total"],
                rtt == "" ? " none yet" : rtt
        }' "$file"
}

started=$SECONDS
printf 'ferry two-cluster demo: cluster A (initiator) --tunnel--> cluster B (terminator) --> echo upstream\n'
printf 'logs: %s\n' "$logs"

# ---------------------------------------------------------------------------------------------
section "Setup: build dependencies (tools/setup.sh)"
if ((do_setup)); then
    "$root/tools/setup.sh"
    note "dependencies present"
else
    note "--no-setup: skipped"
fi

section "Build ($build_dir/)"
ferry=$root/$build_dir/src/cli/ferry
load=$root/$build_dir/bench/load/ferry-load
[[ $build_dir == /* ]] && ferry=$build_dir/src/cli/ferry && load=$build_dir/bench/load/ferry-load
if ((do_build)); then
    if [[ ! -f $build_dir/build.ninja ]]; then
        # The same configuration tools/test.sh gives build/, so the two share one build tree.
        meson setup "$build_dir" -Dbuildtype=release -Dwerror=true
    fi
    ninja -C "$build_dir" src/cli/ferry bench/load/ferry-load
else
    note "--no-build: using the binaries in $build_dir/"
fi
for bin in "$ferry" "$load"; do
    [[ -x $bin ]] || { echo "demo.sh: $bin is missing (run without --no-build)" >&2; exit 1; }
done
note "$("$ferry" --help | head -1)"

# ---------------------------------------------------------------------------------------------
section "Two clusters on one machine: network namespaces and a WAN link"
for ns in "$ns_a" "$ns_b"; do
    if ip netns list 2>/dev/null | awk '{print $1}' | grep -qx -- "$ns"; then
        echo "demo.sh: network namespace $ns already exists (another demo runs, or one was cut off;" \
            "remove it with: tools/netns.sh down --ns-a $ns_a --ns-b $ns_b)" >&2
        exit 1
    fi
done
if "$root/tools/netns.sh" up --ns-a "$ns_a" --ns-b "$ns_b" --addr-a "$addr_a" --addr-b "$addr_b" \
    --delay-ms "$delay_ms" --loss-pct "$loss_pct" --state-dir "$state" >"$logs/netns.log" 2>&1; then
    use_netns=1
    link_up=1
    run_a=(ip netns exec "$ns_a")
    run_b=(ip netns exec "$ns_b")
    sed 's/^/  /' "$logs/netns.log"
    note "cluster A = netns $ns_a ($addr_a), cluster B = netns $ns_b ($addr_b, its \"LoadBalancer IP\")"
    tunnel_addr=$addr_b:7443
    listen_a=127.0.0.1:9000
    ws_a=127.0.0.1:9001
    grpc_a=127.0.0.1:9002
    admin_a=127.0.0.1:9900
    admin_b=127.0.0.1:9901
    upstream_b=127.0.0.1:8080
else
    note "network namespaces are unavailable here ($(tail -1 "$logs/netns.log"))"
    note "falling back to loopback: both clusters on this host's 127.0.0.0/8, no WAN delay"
    free_port() {  # the first port from $1 up that nothing listens on
        local p=$1
        while ss -Htln "sport = :$p" 2>/dev/null | grep -q .; do p=$((p + 1)); done
        echo "$p"
    }
    p=$(free_port 27443); tunnel_addr=127.0.0.2:$p
    p=$(free_port 29000); listen_a=127.0.0.1:$p
    p=$(free_port $((p + 1))); ws_a=127.0.0.1:$p
    p=$(free_port $((p + 1))); grpc_a=127.0.0.1:$p
    p=$(free_port 29900); admin_a=127.0.0.1:$p
    p=$(free_port $((p + 1))); admin_b=127.0.0.2:$p
    p=$(free_port 28080); upstream_b=127.0.0.2:$p
fi

if ((tls)); then
    section "Armored tunnel: demo PKI (tools/gen-certs.sh)"
    "$root/tools/gen-certs.sh" "$logs/pki"
    note "CA $logs/pki/ca.crt; terminator certificate SAN DNS:ferry-terminator, initiator DNS:ferry-initiator"
    transport_b=(--tunnel-transport tls --tls-cert "$logs/pki/terminator.crt"
        --tls-key "$logs/pki/terminator.key" --tls-ca "$logs/pki/ca.crt"
        --allowed-peers ferry-initiator --rekey-interval 2s)
    transport_a=(--tunnel-transport tls --tls-cert "$logs/pki/initiator.crt"
        --tls-key "$logs/pki/initiator.key" --tls-ca "$logs/pki/ca.crt"
        --peer-name ferry-terminator --rekey-interval 2s)
else
    # Plain TCP tunnel (--plain): for trusted networks only.
    transport_b=(--tunnel-transport plain)
    transport_a=(--tunnel-transport plain)
fi

# ---------------------------------------------------------------------------------------------
section "Cluster B: echo upstream and ferry terminator (deployed first)"
# setsid: a Ctrl-C meant for this script must not reach them; they are stopped in order below.
"${run_b[@]}" setsid "$load" serve --listen "$upstream_b" --mode echo >"$logs/echo-upstream.log" 2>&1 &
pid_echo=$!
pids+=("$pid_echo")
"${run_b[@]}" setsid "$ferry" terminator \
    --listen-tunnel "$tunnel_addr" --upstream "$upstream_b" --admin "$admin_b" \
    --node-name "$node_b" "${transport_b[@]}" \
    --ping-interval 1s --drain-timeout "$drain_timeout" >"$logs/terminator.log" 2>&1 &
pid_term=$!
pids+=("$pid_term")
note "echo upstream      ferry-load serve --listen $upstream_b --mode echo   (pid $pid_echo)"
note "ferry terminator   --listen-tunnel $tunnel_addr --upstream $upstream_b --admin $admin_b --node-name $node_b ${transport_b[*]//$logs\//}   (pid $pid_term)"
wait_ready in_b "http://$admin_b/ready" "$pid_term" terminator 10
note "terminator /ready: $(http_get in_b "http://$admin_b/ready")"

section "Cluster A: ferry initiator, peer = cluster B's address"
"${run_a[@]}" setsid "$ferry" initiator \
    --listen "$listen_a" --listen "ws://$ws_a/" --listen "grpc://$grpc_a" --peer "$tunnel_addr" \
    --admin "$admin_a" \
    --node-name "$node_a" "${transport_a[@]}" \
    --ping-interval 1s --drain-timeout "$drain_timeout" >"$logs/initiator.log" 2>&1 &
pid_init=$!
pids+=("$pid_init")
note "ferry initiator    --listen $listen_a --listen ws://$ws_a/ --listen grpc://$grpc_a --peer $tunnel_addr --admin $admin_a --node-name $node_a ${transport_a[*]//$logs\//}   (pid $pid_init)"
t0=$SECONDS
wait_ready in_a "http://$admin_a/ready" "$pid_init" initiator 20
note "initiator /ready after $((SECONDS - t0)) s: $(http_get in_a "http://$admin_a/ready")"
grep -h 'tunnel up' "$logs/terminator.log" "$logs/initiator.log" | sed 's/^/  log: /' || true

# ---------------------------------------------------------------------------------------------
section "Traffic from cluster A through the tunnel to cluster B's echo service"
if ((use_netns)); then
    note "client runs inside $ns_a: ip netns exec $ns_a ferry-load run --target $listen_a ..."
fi
note "verify: 16 connections, each sends $verify_bytes of seeded pseudo-random bytes and checks the echo"
verify_rc=0
in_a "$load" run --target "$listen_a" --mode verify --connections 16 --bytes-per-connection "$verify_bytes" \
    --timeout 30s >"$logs/verify.txt" 2>&1 || verify_rc=$?
sed 's/^/  /' "$logs/verify.txt"
if ((verify_rc == 0)); then
    note "verify: PASSED"
else
    note "verify: FAILED (ferry-load exit status $verify_rc)"
fi

echo
if ((use_netns && delay_ms > 0)); then
    note "rr: 8 connections, 1 KiB request -> 1 KiB echo, 3 s; expect latency >= $((2 * delay_ms)) ms (the WAN RTT)"
else
    note "rr: 8 connections, 1 KiB request -> 1 KiB echo, 3 s"
fi
rr_rc=0
in_a "$load" run --target "$listen_a" --mode rr --connections 8 --size 1024 --duration 3s \
    --warmup 0.5s >"$logs/rr.txt" 2>&1 || rr_rc=$?
sed 's/^/  /' "$logs/rr.txt"

# ---------------------------------------------------------------------------------------------
section "WebSocket across the tunnel: the auto-trigger, /trigger and /output"
ws_rc=0
for _ in $(seq 100); do
    grep -q 'Auto-trigger complete' "$logs/initiator.log" && break
    sleep 0.1
done
grep -h 'Auto-trigger' "$logs/initiator.log" | sed 's/^/  log: /' || true
grep -q 'Auto-trigger complete — 5/5 messages sent.' "$logs/initiator.log" || ws_rc=1
note "POST /trigger on cluster A's admin port:"
in_a curl -s --max-time 15 -X POST -d '{"order":42,"note":"triggered by hand"}' \
    "http://$admin_a/trigger" >"$logs/trigger.txt" 2>&1 || ws_rc=1
sed 's/^/  /' "$logs/trigger.txt"
grep -q '"ok":true' "$logs/trigger.txt" || ws_rc=1
grep -q "\"$node_a\",\"$node_b\"" "$logs/trigger.txt" || ws_rc=1
note "GET /output on cluster B's admin port (the sink's latest answer):"
http_get in_b "http://$admin_b/output" | /usr/bin/python3 -c \
    'import json,sys; r=json.load(sys.stdin)["results"]; print("  %d result(s); newest: %s" % (len(r), json.dumps(r[0]) if r else "-"))' ||
    ws_rc=1

# ---------------------------------------------------------------------------------------------
section "A WebSocket client and a gRPC client in cluster A, answered by cluster B's sink"
floor_ms=0
link_probe=""
if ((use_netns)); then
    floor_ms=$((2 * delay_ms))
    link_probe=$addr_b:9  # nothing listens there: a connect is refused after one WAN round trip
fi
clients_rc=0
if /usr/bin/python3 -c 'import websockets, grpc' 2>/dev/null; then
    note "each sends $messages messages one at a time through ws://$ws_a/ and grpc://$grpc_a (lane7 Send),"
    note "then the gRPC client runs one lane7 Stream with all $messages in flight; every answer is checked"
    in_a /usr/bin/python3 "$root/tools/demo_clients.py" --ws "ws://$ws_a/" --grpc "$grpc_a" \
        --count "$messages" --expect-trail "$node_a,$node_b" --floor-ms "$floor_ms" \
        ${link_probe:+--link "$link_probe"} >"$logs/clients.txt" 2>&1 || clients_rc=$?
    sed 's/^/  /' "$logs/clients.txt"
else
    note "python3-websockets or python3-grpcio is missing (tools/setup.sh installs them)"
    clients_rc=1
fi

# ---------------------------------------------------------------------------------------------
section "What crossed: /metrics of both sides (per shard)"
# The load generator has closed its connections; let the closes cross the WAN before looking.
for _ in $(seq 20); do
    active=$(http_get in_a "http://$admin_a/metrics" 2>/dev/null |
        awk '/^ferry_connections_active[{]/ { n += $2 } END { print n + 0 }') || active=0
    ((active == 0)) && break
    sleep 0.1
done
show_metrics in_a "http://$admin_a/metrics" "A:init"
echo
show_metrics in_b "http://$admin_b/metrics" "B:term"

if ((keep)); then
    section "Running until Ctrl-C (--keep)"
    if ((use_netns)); then
        note "ip netns exec $ns_a curl -s http://$admin_a/metrics"
        note "ip netns exec $ns_a $load run --target $listen_a --mode rr --duration 10s"
        note "ip netns exec $ns_b curl -s http://$admin_b/ready"
    else
        note "curl -s http://$admin_a/metrics"
        note "$load run --target $listen_a --mode rr --duration 10s"
    fi
    note "logs: $logs"
    interrupted=0
    trap 'interrupted=1' INT
    while ((!interrupted)); do
        if ! kill -0 "$pid_init" 2>/dev/null || ! kill -0 "$pid_term" 2>/dev/null; then
            note "a ferry process exited on its own"
            break
        fi
        sleep 1 || true
    done
    trap 'exit 130' INT
    echo
fi

# ---------------------------------------------------------------------------------------------
section "Shutdown: SIGTERM, drain, exit (cluster A first, then cluster B)"
stop_ferry "$pid_init" initiator
stop_ferry "$pid_term" terminator
kill -TERM "$pid_echo" 2>/dev/null || true
wait "$pid_echo" 2>/dev/null || true
grep -hE 'SIGTERM|drain|exiting' "$logs/initiator.log" | sed 's/^/  A: /' || true
grep -hE 'SIGTERM|drain|exiting' "$logs/terminator.log" | sed 's/^/  B: /' || true

section "Last lines of the logs ($logs)"
for f in terminator initiator; do
    printf '  -- %s.log\n' "$f"
    tail -n 8 "$logs/$f.log" | sed 's/^/  /'
done

# ---------------------------------------------------------------------------------------------
section "Cleanup"
if ((link_up)); then
    "$root/tools/netns.sh" down --ns-a "$ns_a" --ns-b "$ns_b" --state-dir "$state"
    link_up=0
    note "namespaces $ns_a and $ns_b removed"
fi
note "processes stopped; logs kept in $logs"

section "Result"
p50=$(awk '/latency us/ { getline; printf "%.1f", $1 / 1000; exit }' "$logs/rr.txt" 2>/dev/null || true)
note "verify: $( ((verify_rc == 0)) && echo PASSED || echo "FAILED (status $verify_rc)")$(grep -m1 '^verify:' "$logs/verify.txt" | sed 's/^verify:/ -/')"
note "rr: $( ((rr_rc == 0)) && echo ok || echo "failed (status $rr_rc)")${p50:+, p50 latency ${p50} ms}"
note "websocket: $( ((ws_rc == 0)) && echo "ok (auto-trigger 5/5, /trigger carries the trail $node_a -> $node_b)" || echo FAILED)"
note "clients: $( ((clients_rc == 0)) && echo "ok ($(grep -m1 '^all ' "$logs/clients.txt"))" || echo "FAILED (status $clients_rc)")"
grep -E '^(link +TCP|(websocket|grpc) +[0-9]+ messages)' "$logs/clients.txt" 2>/dev/null | sed 's/^/  latency: /' || true
if ((use_netns)); then
    note "WAN: ${delay_ms} ms each way$(awk -v p="$loss_pct" 'BEGIN { if (p > 0) printf ", %s%% loss each way", p }') (round-trip floor ${floor_ms} ms)"
fi
note "elapsed: $((SECONDS - started)) s"
if ((verify_rc != 0 || ws_rc != 0 || clients_rc != 0)); then
    exit 1
fi
exit 0
