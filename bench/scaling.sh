#!/usr/bin/env bash
# Multi-core scaling: the same request/response workload through ferry with 1, 2, 4, ... shards
# per end, every role on CPUs of its own, and (with --haproxy) HAProxy pairs with nbthread equal
# to the shard count on the same CPUs, side by side.
#
#   bench/scaling.sh [--shards 1,2,4] [--tls-only] [--haproxy] [--out results.jsonl]
#
# The machine's CPUs are split in four equal groups: the echo server, ferry-load (one thread per
# CPU of its group), the initiator and the terminator. A shard count S runs when S fits in a
# group, so 16 CPUs measure 1, 2 and 4 shards, 8 CPUs 1 and 2, and fewer than 4 CPUs nothing
# (a scaling figure from shared CPUs would be noise). Prints, per run: msgs/s, p50/p99, CPU µs per
# message of both proxy ends, the ratio to one shard, how busy the load generator's CPUs were
# (near 100% means the load side, not the proxy, was the limit) and, for ferry, the per-shard
# split of the terminator's tunnel bytes and shard CPU time.
# Environment: BUILD_DIR (default build), FERRY, FERRY_LOAD, DURATION (10s), WARMUP (2s),
# CONNECTIONS (256), SIZE (1024), KEEP_TMP=1, SMOKE=1 (on a small machine: one CPU group per role
# wrapped onto the CPUs there are, to try the script; its figures mean nothing).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
FERRY=${FERRY:-$BUILD_DIR/src/cli/ferry}
LOAD=${FERRY_LOAD:-$BUILD_DIR/bench/load/ferry-load}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONNECTIONS=${CONNECTIONS:-256}
SIZE=${SIZE:-1024}

shard_list="1,2,4,8"
transports=(plain tls)
with_haproxy=0
out=""
while (($#)); do
    case $1 in
        --shards) shard_list=${2:?}; shift ;;
        --tls-only) transports=(tls) ;;
        --haproxy) with_haproxy=1 ;;
        --out) out=${2:?}; shift ;;
        -h | --help) sed -n '2,17s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "scaling.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

log() { printf '[scaling.sh] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
[[ -x $FERRY && -x $LOAD ]] || die "build first: $FERRY and $LOAD"
command -v curl >/dev/null || die "curl is needed (admin /metrics)"

cpus=$(nproc)
group=$((cpus / 4))
if ((group < 1)) && [[ ${SMOKE:-0} == 1 ]]; then
    group=1
    log "SMOKE=1: roles share this machine's $cpus CPU(s); the figures mean nothing"
elif ((group < 1)); then
    log "this machine has $cpus CPU(s): scaling needs at least 4 (one group per role); nothing run"
    exit 0
fi
range() { # range FIRST COUNT -> "a,b,..." (wrapped onto the CPUs there are under SMOKE=1)
    local i list=""
    for ((i = $1; i < $1 + $2; i++)); do
        list+="${list:+,}$((i % cpus))"
    done
    echo "$list"
}
ECHO_CPUS=$(range 0 "$group")
LOAD_CPUS=$(range "$group" "$group")
INIT_FIRST=$((2 * group))
TERM_FIRST=$((3 * group))
ulimit -n 65536 2>/dev/null || true

TMP=$(mktemp -d /tmp/ferry-scaling.XXXXXX)
PIDS=()
cleanup() {
    local rc=$?
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    sleep 0.3
    for pid in "${PIDS[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ ${KEEP_TMP:-0} == 1 ]]; then
        log "kept $TMP"
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    local port
    while :; do
        port=$((20000 + RANDOM % 12000))
        [[ -z $(ss -Htan "sport = :$port") ]] && { echo "$port"; return; }
    done
}
bg() { # bg LOGNAME CPUS COMMAND... -> LAST_PID
    local name=$1 cpuset=$2
    shift 2
    taskset -c "$cpuset" "$@" >"$TMP/$name.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}
stop() { # stop PID...
    for pid in "$@"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "$@"; do
        wait "$pid" 2>/dev/null || true
    done
}
wait_port() { # wait_port PORT NAME
    for _ in $(seq 100); do
        [[ -n $(ss -Hltn "sport = :$1") ]] && return 0
        sleep 0.1
    done
    tail -n 20 "$TMP/$2.log" >&2
    die "$2 is not listening on $1"
}

"$ROOT/tools/gen-certs.sh" "$TMP/pki" >"$TMP/gen-certs.log" 2>&1 || die "gen-certs failed"
cat "$TMP/pki/terminator.crt" "$TMP/pki/terminator.key" >"$TMP/terminator.bundle.pem"
cat "$TMP/pki/initiator.crt" "$TMP/pki/initiator.key" >"$TMP/initiator.bundle.pem"

echo_port=$(free_port)
bg echo "$ECHO_CPUS" "$LOAD" serve --listen "127.0.0.1:$echo_port" --mode echo --threads "$group"
wait_port "$echo_port" echo

# One measured run through the front port; prints the ferry-load JSON line.
measure() { # measure LABEL FRONT_PORT PROXY_PIDS
    taskset -c "$LOAD_CPUS" "$LOAD" run --target "127.0.0.1:$2" --mode rr \
        --connections "$CONNECTIONS" --size "$SIZE" --threads "$group" \
        --duration "$DURATION" --warmup "$WARMUP" --json --label "$1" --proxy-pids "$3"
}

# Per-shard values of a terminator metric, "a/b/c".
split() { # split ADMIN_PORT METRIC
    curl -sf "http://127.0.0.1:$1/metrics" |
        awk -v m="$2" '$1 ~ "^"m"\\{" {printf "%s%s", sep, $2; sep="/"} END {print ""}'
}

run_ferry() { # run_ferry TRANSPORT SHARDS
    local transport=$1 s=$2 tport a_i a_t front
    tport=$(free_port); a_i=$(free_port); a_t=$(free_port); front=$(free_port)
    local tls_t=(--tunnel-transport plain) tls_i=(--tunnel-transport plain)
    if [[ $transport == tls ]]; then
        tls_t=(--tls-cert "$TMP/pki/terminator.crt" --tls-key "$TMP/pki/terminator.key"
            --tls-ca "$TMP/pki/ca.crt")
        tls_i=(--tls-cert "$TMP/pki/initiator.crt" --tls-key "$TMP/pki/initiator.key"
            --tls-ca "$TMP/pki/ca.crt")
    fi
    local tcpus icpus
    tcpus=$(range "$TERM_FIRST" "$s")
    icpus=$(range "$INIT_FIRST" "$s")
    bg terminator "$tcpus" "$FERRY" terminator --listen-tunnel "127.0.0.1:$tport" \
        --upstream "127.0.0.1:$echo_port" --admin "127.0.0.1:$a_t" --shards "$s" \
        --cpus "$tcpus" "${tls_t[@]}"
    local term=$LAST_PID
    wait_port "$tport" terminator
    bg initiator "$icpus" "$FERRY" initiator --listen "127.0.0.1:$front" \
        --peer "127.0.0.1:$tport" --admin "127.0.0.1:$a_i" --shards "$s" --cpus "$icpus" \
        "${tls_i[@]}"
    local init=$LAST_PID
    for _ in $(seq 100); do
        curl -sf -o /dev/null "http://127.0.0.1:$a_i/ready" && break
        sleep 0.1
    done
    wait_port "$front" initiator
    local line
    line=$(measure "ferry-$transport-$s" "$front" "$init,$term")
    local bytes busy
    bytes=$(split "$a_t" ferry_tunnel_bytes_in_total)
    busy=$(split "$a_t" ferry_shard_cpu_microseconds_total)
    stop "$init" "$term"
    echo "${line%\}},\"scenario\":\"ferry-$transport\",\"shards\":$s,\"terminator_bytes_in\":\"$bytes\",\"terminator_cpu_us\":\"$busy\"}"
}

run_haproxy() { # run_haproxy tcp|ssl SHARDS
    local kind=$1 s=$2 back front
    back=$(free_port); front=$(free_port)
    local ft=$ROOT/bench/peers/haproxy-tcp.cfg.in bt=$ROOT/bench/peers/haproxy-tcp.cfg.in
    if [[ $kind == ssl ]]; then
        ft=$ROOT/bench/peers/haproxy-ssl-front.cfg.in
        bt=$ROOT/bench/peers/haproxy-ssl-back.cfg.in
    fi
    local sub=(-e "s|@MAXCONN@|4096|g" -e "s|@CA@|$TMP/pki/ca.crt|g"
        -e "s|@SERVER_NAME@|ferry-terminator|g"
        -e "s|@CLIENT_BUNDLE@|$TMP/initiator.bundle.pem|g"
        -e "s|@SERVER_BUNDLE@|$TMP/terminator.bundle.pem|g" -e "s|nbthread 1|nbthread $s|")
    sed "${sub[@]}" -e "s|@LISTEN@|127.0.0.1:$back|g" -e "s|@UPSTREAM@|127.0.0.1:$echo_port|g" \
        "$bt" >"$TMP/haproxy-back.cfg"
    sed "${sub[@]}" -e "s|@LISTEN@|127.0.0.1:$front|g" -e "s|@UPSTREAM@|127.0.0.1:$back|g" \
        "$ft" >"$TMP/haproxy-front.cfg"
    bg haproxy-back "$(range "$TERM_FIRST" "$s")" haproxy -db -f "$TMP/haproxy-back.cfg"
    local b=$LAST_PID
    bg haproxy-front "$(range "$INIT_FIRST" "$s")" haproxy -db -f "$TMP/haproxy-front.cfg"
    local f=$LAST_PID
    wait_port "$back" haproxy-back
    wait_port "$front" haproxy-front
    local line
    line=$(measure "haproxy-$kind-$s" "$front" "$f,$b")
    stop "$f" "$b"
    echo "${line%\}},\"scenario\":\"haproxy-$kind\",\"shards\":$s}"
}

results=$TMP/results.jsonl
: >"$results"
IFS=, read -r -a shard_counts <<<"$shard_list"
for s in "${shard_counts[@]}"; do
    if ((s > group)); then
        log "skipping $s shards: $cpus CPUs give each role $group"
        continue
    fi
    for t in "${transports[@]}"; do
        log "ferry $t, $s shard(s) per end"
        run_ferry "$t" "$s" >>"$results"
        if ((with_haproxy)) && command -v haproxy >/dev/null; then
            kind=tcp
            [[ $t == tls ]] && kind=ssl
            log "haproxy $kind, nbthread $s per end"
            run_haproxy "$kind" "$s" >>"$results"
        fi
    done
done
[[ -n $out ]] && cp "$results" "$out"

/usr/bin/python3 - "$results" "$LOAD_CPUS" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
load_cpus = [int(x) for x in sys.argv[2].split(",")]
base = {}
for r in rows:
    if r["shards"] == 1:
        base[r["scenario"]] = r
print(f"{'scenario':<14} {'S':>2} {'msgs/s':>10} {'vs S=1':>7} {'p50 us':>8} {'p99 us':>8} "
      f"{'CPU us/msg':>10} {'vs S=1':>7} {'load busy':>9}  terminator split (bytes in | shard CPU us)")
for r in rows:
    b = base.get(r["scenario"])
    ratio = r["msgs_per_s"] / b["msgs_per_s"] if b else float("nan")
    cpu = r.get("cpu_us_per_msg", 0.0)
    cpu_ratio = cpu / b["cpu_us_per_msg"] if b and b.get("cpu_us_per_msg") else float("nan")
    busy = [r["cpu_busy"][c] for c in load_cpus if c < len(r.get("cpu_busy", []))]
    load_busy = 100 * sum(busy) / len(busy) if busy else float("nan")
    split = ""
    if "terminator_bytes_in" in r:
        split = f"{r['terminator_bytes_in']} | {r['terminator_cpu_us']}"
    print(f"{r['scenario']:<14} {r['shards']:>2} {r['msgs_per_s']:>10,.0f} {ratio:>6.2f}x "
          f"{r['p50_us']:>8,.0f} {r['p99_us']:>8,.0f} {cpu:>10.2f} {cpu_ratio:>6.2f}x "
          f"{load_busy:>8.0f}%  {split}")
EOF
