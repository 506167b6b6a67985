# Shared by the benchmark scripts (bench/run.sh, bench/ws.sh), sourced after each has parsed its
# arguments and defined log() and die(): the scratch directory, the processes a script starts
# (each stopped on exit, by PID and start time, so a recycled PID is never signalled), ports,
# scenario process lists, config templates and the demo certificates.
# Expects: ROOT, LOAD, LOAD_CPU, optional certs; its argument names the scratch directory.
# shellcheck shell=bash disable=SC2034  # sets variables its callers read

TMP=$(mktemp -d "/tmp/${1:-ferry-bench}.XXXXXX")
mkdir -p "$TMP/results"
: >"$TMP/pids"
: >"$TMP/ports"
: >"$TMP/skipped"

# Start time (clock ticks since boot) of a process: with the pid it names one process for
# good, so a pid recycled by someone else's process is never signalled.
# "-" when the process is already gone.
start_time() {
    local stat fields
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo -; return 0; }
    read -r -a fields <<<"${stat##*) }" # fields[0] is field 3 (state); starttime is field 22
    echo "${fields[19]}"
}

# Records a process we started, for the cleanup on exit.
track_pid() { echo "$1 $(start_time "$1")" >>"$TMP/pids"; }

# True while the process runs (a zombie counts as gone).
alive() {
    local state
    state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    [[ $state != Z* ]]
}

# Stops one process we started, if it is still the one we started: SIGTERM, up to 5 s grace,
# then SIGKILL.
stop_pid() { # stop_pid PID [START_TIME]
    local pid=$1 started=${2:-}
    [[ $started != - ]] || return 0
    [[ -z $started || $(start_time "$pid") == "$started" ]] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 50); do
        alive "$pid" || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local entries
    mapfile -t entries <"$TMP/pids"
    for ((i = ${#entries[@]} - 1; i >= 0; i--)); do
        # shellcheck disable=SC2086 # "PID START" splits into two arguments
        stop_pid ${entries[i]}
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

# A port nobody uses on 127.0.0.1, below the ephemeral range so outgoing connections cannot
# take it, and not handed out before in this run.
free_port() {
    local port
    for _ in $(seq 200); do
        port=$((20000 + RANDOM % 12000))
        grep -qx "$port" "$TMP/ports" && continue
        [[ -z $(ss -Htan "sport = :$port") ]] || continue
        echo "$port" >>"$TMP/ports"
        echo "$port"
        return 0
    done
    die "no free port found"
}

# Scenario-local process list; each scenario runs in a subshell whose EXIT trap stops them.
SCEN_PIDS=()
STARTED_PID=""
start_bg() { # start_bg NAME CPU COMMAND... -> STARTED_PID
    local name=$1 cpu=$2
    shift 2
    # Truncated here, not by the child's redirection, so nobody reads a previous run's log.
    : >"$TMP/$name.log"
    taskset -c "$cpu" "$@" >>"$TMP/$name.log" 2>&1 &
    STARTED_PID=$!
    track_pid "$STARTED_PID"
    SCEN_PIDS+=("$STARTED_PID $(start_time "$STARTED_PID")")
}

stop_scenario() {
    for ((i = ${#SCEN_PIDS[@]} - 1; i >= 0; i--)); do
        # shellcheck disable=SC2086 # "PID START" splits into two arguments
        stop_pid ${SCEN_PIDS[i]}
    done
    SCEN_PIDS=()
}

show_log() {
    log "--- last lines of $1.log"
    tail -n 15 "$TMP/$1.log" >&2 || true
}

# Waits (bounded) for a process we started to listen on a port.
wait_listen() { # wait_listen NAME PID PORT
    local name=$1 pid=$2 port=$3
    for _ in $(seq 100); do
        if ! kill -0 "$pid" 2>/dev/null; then
            show_log "$name"
            die "$name exited during startup: $(tail -n 1 "$TMP/$name.log" | cut -c1-160)"
        fi
        [[ -n $(ss -Hltn "sport = :$port") ]] && return 0
        sleep 0.1
    done
    show_log "$name"
    die "$name is not listening on $port after 10 s"
}

# Adds the children of the given pids (nginx's worker) to the watched list.
with_children() {
    local pid all=()
    for pid in "$@"; do
        all+=("$pid")
        while read -r child; do
            [[ -n $child ]] && all+=("$child") && track_pid "$child"
        done < <(pgrep -P "$pid" || true)
    done
    local IFS=,
    echo "${all[*]}"
}

# Starts ferry-load serve (echo or source) on the load CPU; sets UPSTREAM_PORT.
UPSTREAM_PORT=""
start_upstream() { # start_upstream MODE
    local name=upstream-$1
    start_bg "$name" "$LOAD_CPU" "$LOAD" serve --listen 127.0.0.1:0 --mode "$1"
    local pid=$STARTED_PID
    UPSTREAM_PID=$pid  # run.sh watches it in the direct bulk run
    for _ in $(seq 100); do
        UPSTREAM_PORT=$(sed -n 's/^listening on 127\.0\.0\.1://p' "$TMP/$name.log")
        [[ -n $UPSTREAM_PORT ]] && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    show_log "$name"
    die "ferry-load serve did not start"
}

render() { # render TEMPLATE OUTPUT KEY=VALUE...
    local template=$1 output=$2 expr=()
    shift 2
    for kv in "$@"; do
        expr+=(-e "s|@${kv%%=*}@|${kv#*=}|g")
    done
    sed "${expr[@]}" "$template" >"$output"
    if grep -q '@[A-Z_]*@' "$output"; then
        die "unfilled placeholder in $output"
    fi
}

# --- Certificates -------------------------------------------------------------------------------

SERVER_NAME=""
declare -A CERT=([ca]="" [terminator]="" [initiator]="")
setup_certs() {
    if [[ -z $certs ]]; then
        if [[ -x $ROOT/tools/gen-certs.sh ]]; then
            certs=$TMP/certs
            "$ROOT/tools/gen-certs.sh" "$certs" >"$TMP/gen-certs.log" 2>&1 ||
                { show_log gen-certs; die "tools/gen-certs.sh failed"; }
        else
            return 1
        fi
    fi
    certs=$(cd "$certs" && pwd)
    # Certificates may be NAME.crt or NAME.pem; keys are NAME.key.
    local name
    for name in ca terminator initiator; do
        if [[ -r $certs/$name.crt ]]; then
            CERT[$name]=$certs/$name.crt
        elif [[ -r $certs/$name.pem ]]; then
            CERT[$name]=$certs/$name.pem
        else
            die "certificate directory $certs lacks $name.crt (or $name.pem)"
        fi
        [[ $name == ca || -r $certs/$name.key ]] || die "certificate directory $certs lacks $name.key"
    done
    cat "${CERT[terminator]}" "$certs/terminator.key" >"$TMP/terminator.bundle.pem"
    cat "${CERT[initiator]}" "$certs/initiator.key" >"$TMP/initiator.bundle.pem"
    # The name clients verify: the terminator certificate's first DNS SAN, else its CN.
    SERVER_NAME=$(openssl x509 -in "${CERT[terminator]}" -noout -ext subjectAltName 2>/dev/null |
        grep -o 'DNS:[^,]*' | head -n 1 | cut -d: -f2 || true)
    if [[ -z $SERVER_NAME ]]; then
        SERVER_NAME=$(openssl x509 -in "${CERT[terminator]}" -noout -subject -nameopt multiline |
            sed -n 's/^ *commonName *= *//p')
    fi
    [[ -n $SERVER_NAME ]] || die "cannot find a DNS name in ${CERT[terminator]}"
    return 0
}
