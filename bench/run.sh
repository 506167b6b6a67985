#!/usr/bin/env bash
# Side-by-side load comparison on loopback: the same ferry-load workloads through no proxy
# (direct), a ferry initiator/terminator pair, and HAProxy / stunnel / nginx pairs.
#
#   bench/run.sh [--quick] [--out results.json] [--scenarios direct,haproxy-tcp,...]
#                [--certs DIR] [--idle N] [--no-setup]
#
# Proxies run on CPU $PROXY_CPU (default 0); ferry-load and the echo/source server on CPU
# $LOAD_CPU (default 1). Every process started here is stopped on exit, including on failure.
# Environment: BUILD_DIR (default build), FERRY / FERRY_LOAD (binaries, default under BUILD_DIR),
# FERRY_ARGS (extra flags for both ferry roles), PROXY_CPU / LOAD_CPU,
# KEEP_TMP=1 (keep configs and logs), DURATION / WARMUP (override the measured interval).
set -euo pipefail
shopt -s inherit_errexit

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
FERRY=${FERRY:-$BUILD_DIR/src/cli/ferry}
LOAD=${FERRY_LOAD:-$BUILD_DIR/bench/load/ferry-load}
PEERS=$ROOT/bench/peers
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
ALL_SCENARIOS=(direct ferry-plain ferry-tls ferry-ws-tunnel ferry-grpc-tunnel haproxy-tcp haproxy-ssl stunnel nginx-stream)

usage() {
    sed -n '2,12s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
    exit "${1:-0}"
}

quick=0
out=""
scenarios=("${ALL_SCENARIOS[@]}")
certs=""
idle_conns=""
run_setup=1
while (($#)); do
    case $1 in
        --quick) quick=1 ;;
        --out) out=${2:?--out needs a file}; shift ;;
        --scenarios) IFS=, read -r -a scenarios <<<"${2:?--scenarios needs a list}"; shift ;;
        --certs) certs=${2:?--certs needs a directory}; shift ;;
        --idle) idle_conns=${2:?--idle needs a count}; shift ;;
        --no-setup) run_setup=0 ;;
        -h | --help) usage 0 ;;
        *) echo "run.sh: unknown argument $1" >&2; usage 2 ;;
    esac
    shift
done

if ((quick)); then
    DURATION=${DURATION:-3s}
    WARMUP=${WARMUP:-1s}
    idle_conns=${idle_conns:-1000}
    IDLE_HOLD=2s
else
    DURATION=${DURATION:-10s}
    WARMUP=${WARMUP:-2s}
    idle_conns=${idle_conns:-5000}
    IDLE_HOLD=5s
fi
RR_CONNS=64
RR_SIZE=1024
# Few fat streams: per-byte cost of the path, not per-connection bookkeeping.
BULK_CONNS=8
BULK_SIZE=65536
VERIFY_BYTES=1m

log() { printf '[run.sh] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

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
# Each idle connection costs two descriptors in every hop (client side and upstream side).
ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
nofile=$(ulimit -n)
if [[ $nofile != unlimited ]] && ((idle_conns * 2 + 2000 > nofile)); then
    idle_conns=$(((nofile - 2000) / 2))
    log "warning: RLIMIT_NOFILE is $nofile; idle test reduced to $idle_conns connections"
fi

# shellcheck source=bench/common.sh
source "$ROOT/bench/common.sh" ferry-bench

have_certs=0
for s in "${scenarios[@]}"; do
    case $s in ferry-tls | ferry-ws-tunnel | ferry-grpc-tunnel | haproxy-ssl | stunnel | nginx-stream) need_certs=1 ;; esac
done
if [[ ${need_certs:-0} == 1 ]]; then
    if setup_certs; then
        have_certs=1
        log "certificates: $certs (terminator name: $SERVER_NAME)"
    else
        log "no certificates (tools/gen-certs.sh missing and no --certs): TLS scenarios skipped"
    fi
fi

# --- Chains -------------------------------------------------------------------------------------
# start_chain SCENARIO UPSTREAM_PORT -> FRONT_PORT, PROXY_PIDS (comma list; empty for direct)

FRONT_PORT=""
PROXY_PIDS=""
# haproxy counts client connections (and needs 2 fds each); nginx counts both sides.
HAPROXY_MAXCONN=$((idle_conns + 500))
NGINX_CONNECTIONS=$((idle_conns * 2 + 1000))

start_ferry() { # start_ferry TRANSPORT UPSTREAM_PORT (TRANSPORT: plain, tls or ws)
    local transport=$1 upstream=$2
    [[ -x $FERRY ]] || die "$FERRY not built"
    local tport a1 a2
    tport=$(free_port)
    a1=$(free_port)
    a2=$(free_port)
    FRONT_PORT=$(free_port)
    local tls_t=() tls_i=()
    if [[ $transport != plain ]]; then
        tls_t=(--tls-cert "${CERT[terminator]}" --tls-key "$certs/terminator.key"
            --tls-ca "${CERT[ca]}")
        tls_i=(--tls-cert "${CERT[initiator]}" --tls-key "$certs/initiator.key"
            --tls-ca "${CERT[ca]}" --peer-name "$SERVER_NAME")
    fi
    # shellcheck disable=SC2086 # FERRY_ARGS is a list of extra flags
    start_bg ferry-terminator "$PROXY_CPU" "$FERRY" terminator \
        --listen-tunnel "127.0.0.1:$tport" --upstream "127.0.0.1:$upstream" \
        --admin "127.0.0.1:$a2" --shards 1 --cpus "$PROXY_CPU" --tunnel-transport "$transport" \
        "${tls_t[@]}" ${FERRY_ARGS:-}
    local term=$STARTED_PID
    wait_listen ferry-terminator "$term" "$tport"
    # shellcheck disable=SC2086
    start_bg ferry-initiator "$PROXY_CPU" "$FERRY" initiator \
        --listen "127.0.0.1:$FRONT_PORT" --peer "127.0.0.1:$tport" \
        --admin "127.0.0.1:$a1" --shards 1 --cpus "$PROXY_CPU" --tunnel-transport "$transport" \
        "${tls_i[@]}" ${FERRY_ARGS:-}
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
        die "ferry initiator not ready after 20 s"
    fi
    wait_listen ferry-initiator "$init" "$FRONT_PORT"
    PROXY_PIDS="$init,$term"
}

start_haproxy_pair() { # start_haproxy_pair tcp|ssl UPSTREAM_PORT
    local kind=$1 upstream=$2 back_port
    back_port=$(free_port)
    FRONT_PORT=$(free_port)
    local common=(MAXCONN="$HAPROXY_MAXCONN" CA="${CERT[ca]}" SERVER_NAME="$SERVER_NAME"
        CLIENT_BUNDLE="$TMP/initiator.bundle.pem" SERVER_BUNDLE="$TMP/terminator.bundle.pem")
    local front_t=$PEERS/haproxy-tcp.cfg.in back_t=$PEERS/haproxy-tcp.cfg.in
    if [[ $kind == ssl ]]; then
        front_t=$PEERS/haproxy-ssl-front.cfg.in
        back_t=$PEERS/haproxy-ssl-back.cfg.in
    fi
    render "$back_t" "$TMP/haproxy-back.cfg" "${common[@]}" \
        LISTEN="127.0.0.1:$back_port" UPSTREAM="127.0.0.1:$upstream"
    render "$front_t" "$TMP/haproxy-front.cfg" "${common[@]}" \
        LISTEN="127.0.0.1:$FRONT_PORT" UPSTREAM="127.0.0.1:$back_port"
    start_bg haproxy-back "$PROXY_CPU" haproxy -db -f "$TMP/haproxy-back.cfg"
    local back=$STARTED_PID
    start_bg haproxy-front "$PROXY_CPU" haproxy -db -f "$TMP/haproxy-front.cfg"
    local front=$STARTED_PID
    wait_listen haproxy-back "$back" "$back_port"
    wait_listen haproxy-front "$front" "$FRONT_PORT"
    PROXY_PIDS="$front,$back"
}

start_stunnel_pair() { # start_stunnel_pair UPSTREAM_PORT
    local upstream=$1 back_port
    back_port=$(free_port)
    FRONT_PORT=$(free_port)
    local common=(CA="${CERT[ca]}" SERVER_NAME="$SERVER_NAME"
        CLIENT_CERT="${CERT[initiator]}" CLIENT_KEY="$certs/initiator.key"
        SERVER_CERT="${CERT[terminator]}" SERVER_KEY="$certs/terminator.key")
    render "$PEERS/stunnel-back.conf.in" "$TMP/stunnel-back.conf" "${common[@]}" \
        LISTEN="127.0.0.1:$back_port" UPSTREAM="127.0.0.1:$upstream"
    render "$PEERS/stunnel-front.conf.in" "$TMP/stunnel-front.conf" "${common[@]}" \
        LISTEN="127.0.0.1:$FRONT_PORT" UPSTREAM="127.0.0.1:$back_port"
    start_bg stunnel-back "$PROXY_CPU" stunnel "$TMP/stunnel-back.conf"
    local back=$STARTED_PID
    start_bg stunnel-front "$PROXY_CPU" stunnel "$TMP/stunnel-front.conf"
    local front=$STARTED_PID
    wait_listen stunnel-back "$back" "$back_port"
    wait_listen stunnel-front "$front" "$FRONT_PORT"
    PROXY_PIDS="$front,$back"
}

start_nginx_pair() { # start_nginx_pair UPSTREAM_PORT
    local upstream=$1 back_port side
    back_port=$(free_port)
    FRONT_PORT=$(free_port)
    local pids=()
    for side in back front; do
        local listen=$back_port up=$upstream
        if [[ $side == front ]]; then
            listen=$FRONT_PORT
            up=$back_port
        fi
        mkdir -p "$TMP/nginx-$side"
        render "$PEERS/nginx-$side.conf.in" "$TMP/nginx-$side/nginx.conf" \
            DIR="$TMP/nginx-$side" CONF="$TMP/nginx-$side/nginx.conf" MAXCONN="$NGINX_CONNECTIONS" \
            NOFILE=$((NGINX_CONNECTIONS + 100)) CA="${CERT[ca]}" SERVER_NAME="$SERVER_NAME" \
            CLIENT_CERT="${CERT[initiator]}" CLIENT_KEY="$certs/initiator.key" \
            SERVER_CERT="${CERT[terminator]}" SERVER_KEY="$certs/terminator.key" \
            LISTEN="127.0.0.1:$listen" UPSTREAM="127.0.0.1:$up"
        start_bg "nginx-$side" "$PROXY_CPU" nginx -p "$TMP/nginx-$side" \
            -c "$TMP/nginx-$side/nginx.conf" -e "$TMP/nginx-$side/startup.log" -g 'daemon off;'
        pids+=("$STARTED_PID")
        wait_listen "nginx-$side" "$STARTED_PID" "$listen"
    done
    sleep 0.2 # the master forks its worker right after binding
    PROXY_PIDS=$(with_children "${pids[1]}" "${pids[0]}")
}

start_chain() { # start_chain SCENARIO UPSTREAM_PORT
    local scenario=$1 upstream=$2
    PROXY_PIDS=""
    case $scenario in
        direct) FRONT_PORT=$upstream ;;
        ferry-plain) start_ferry plain "$upstream" ;;
        ferry-tls) start_ferry tls "$upstream" ;;
        ferry-ws-tunnel) start_ferry ws "$upstream" ;;
        ferry-grpc-tunnel) start_ferry grpc "$upstream" ;;
        haproxy-tcp) start_haproxy_pair tcp "$upstream" ;;
        haproxy-ssl) start_haproxy_pair ssl "$upstream" ;;
        stunnel) start_stunnel_pair "$upstream" ;;
        nginx-stream) start_nginx_pair "$upstream" ;;
        *) die "unknown scenario $scenario" ;;
    esac
}

# --- Measurements -------------------------------------------------------------------------------

load() { # load NAME ARGS... (ferry-load on the load CPU, bounded by timeout)
    local name=$1
    shift
    local limit=$(($(secs "$DURATION") + $(secs "$WARMUP") + 90))
    # In the background and waited for, so a signal to this shell is handled at once.
    timeout --kill-after=5 "$limit" taskset -c "$LOAD_CPU" "$LOAD" "$@" \
        >"$TMP/results/$name.json" 2>"$TMP/$name.stderr" &
    local pid=$!
    track_pid "$pid"
    SCEN_PIDS+=("$pid $(start_time "$pid")")
    wait "$pid"
}

pids_flag() {
    if [[ -n $PROXY_PIDS ]]; then
        echo "--proxy-pids=$PROXY_PIDS"
    fi
}

workload_rr() { # workload_rr SCENARIO
    local scenario=$1
    start_upstream echo
    start_chain "$scenario" "$UPSTREAM_PORT"
    log "$scenario: verify (4 connections x $VERIFY_BYTES, half-close)"
    load "$scenario.verify" run --target "127.0.0.1:$FRONT_PORT" --mode verify --connections 4 \
        --bytes-per-connection "$VERIFY_BYTES" --timeout 30s --json --label "$scenario/verify" ||
        { cat "$TMP/results/$scenario.verify.json" >&2; die "$scenario failed verification"; }
    log "$scenario: rr ($RR_CONNS x $RR_SIZE B, $WARMUP warmup + $DURATION)"
    # shellcheck disable=SC2046
    load "$scenario.rr" run --target "127.0.0.1:$FRONT_PORT" --mode rr --connections "$RR_CONNS" \
        --size "$RR_SIZE" --duration "$DURATION" --warmup "$WARMUP" --json \
        --label "$scenario/rr" $(pids_flag) ||
        { cat "$TMP/$scenario.rr.stderr" >&2; die "$scenario rr run failed"; }
    if [[ $idle_conns -gt 0 && -n $PROXY_PIDS ]]; then
        log "$scenario: idle ($idle_conns connections, hold $IDLE_HOLD)"
        # shellcheck disable=SC2046
        load "$scenario.idle" idle --target "127.0.0.1:$FRONT_PORT" --connections "$idle_conns" \
            --hold "$IDLE_HOLD" --json --label "$scenario/idle" $(pids_flag) ||
            log "$scenario: idle run incomplete (see $scenario.idle in the results)"
    fi
    stop_scenario
}

workload_bulk() { # workload_bulk SCENARIO
    local scenario=$1
    start_upstream source
    start_chain "$scenario" "$UPSTREAM_PORT"
    log "$scenario: bulk ($BULK_CONNS connections, $BULK_SIZE B reads)"
    local pids
    pids=$(pids_flag)
    if [[ $scenario == direct ]]; then
        # No proxy: watch the source instead, so source + reader give the CPU cost of one
        # loopback TCP hop (the floor a proxy pair, which pays for about two, is measured against).
        pids="--proxy-pids=$UPSTREAM_PID"
    fi
    # shellcheck disable=SC2086
    load "$scenario.bulk" run --target "127.0.0.1:$FRONT_PORT" --mode bulk \
        --connections "$BULK_CONNS" --size "$BULK_SIZE" --duration "$DURATION" \
        --warmup "$WARMUP" --json --label "$scenario/bulk" $pids ||
        { cat "$TMP/$scenario.bulk.stderr" >&2; die "$scenario bulk run failed"; }
    stop_scenario
}

run_scenario() { # run_scenario SCENARIO (in a subshell)
    trap stop_scenario EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    workload_rr "$1"
    workload_bulk "$1"
}

for scenario in "${scenarios[@]}"; do
    case $scenario in
        ferry-tls | ferry-ws-tunnel | ferry-grpc-tunnel | haproxy-ssl | stunnel | nginx-stream)
            if ((!have_certs)); then
                printf '%s\tno certificates\n' "$scenario" >>"$TMP/skipped"
                continue
            fi
            ;;
    esac
    case $scenario in
        ferry-*)
            if [[ ! -x $FERRY ]]; then
                log "$scenario: skipped ($FERRY not built)"
                printf '%s\tferry binary not built\n' "$scenario" >>"$TMP/skipped"
                continue
            fi
            ;;
    esac
    log "=== $scenario"
    # A subshell, so a failure (set -e) ends only this scenario; in the background and waited
    # for, so an interrupt reaches the cleanup at once, which stops the subshell too.
    (
        set -e
        run_scenario "$scenario"
    ) &
    sub=$!
    track_pid "$sub"
    rc=0
    wait "$sub" || rc=$?
    if ((rc != 0)); then
        log "$scenario: FAILED (exit $rc); continuing with the next scenario"
        printf '%s\tfailed (exit %d)\n' "$scenario" "$rc" >>"$TMP/skipped"
    fi
done

# --- Report -------------------------------------------------------------------------------------

python3 - "$TMP/results" "$TMP/skipped" "${out:-}" "$quick" "$DURATION" "$WARMUP" \
    "$PROXY_CPU" "$LOAD_CPU" <<'PY'
import json, os, platform, sys, time

results_dir, skipped_path, out, quick, duration, warmup, proxy_cpu, load_cpu = sys.argv[1:9]
runs = {}
for name in sorted(os.listdir(results_dir)):
    path = os.path.join(results_dir, name)
    text = open(path).read().strip()
    if not text:
        continue
    try:
        obj = json.loads(text.splitlines()[-1])
    except json.JSONDecodeError:
        continue
    scenario, workload = obj.get("label", name).split("/", 1)
    obj["scenario"], obj["workload"] = scenario, workload
    runs[(scenario, workload)] = obj
skipped = []
for line in open(skipped_path):
    if line.strip():
        scenario, reason = line.rstrip("\n").split("\t", 1)
        skipped.append({"scenario": scenario, "reason": reason})

def get(s, w, k):
    r = runs.get((s, w))
    return None if r is None else r.get(k)

def fmt(v, f="{:.1f}"):
    return "-" if v is None else f.format(v)

order = ["direct", "ferry-plain", "ferry-tls", "ferry-ws-tunnel", "ferry-grpc-tunnel", "haproxy-tcp", "haproxy-ssl", "stunnel", "nginx-stream"]
scenarios = [s for s in order if any(k[0] == s for k in runs)]
def has(workload):
    return any(k[1] == workload for k in runs)

if has("rr"):
    print()
    print("request/response: 64 connections x 1 KiB (proxy CPU = both proxy processes)")
    print(f"{'scenario':<18}{'msgs/s':>10}{'MB/s':>8}{'p50 us':>9}{'p99 us':>9}{'p99.9 us':>10}"
          f"{'proxy cpu s':>12}{'cpu us/msg':>11}{'core0':>7}{'core1':>7}")
for s in scenarios:
    r = runs.get((s, "rr"))
    if not r:
        continue
    busy = r.get("cpu_busy", [])
    b0 = busy[int(proxy_cpu)] * 100 if len(busy) > int(proxy_cpu) else None
    b1 = busy[int(load_cpu)] * 100 if len(busy) > int(load_cpu) else None
    print(f"{s:<18}{fmt(r['msgs_per_s'], '{:.0f}'):>10}{fmt(r['mb_per_s']):>8}{fmt(r['p50_us']):>9}"
          f"{fmt(r['p99_us']):>9}{fmt(r['p999_us']):>10}{fmt(r.get('proxy_cpu_s'), '{:.2f}'):>12}"
          f"{fmt(r.get('cpu_us_per_msg'), '{:.2f}'):>11}{fmt(b0, '{:.0f}%'):>7}{fmt(b1, '{:.0f}%'):>7}")
if has("bulk"):
    print()
    print("bulk: 8 connections reading from a source server")
    print(f"{'scenario':<18}{'MB/s':>10}{'Gbit/s':>8}{'proxy cpu s':>12}{'cpu s/GB':>10}"
          f"{'core0':>7}{'core1':>7}")
for s in scenarios:
    r = runs.get((s, "bulk"))
    if not r or s == "direct":
        continue
    busy = r.get("cpu_busy", [])
    b0 = busy[int(proxy_cpu)] * 100 if len(busy) > int(proxy_cpu) else None
    b1 = busy[int(load_cpu)] * 100 if len(busy) > int(load_cpu) else None
    print(f"{s:<18}{fmt(r['mb_per_s'], '{:.0f}'):>10}{fmt(r['gbit_per_s'], '{:.2f}'):>8}"
          f"{fmt(r.get('proxy_cpu_s'), '{:.2f}'):>12}{fmt(r.get('cpu_s_per_gb'), '{:.3f}'):>10}"
          f"{fmt(b0, '{:.0f}%'):>7}{fmt(b1, '{:.0f}%'):>7}")
hop = None
d = runs.get(("direct", "bulk"))
if d and d.get("bytes") and d.get("proxy_cpu_s") is not None:
    # The direct run watched the source: source + reader = one loopback hop's CPU per GB.
    hop = (d["proxy_cpu_s"] + d.get("load_cpu_s", 0)) / (d["bytes"] / 1e9)
    busy = d.get("cpu_busy", [])
    b0 = busy[int(proxy_cpu)] * 100 if len(busy) > int(proxy_cpu) else None
    b1 = busy[int(load_cpu)] * 100 if len(busy) > int(load_cpu) else None
    print(f"{'direct':<18}{fmt(d['mb_per_s'], '{:.0f}'):>10}{fmt(d['gbit_per_s'], '{:.2f}'):>8}"
          f"{'-':>12}{'-':>10}{fmt(b0, '{:.0f}%'):>7}{fmt(b1, '{:.0f}%'):>7}")
    print(f"one loopback TCP hop (direct: source + reader): {hop:.3f} CPU-s/GB; a proxy pair in"
          f" the middle pays for about two ({2 * hop:.3f})")
idle = [(s, runs[(s, "idle")]) for s in scenarios if (s, "idle") in runs]
if idle:
    print()
    print("idle: memory of both proxy processes per idle connection (user space RSS)")
    print(f"{'scenario':<18}{'conns':>8}{'held':>8}{'rss before KiB':>16}{'rss after KiB':>15}{'KiB/conn':>10}")
    for s, r in idle:
        print(f"{s:<18}{r['connections']:>8}{r['still_established']:>8}"
              f"{fmt(r.get('proxy_rss_kib_before'), '{:.0f}'):>16}"
              f"{fmt(r.get('proxy_rss_kib_after'), '{:.0f}'):>15}{fmt(r.get('kib_per_conn'), '{:.2f}'):>10}")

ratios = []
def ratio(name, a, b, workload, key, better):
    va, vb = get(a, workload, key), get(b, workload, key)
    if va is None or vb is None or vb == 0:
        return
    ratios.append({"name": name, "a": a, "b": b, "workload": workload, "metric": key,
                   "ratio": va / vb, "better": better})

for ferry, peers in (("ferry-plain", ["haproxy-tcp"]),
                     ("ferry-tls", ["haproxy-ssl", "stunnel", "nginx-stream"])):
    for peer in peers:
        ratio(f"{ferry} / {peer} msgs/s", ferry, peer, "rr", "msgs_per_s", "higher")
        ratio(f"{ferry} / {peer} p99", ferry, peer, "rr", "p99_us", "lower")
        ratio(f"{ferry} / {peer} cpu us/msg", ferry, peer, "rr", "cpu_us_per_msg", "lower")
        ratio(f"{ferry} / {peer} bulk MB/s", ferry, peer, "bulk", "mb_per_s", "higher")
        ratio(f"{ferry} / {peer} cpu s/GB", ferry, peer, "bulk", "cpu_s_per_gb", "lower")
        ratio(f"{ferry} / {peer} idle KiB/conn", ferry, peer, "idle", "kib_per_conn", "lower")
for s in ["ferry-plain", "ferry-tls", "ferry-ws-tunnel", "ferry-grpc-tunnel", "haproxy-tcp"]:
    ratio(f"{s} / direct bulk MB/s", s, "direct", "bulk", "mb_per_s", "higher")
    if hop and get(s, "bulk", "cpu_s_per_gb") is not None:
        ratios.append({"name": f"{s} cpu s/GB / two loopback hops", "a": s, "b": "direct",
                       "workload": "bulk", "metric": "cpu_s_per_gb",
                       "ratio": get(s, "bulk", "cpu_s_per_gb") / (2 * hop), "better": "lower"})
    ratio(f"{s} / direct msgs/s", s, "direct", "rr", "msgs_per_s", "higher")
if ratios:
    print()
    print("ratios")
    for r in ratios:
        print(f"  {r['name']:<42}{r['ratio']:>8.2f}   ({r['better']} is better)")
for s in skipped:
    print(f"skipped {s['scenario']}: {s['reason']}")

if out:
    doc = {
        "meta": {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "kernel": platform.release(),
                 "cpus": os.cpu_count(), "quick": quick == "1", "duration": duration,
                 "warmup": warmup, "proxy_cpu": int(proxy_cpu), "load_cpu": int(load_cpu)},
        "results": list(runs.values()),
        "ratios": ratios,
        "skipped": skipped,
    }
    with open(out, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    print(f"\nwrote {out}")
PY
