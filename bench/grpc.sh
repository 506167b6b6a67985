#!/usr/bin/env bash
# gRPC unary calls through proxy pairs on loopback, side by side: requests/s, latency (p50/p99)
# and the CPU both proxy processes spend per request. h2load (nghttp2-client) is the gRPC client
# (POST, application/grpc, one 64-byte message per call); `ferry-load serve --mode grpc-echo` is
# the gRPC server behind every pair. Two shapes: 4 connections x 25 concurrent calls, and
# 1 connection x 1 call (latency-bound).
#
#   bench/grpc.sh [--out results.json] [--scenarios direct,haproxy-h2,...] [--certs DIR]
#                 [--no-setup]
#
# Scenarios: direct, haproxy-h2 (an HAProxy pair speaking HTTP/2 over mutual TLS 1.3 between its
# ends), nginx-grpc (an nginx grpc_pass pair, grpcs between its ends), ferry-grpc (initiator
# grpc:// listener, armored tunnel, terminator grpc:// upstream). Proxies run on CPU $PROXY_CPU
# (default 0); h2load and the gRPC server on CPU $LOAD_CPU (default 1). Every process started
# here is stopped on exit, including on failure.
# Environment: BUILD_DIR (default build), FERRY / FERRY_LOAD, FERRY_ARGS, PROXY_CPU / LOAD_CPU,
# KEEP_TMP=1, DURATION / WARMUP (default 10s / 2s), MSG_SIZE (default 64).
set -euo pipefail
shopt -s inherit_errexit

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
FERRY=${FERRY:-$BUILD_DIR/src/cli/ferry}
LOAD=${FERRY_LOAD:-$BUILD_DIR/bench/load/ferry-load}
PEERS=$ROOT/bench/peers
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
ALL_SCENARIOS=(direct haproxy-h2 nginx-grpc ferry-grpc)
SHAPES=("4x25" "1x1")

usage() {
    sed -n '2,17s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
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
        *) echo "grpc.sh: unknown argument $1" >&2; usage 2 ;;
    esac
    shift
done

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
MSG_SIZE=${MSG_SIZE:-64}

log() { printf '[grpc.sh] %s\n' "$*" >&2; }
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
command -v h2load >/dev/null || die "h2load is needed (Debian's nghttp2-client; tools/setup.sh --bench)"
command -v python3 >/dev/null || die "python3 is needed to assemble the report"
if [[ $(nproc) -lt 2 ]]; then
    log "warning: fewer than 2 CPUs; proxies and load share CPU 0"
    PROXY_CPU=0
    LOAD_CPU=0
fi
ulimit -n 65536 2>/dev/null || true

# shellcheck source=bench/common.sh
source "$ROOT/bench/common.sh" ferry-grpc-bench

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

# One gRPC message: the 5-byte prefix (not compressed, length) and MSG_SIZE bytes.
python3 -c 'import struct, sys; n = int(sys.argv[2]); open(sys.argv[1], "wb").write(struct.pack(">BI", 0, n) + b"m" * n)' \
    "$TMP/request.bin" "$MSG_SIZE"

# --- Chains -------------------------------------------------------------------------------------
# start_chain SCENARIO UPSTREAM_PORT -> FRONT_PORT, PROXY_PIDS (comma list; empty for direct)

FRONT_PORT=""
PROXY_PIDS=""
MAXCONN=2000

start_ferry_grpc() { # start_ferry_grpc UPSTREAM_PORT
    local upstream=$1 back a1 a2
    [[ -x $FERRY ]] || die "$FERRY not built"
    back=$(free_port)
    a1=$(free_port)
    a2=$(free_port)
    FRONT_PORT=$(free_port)
    # shellcheck disable=SC2086 # FERRY_ARGS is a list of extra flags
    start_bg ferry-terminator "$PROXY_CPU" "$FERRY" terminator \
        --listen-tunnel "127.0.0.1:$back" --upstream "grpc://127.0.0.1:$upstream" \
        --admin "127.0.0.1:$a2" --shards 1 --cpus "$PROXY_CPU" --tunnel-transport tls \
        --tls-cert "${CERT[terminator]}" --tls-key "$certs/terminator.key" \
        --tls-ca "${CERT[ca]}" ${FERRY_ARGS:-}
    local term=$STARTED_PID
    wait_listen ferry-terminator "$term" "$back"
    # shellcheck disable=SC2086
    start_bg ferry-initiator "$PROXY_CPU" "$FERRY" initiator \
        --listen "grpc://127.0.0.1:$FRONT_PORT" --peer "127.0.0.1:$back" \
        --admin "127.0.0.1:$a1" --shards 1 --cpus "$PROXY_CPU" --tunnel-transport tls \
        --tls-cert "${CERT[initiator]}" --tls-key "$certs/initiator.key" \
        --tls-ca "${CERT[ca]}" --peer-name "$SERVER_NAME" --auto-trigger 0 ${FERRY_ARGS:-}
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

start_haproxy_pair() { # start_haproxy_pair UPSTREAM_PORT
    local upstream=$1 back
    back=$(free_port)
    FRONT_PORT=$(free_port)
    local common=(MAXCONN="$MAXCONN" MAXSTREAMS=1000 CA="${CERT[ca]}" SERVER_NAME="$SERVER_NAME"
        CLIENT_BUNDLE="$TMP/initiator.bundle.pem" SERVER_BUNDLE="$TMP/terminator.bundle.pem")
    render "$PEERS/haproxy-grpc-back.cfg.in" "$TMP/haproxy-back.cfg" "${common[@]}" \
        LISTEN="127.0.0.1:$back" UPSTREAM="127.0.0.1:$upstream"
    render "$PEERS/haproxy-grpc-front.cfg.in" "$TMP/haproxy-front.cfg" "${common[@]}" \
        LISTEN="127.0.0.1:$FRONT_PORT" UPSTREAM="127.0.0.1:$back"
    start_bg haproxy-back "$PROXY_CPU" haproxy -db -f "$TMP/haproxy-back.cfg"
    local b=$STARTED_PID
    start_bg haproxy-front "$PROXY_CPU" haproxy -db -f "$TMP/haproxy-front.cfg"
    local f=$STARTED_PID
    wait_listen haproxy-back "$b" "$back"
    wait_listen haproxy-front "$f" "$FRONT_PORT"
    PROXY_PIDS="$f,$b"
}

start_nginx_pair() { # start_nginx_pair UPSTREAM_PORT
    local upstream=$1 back side pids=()
    back=$(free_port)
    FRONT_PORT=$(free_port)
    for side in back front; do
        local listen=$back up=$upstream
        if [[ $side == front ]]; then
            listen=$FRONT_PORT
            up=$back
        fi
        mkdir -p "$TMP/nginx-$side"
        render "$PEERS/nginx-grpc-$side.conf.in" "$TMP/nginx-$side/nginx.conf" \
            DIR="$TMP/nginx-$side" CONF="$TMP/nginx-$side/nginx.conf" MAXCONN="$MAXCONN" \
            NOFILE=$((MAXCONN * 2 + 100)) MAXSTREAMS=1000 CA="${CERT[ca]}" \
            SERVER_NAME="$SERVER_NAME" CLIENT_CERT="${CERT[initiator]}" \
            CLIENT_KEY="$certs/initiator.key" SERVER_CERT="${CERT[terminator]}" \
            SERVER_KEY="$certs/terminator.key" LISTEN="127.0.0.1:$listen" UPSTREAM="127.0.0.1:$up"
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
        haproxy-h2) start_haproxy_pair "$upstream" ;;
        nginx-grpc) start_nginx_pair "$upstream" ;;
        ferry-grpc) start_ferry_grpc "$upstream" ;;
        *) die "unknown scenario $scenario" ;;
    esac
}

# --- Measurements -------------------------------------------------------------------------------

cpu_ticks() { # cpu_ticks PID,PID,... -> utime + stime of them all, in clock ticks
    local total=0 pid stat fields
    local -a pids
    IFS=, read -r -a pids <<<"$1"
    for pid in "${pids[@]}"; do
        stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        # The fields after "(comm) ": state is the first, utime the 12th, stime the 13th.
        read -r -a fields <<<"${stat##*) }"
        total=$((total + fields[11] + fields[12]))
    done
    echo "$total"
}

# run_h2load NAME CONNECTIONS STREAMS: h2load on the load CPU for WARMUP + DURATION; the proxies'
# CPU is read at the end of the warm-up and at the end of the run.
run_h2load() {
    local name=$1 conns=$2 streams=$3
    local limit=$(($(secs "$DURATION") + $(secs "$WARMUP") + 60))
    timeout --kill-after=5 "$limit" taskset -c "$LOAD_CPU" h2load -D "$(secs "$DURATION")" \
        --warm-up-time "$(secs "$WARMUP")" -c "$conns" -m "$streams" -t 1 \
        -d "$TMP/request.bin" -H 'content-type: application/grpc' -H 'te: trailers' \
        --log-file "$TMP/results/$name.requests" \
        "http://127.0.0.1:$FRONT_PORT/ferry.test.Echo/Unary" >"$TMP/results/$name.h2load" 2>&1 &
    local pid=$!
    track_pid "$pid"
    SCEN_PIDS+=("$pid $(start_time "$pid")")
    local before=0 after=0
    sleep "$(secs "$WARMUP")"
    [[ -n $PROXY_PIDS ]] && before=$(cpu_ticks "$PROXY_PIDS")
    local rc=0
    wait "$pid" || rc=$?
    [[ -n $PROXY_PIDS ]] && after=$(cpu_ticks "$PROXY_PIDS")
    printf '%s %s %s\n' "$((after - before))" "$(getconf CLK_TCK)" "$PROXY_PIDS" \
        >"$TMP/results/$name.cpu"
    return "$rc"
}

run_scenario() { # run_scenario SCENARIO (in a subshell)
    trap stop_scenario EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    local scenario=$1 shape
    echo start >"$TMP/phase"
    start_upstream grpc-echo
    start_chain "$scenario" "$UPSTREAM_PORT"
    echo run >"$TMP/phase"
    for shape in "${SHAPES[@]}"; do
        log "$scenario: $shape unary calls of $MSG_SIZE B ($WARMUP warmup + $DURATION)"
        run_h2load "$scenario.$shape" "${shape%x*}" "${shape#*x}" ||
            { tail -n 20 "$TMP/results/$scenario.$shape.h2load" >&2; die "$scenario $shape failed"; }
    done
    stop_scenario
}

for scenario in "${scenarios[@]}"; do
    if [[ $scenario != direct ]] && ((!have_certs)); then
        printf '%s\tno certificates\n' "$scenario" >>"$TMP/skipped"
        continue
    fi
    case $scenario in
        haproxy-*) command -v haproxy >/dev/null ||
            { printf '%s\thaproxy not installed\n' "$scenario" >>"$TMP/skipped"; continue; } ;;
        nginx-*) command -v nginx >/dev/null ||
            { printf '%s\tnginx not installed\n' "$scenario" >>"$TMP/skipped"; continue; } ;;
        ferry-*) [[ -x $FERRY ]] ||
            { printf '%s\tferry binary not built (%s)\n' "$scenario" "$FERRY" >>"$TMP/skipped"; continue; } ;;
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
        log "$scenario: FAILED: $reason; continuing with the next scenario"
        printf '%s\tfailed: %s\n' "$scenario" "$reason" >>"$TMP/skipped"
    fi
done

# --- Report -------------------------------------------------------------------------------------

python3 - "$TMP/results" "$TMP/skipped" "${out:-}" "$DURATION" "$WARMUP" "$PROXY_CPU" \
    "$LOAD_CPU" "$MSG_SIZE" <<'PY'
import json, os, platform, re, sys, time

results_dir, skipped_path, out, duration, warmup, proxy_cpu, load_cpu, size = sys.argv[1:9]
runs = {}
for name in sorted(os.listdir(results_dir)):
    if not name.endswith(".h2load"):
        continue
    base = name[:-len(".h2load")]
    scenario, shape = base.rsplit(".", 1)
    text = open(os.path.join(results_dir, name)).read()
    r = {"scenario": scenario, "shape": shape}
    m = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", text)
    r["req_per_s"] = float(m.group(1)) if m else None
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", text)
    if m:
        r["done"], r["succeeded"] = int(m.group(3)), int(m.group(4))
        r["errors"] = int(m.group(5)) + int(m.group(6)) + int(m.group(7))
    lat = []
    try:
        for line in open(os.path.join(results_dir, base + ".requests")):
            cols = line.split("\t")
            if len(cols) >= 3 and cols[1].startswith("2"):
                lat.append(int(cols[2]))
    except FileNotFoundError:
        pass
    lat.sort()
    def pct(p):
        return lat[min(len(lat) - 1, int(p * len(lat)))] if lat else None
    r["p50_us"], r["p99_us"] = pct(0.50), pct(0.99)
    cpu = os.path.join(results_dir, base + ".cpu")
    if os.path.exists(cpu):
        ticks, hz, pids = (open(cpu).read().split() + ["", "", ""])[:3]
        if pids:
            r["proxy_cpu_s"] = int(ticks) / int(hz)
            secs = float(duration.rstrip("s"))
            if r.get("req_per_s"):
                r["cpu_us_per_req"] = r["proxy_cpu_s"] * 1e6 / (r["req_per_s"] * secs)
    runs[(scenario, shape)] = r
skipped = []
for line in open(skipped_path):
    if line.strip():
        scenario, reason = line.rstrip("\n").split("\t", 1)
        skipped.append({"scenario": scenario, "reason": reason})

def fmt(v, f="{:.1f}"):
    return "-" if v is None else f.format(v)

order = ["direct", "haproxy-h2", "nginx-grpc", "ferry-grpc"]
scenarios = [s for s in order if any(k[0] == s for k in runs)]
for shape in ("4x25", "1x1"):
    if not any(k[1] == shape for k in runs):
        continue
    c, m = shape.split("x")
    print()
    print(f"gRPC unary, {size} B messages: {c} connection(s) x {m} concurrent call(s) "
          "(proxy CPU = both proxy processes)")
    print(f"{'scenario':<14}{'req/s':>10}{'p50 us':>9}{'p99 us':>9}{'proxy cpu s':>12}"
          f"{'cpu us/req':>11}{'errors':>8}")
    for s in scenarios:
        r = runs.get((s, shape))
        if not r:
            continue
        print(f"{s:<14}{fmt(r.get('req_per_s'), '{:.0f}'):>10}{fmt(r.get('p50_us'), '{}'):>9}"
              f"{fmt(r.get('p99_us'), '{}'):>9}{fmt(r.get('proxy_cpu_s'), '{:.2f}'):>12}"
              f"{fmt(r.get('cpu_us_per_req'), '{:.2f}'):>11}{fmt(r.get('errors'), '{}'):>8}")

ratios = []
def ratio(a, b, shape, key, better):
    ra, rb = runs.get((a, shape)), runs.get((b, shape))
    va = None if ra is None else ra.get(key)
    vb = None if rb is None else rb.get(key)
    if va is None or vb is None or vb == 0:
        return
    ratios.append({"name": f"{a} / {b} {shape} {key}", "a": a, "b": b, "shape": shape,
                   "metric": key, "ratio": va / vb, "better": better})

for peer in ("haproxy-h2", "nginx-grpc"):
    for shape in ("4x25", "1x1"):
        ratio("ferry-grpc", peer, shape, "req_per_s", "higher")
        ratio("ferry-grpc", peer, shape, "p50_us", "lower")
        ratio("ferry-grpc", peer, shape, "p99_us", "lower")
        ratio("ferry-grpc", peer, shape, "cpu_us_per_req", "lower")
if ratios:
    print()
    print("ratios")
    for r in ratios:
        print(f"  {r['name']:<50}{r['ratio']:>8.2f}   ({r['better']} is better)")
for s in skipped:
    print(f"skipped {s['scenario']}: {s['reason']}")

if out:
    doc = {
        "meta": {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "kernel": platform.release(),
                 "cpus": os.cpu_count(), "duration": duration, "warmup": warmup,
                 "message_size": int(size), "proxy_cpu": int(proxy_cpu),
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
