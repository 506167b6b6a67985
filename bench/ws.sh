#!/usr/bin/env bash
# WebSocket echo through proxy pairs on loopback, side by side: msgs/s, latency and proxy CPU
# per message for 100 WebSocket connections with one message in flight each, 1 KiB and 64 B.
#
#   bench/ws.sh [--out results.json] [--scenarios direct,haproxy-ws-tls,...] [--certs DIR]
#               [--no-setup]
#
# Scenarios: direct, haproxy-ws-tls, haproxy-ws-h2, ferry-ws. Proxies run on CPU $PROXY_CPU
# (default 0); ferry-load and the ws-echo server on CPU $LOAD_CPU (default 1). Every process
# started here is stopped on exit, including on failure. A scenario whose proxies do not start
# is reported as skipped, with the reason, and the others still run.
# Environment: BUILD_DIR (default build), FERRY / FERRY_LOAD, FERRY_ARGS, PROXY_CPU / LOAD_CPU,
# KEEP_TMP=1, DURATION / WARMUP (default 10s / 2s), WS_CONNS (default 100).
set -euo pipefail
shopt -s inherit_errexit

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
FERRY=${FERRY:-$BUILD_DIR/src/cli/ferry}
LOAD=${FERRY_LOAD:-$BUILD_DIR/bench/load/ferry-load}
PEERS=$ROOT/bench/peers
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
ALL_SCENARIOS=(direct haproxy-ws-tls haproxy-ws-h2 ferry-ws)

usage() {
    sed -n '2,14s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
    exit "${1:-0}"
}

out=""
scenarios=("${ALL_SCENARIOS[@]}")
certs=""
run_setup=1
while (($#)); do
    case $1 in
        --out) out=${2:?--out needs a file}; shift ;;
        --scenarios) IFS=, read -r -a scenarios <<<"${2:?--scenarios needs a list}"; shift ;;
        --certs) certs=${2:?--certs needs a directory}; shift ;;
        --no-setup) run_setup=0 ;;
        -h | --help) usage 0 ;;
        *) echo "ws.sh: unknown argument $1" >&2; usage 2 ;;
    esac
    shift
done

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
WS_CONNS=${WS_CONNS:-100}
WS_SIZES=(1024 64)
VERIFY_SIZE=70000
VERIFY_COUNT=200

log() { printf '[ws.sh] %s\n' "$*" >&2; }
# Inside a scenario's subshell the reason also goes to $TMP/reason, so the main loop can say
# why a scenario was skipped or failed.
die() {
    log "error: $*"
    [[ -n ${TMP:-} ]] && printf '%s\n' "$*" >"$TMP/reason"
    exit 1
}

secs() { # "10s" -> 10
    local v=${1%s}
    echo "${v%.*}"
}

# --- Environment ------------------------------------------------------------------------------

if ((run_setup)); then
    log "checking benchmark dependencies (tools/setup.sh --bench)"
    "$ROOT/tools/setup.sh" --bench
fi
[[ -x $LOAD ]] || die "$LOAD not found: build first (meson setup build && ninja -C build)"
command -v python3 >/dev/null || die "python3 is needed to assemble the report"
if [[ $(nproc) -lt 2 ]]; then
    log "warning: fewer than 2 CPUs; proxies and load share CPU 0"
    PROXY_CPU=0
    LOAD_CPU=0
fi
ulimit -n 65536 2>/dev/null || true

# shellcheck source=bench/common.sh
source "$ROOT/bench/common.sh" ferry-ws-bench

have_certs=0
for s in "${scenarios[@]}"; do
    [[ $s == direct ]] || need_certs=1
done
if [[ ${need_certs:-0} == 1 ]]; then
    if setup_certs; then
        have_certs=1
        log "certificates: $certs (terminator name: $SERVER_NAME)"
    else
        log "no certificates (tools/gen-certs.sh missing and no --certs): proxy scenarios skipped"
    fi
fi

# --- Chains -------------------------------------------------------------------------------------
# start_chain SCENARIO UPSTREAM_PORT -> FRONT_PORT, PROXY_PIDS (comma list; empty for direct),
# BACK_PORT (the port the front hop connects to; empty for direct)

FRONT_PORT=""
BACK_PORT=""
PROXY_PIDS=""
HAPROXY_MAXCONN=$((WS_CONNS * 2 + 500))

start_ferry_ws() { # start_ferry_ws UPSTREAM_PORT
    local upstream=$1
    [[ -x $FERRY ]] || die "$FERRY not built"
    local a1 a2
    BACK_PORT=$(free_port)
    a1=$(free_port)
    a2=$(free_port)
    FRONT_PORT=$(free_port)
    # shellcheck disable=SC2086 # FERRY_ARGS is a list of extra flags
    start_bg ferry-terminator "$PROXY_CPU" "$FERRY" terminator \
        --listen-tunnel "127.0.0.1:$BACK_PORT" --upstream "ws://127.0.0.1:$upstream/" \
        --admin "127.0.0.1:$a2" --shards 1 --cpus "$PROXY_CPU" --tunnel-transport tls \
        --tls-cert "${CERT[terminator]}" --tls-key "$certs/terminator.key" \
        --tls-ca "${CERT[ca]}" ${FERRY_ARGS:-}
    local term=$STARTED_PID
    wait_listen ferry-terminator "$term" "$BACK_PORT"
    # shellcheck disable=SC2086
    start_bg ferry-initiator "$PROXY_CPU" "$FERRY" initiator \
        --listen "ws://127.0.0.1:$FRONT_PORT/" --peer "127.0.0.1:$BACK_PORT" \
        --admin "127.0.0.1:$a1" --shards 1 --cpus "$PROXY_CPU" --tunnel-transport tls \
        --tls-cert "${CERT[initiator]}" --tls-key "$certs/initiator.key" \
        --tls-ca "${CERT[ca]}" --peer-name "$SERVER_NAME" ${FERRY_ARGS:-}
    local init=$STARTED_PID
    local ready=0
    for _ in $(seq 200); do
        kill -0 "$init" 2>/dev/null || break
        kill -0 "$term" 2>/dev/null || break
        if curl -sf -o /dev/null "http://127.0.0.1:$a1/ready"; then
            ready=1
            break
        fi
        sleep 0.1
    done
    if ((!ready)); then
        show_log ferry-terminator
        show_log ferry-initiator
        local why
        why=$(grep -m1 -iE 'error|invalid|unknown|usage' "$TMP/ferry-initiator.log" \
            "$TMP/ferry-terminator.log" 2>/dev/null | head -n 1 | cut -c1-160 || true)
        die "ferry initiator not ready after 20 s${why:+: $why}"
    fi
    wait_listen ferry-initiator "$init" "$FRONT_PORT"
    PROXY_PIDS="$init,$term"
}

start_haproxy_ws_pair() { # start_haproxy_ws_pair tls|h2 UPSTREAM_PORT
    local kind=$1 upstream=$2
    BACK_PORT=$(free_port)
    FRONT_PORT=$(free_port)
    local common=(MAXCONN="$HAPROXY_MAXCONN" MAXSTREAMS=$((WS_CONNS + 100)) CA="${CERT[ca]}"
        SERVER_NAME="$SERVER_NAME" CLIENT_BUNDLE="$TMP/initiator.bundle.pem"
        SERVER_BUNDLE="$TMP/terminator.bundle.pem")
    render "$PEERS/haproxy-ws-$kind-back.cfg.in" "$TMP/haproxy-back.cfg" "${common[@]}" \
        LISTEN="127.0.0.1:$BACK_PORT" UPSTREAM="127.0.0.1:$upstream"
    render "$PEERS/haproxy-ws-$kind-front.cfg.in" "$TMP/haproxy-front.cfg" "${common[@]}" \
        LISTEN="127.0.0.1:$FRONT_PORT" UPSTREAM="127.0.0.1:$BACK_PORT"
    start_bg haproxy-back "$PROXY_CPU" haproxy -db -f "$TMP/haproxy-back.cfg"
    local back=$STARTED_PID
    start_bg haproxy-front "$PROXY_CPU" haproxy -db -f "$TMP/haproxy-front.cfg"
    local front=$STARTED_PID
    wait_listen haproxy-back "$back" "$BACK_PORT"
    wait_listen haproxy-front "$front" "$FRONT_PORT"
    PROXY_PIDS="$front,$back"
}

start_chain() { # start_chain SCENARIO UPSTREAM_PORT
    local scenario=$1 upstream=$2
    PROXY_PIDS=""
    BACK_PORT=""
    case $scenario in
        direct) FRONT_PORT=$upstream ;;
        haproxy-ws-tls) start_haproxy_ws_pair tls "$upstream" ;;
        haproxy-ws-h2) start_haproxy_ws_pair h2 "$upstream" ;;
        ferry-ws) start_ferry_ws "$upstream" ;;
        *) die "unknown scenario $scenario" ;;
    esac
}

# --- Measurements -------------------------------------------------------------------------------

load() { # load NAME ARGS... (ferry-load on the load CPU, bounded by timeout)
    local name=$1
    shift
    local limit=$(($(secs "$DURATION") + $(secs "$WARMUP") + 90))
    # In the background and waited for, so a signal to this shell is handled at once. Halfway
    # through, the established connections between the hops are counted (the h2 pair should
    # hold one, the others one per WebSocket).
    timeout --kill-after=5 "$limit" taskset -c "$LOAD_CPU" "$LOAD" "$@" \
        >"$TMP/results/$name.json" 2>"$TMP/$name.stderr" &
    local pid=$!
    track_pid "$pid"
    SCEN_PIDS+=("$pid $(start_time "$pid")")
    if [[ -n $BACK_PORT && $name == *.rr* ]]; then
        sleep "$(secs "$WARMUP")"
        sleep 1
        ss -Htn state established "dport = :$BACK_PORT" | wc -l >"$TMP/results/$name.hopconns"
    fi
    wait "$pid"
}

pids_flag() {
    if [[ -n $PROXY_PIDS ]]; then
        echo "--proxy-pids=$PROXY_PIDS"
    fi
}

run_scenario() { # run_scenario SCENARIO (in a subshell)
    trap stop_scenario EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    local scenario=$1
    echo start >"$TMP/phase"
    start_upstream ws-echo
    start_chain "$scenario" "$UPSTREAM_PORT"
    echo run >"$TMP/phase"
    local target=127.0.0.1:$FRONT_PORT
    log "$scenario: ws-verify (4 connections, $VERIFY_COUNT messages of $VERIFY_SIZE B)"
    load "$scenario.verify" run --target "$target" --mode ws-verify --connections 4 \
        --size "$VERIFY_SIZE" --count "$VERIFY_COUNT" --warmup 0s --timeout 30s --json \
        --label "$scenario/verify" ||
        { cat "$TMP/$scenario.verify.stderr" >&2; die "$scenario failed ws-verify"; }
    local size
    for size in "${WS_SIZES[@]}"; do
        log "$scenario: ws-rr ($WS_CONNS x $size B, $WARMUP warmup + $DURATION)"
        # shellcheck disable=SC2046
        load "$scenario.rr$size" run --target "$target" --mode ws-rr --connections "$WS_CONNS" \
            --size "$size" --duration "$DURATION" --warmup "$WARMUP" --json \
            --label "$scenario/rr$size" $(pids_flag) ||
            { cat "$TMP/$scenario.rr$size.stderr" >&2; die "$scenario ws-rr $size B failed"; }
    done
    stop_scenario
}

for scenario in "${scenarios[@]}"; do
    if [[ $scenario != direct ]] && ((!have_certs)); then
        printf '%s\tno certificates\n' "$scenario" >>"$TMP/skipped"
        continue
    fi
    case $scenario in
        haproxy-*)
            if ! command -v haproxy >/dev/null; then
                printf '%s\thaproxy not installed\n' "$scenario" >>"$TMP/skipped"
                continue
            fi
            ;;
        ferry-*)
            if [[ ! -x $FERRY ]]; then
                printf '%s\tferry binary not built (%s)\n' "$scenario" "$FERRY" >>"$TMP/skipped"
                continue
            fi
            ;;
    esac
    log "=== $scenario"
    rm -f "$TMP/phase" "$TMP/reason"
    (
        set -e
        run_scenario "$scenario"
    ) &
    sub=$!
    track_pid "$sub"
    rc=0
    wait "$sub" || rc=$?
    if ((rc != 0)); then
        reason=$(cat "$TMP/reason" 2>/dev/null || echo "exit $rc")
        if [[ $(cat "$TMP/phase" 2>/dev/null) == start ]]; then
            log "$scenario: skipped, did not start: $reason"
            printf '%s\tdid not start: %s\n' "$scenario" "$reason" >>"$TMP/skipped"
        else
            log "$scenario: FAILED: $reason; continuing with the next scenario"
            printf '%s\tfailed: %s\n' "$scenario" "$reason" >>"$TMP/skipped"
        fi
    fi
done

# --- Report -------------------------------------------------------------------------------------

python3 - "$TMP/results" "$TMP/skipped" "${out:-}" "$DURATION" "$WARMUP" "$PROXY_CPU" \
    "$LOAD_CPU" "$WS_CONNS" <<'PY'
import json, os, platform, sys, time

results_dir, skipped_path, out, duration, warmup, proxy_cpu, load_cpu, conns = sys.argv[1:9]
runs = {}
for name in sorted(os.listdir(results_dir)):
    if not name.endswith(".json"):
        continue
    text = open(os.path.join(results_dir, name)).read().strip()
    if not text:
        continue
    try:
        obj = json.loads(text.splitlines()[-1])
    except json.JSONDecodeError:
        continue
    scenario, workload = obj.get("label", name).split("/", 1)
    obj["scenario"], obj["workload"] = scenario, workload
    hop = os.path.join(results_dir, name[:-5] + ".hopconns")
    if os.path.exists(hop):
        obj["hop_connections"] = int(open(hop).read().strip() or 0)
    runs[(scenario, workload)] = obj
skipped = []
for line in open(skipped_path):
    if line.strip():
        scenario, reason = line.rstrip("\n").split("\t", 1)
        skipped.append({"scenario": scenario, "reason": reason})

def fmt(v, f="{:.1f}"):
    return "-" if v is None else f.format(v)

order = ["direct", "haproxy-ws-tls", "haproxy-ws-h2", "ferry-ws"]
scenarios = [s for s in order if any(k[0] == s for k in runs)]
for workload, size in (("rr1024", "1 KiB"), ("rr64", "64 B")):
    if not any(k[1] == workload for k in runs):
        continue
    print()
    print(f"WebSocket echo: {conns} connections x {size}, one message in flight each "
          "(proxy CPU = both proxy processes; hop conns = TCP connections between the hops)")
    print(f"{'scenario':<16}{'msgs/s':>10}{'p50 us':>9}{'p99 us':>9}{'p99.9 us':>10}"
          f"{'proxy cpu s':>12}{'cpu us/msg':>11}{'errors':>7}{'hop conns':>10}{'core0':>7}{'core1':>7}")
    for s in scenarios:
        r = runs.get((s, workload))
        if not r:
            continue
        busy = r.get("cpu_busy", [])
        b0 = busy[int(proxy_cpu)] * 100 if len(busy) > int(proxy_cpu) else None
        b1 = busy[int(load_cpu)] * 100 if len(busy) > int(load_cpu) else None
        print(f"{s:<16}{fmt(r['msgs_per_s'], '{:.0f}'):>10}{fmt(r['p50_us']):>9}"
              f"{fmt(r['p99_us']):>9}{fmt(r['p999_us']):>10}"
              f"{fmt(r.get('proxy_cpu_s'), '{:.2f}'):>12}{fmt(r.get('cpu_us_per_msg'), '{:.2f}'):>11}"
              f"{r['errors']:>7}{fmt(r.get('hop_connections'), '{}'):>10}"
              f"{fmt(b0, '{:.0f}%'):>7}{fmt(b1, '{:.0f}%'):>7}")

ratios = []
def ratio(a, b, workload, key, better):
    ra, rb = runs.get((a, workload)), runs.get((b, workload))
    va = None if ra is None else ra.get(key)
    vb = None if rb is None else rb.get(key)
    if va is None or vb is None or vb == 0:
        return
    ratios.append({"name": f"{a} / {b} {workload} {key}", "a": a, "b": b, "workload": workload,
                   "metric": key, "ratio": va / vb, "better": better})

for peer in ("haproxy-ws-h2", "haproxy-ws-tls"):
    for workload in ("rr1024", "rr64"):
        ratio("ferry-ws", peer, workload, "msgs_per_s", "higher")
        ratio("ferry-ws", peer, workload, "p99_us", "lower")
        ratio("ferry-ws", peer, workload, "cpu_us_per_msg", "lower")
if ratios:
    print()
    print("ratios")
    for r in ratios:
        print(f"  {r['name']:<52}{r['ratio']:>8.2f}   ({r['better']} is better)")
for s in skipped:
    print(f"skipped {s['scenario']}: {s['reason']}")

if out:
    doc = {
        "meta": {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "kernel": platform.release(),
                 "cpus": os.cpu_count(), "duration": duration, "warmup": warmup,
                 "connections": int(conns), "proxy_cpu": int(proxy_cpu),
                 "load_cpu": int(load_cpu)},
        "results": list(runs.values()),
        "ratios": ratios,
        "skipped": skipped,
    }
    with open(out, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    print(f"\nwrote {out}")
PY
