#!/usr/bin/env bash
# Two "clusters" on one machine: a pair of network namespaces joined by a WAN link with delay.
#
#   tools/netns.sh up   [options]   create the namespaces and the link between them
#   tools/netns.sh down [options]   remove them (and the delay line process, if one was started)
#
# Options (the same for up and down):
#   --ns-a NAME        namespace of cluster A (default ferry-demo-a)
#   --ns-b NAME        namespace of cluster B (default ferry-demo-b)
#   --addr-a IP        cluster A's address on the link (default 198.18.0.1)
#   --addr-b IP        cluster B's address on the link (default 198.18.0.2)
#   --delay-ms MS      one-way delay added in each direction (default 20; 0 = none)
#   --loss-pct P       share of packets dropped in each direction, in percent (default 0; e.g. 1
#                      or 0.5)
#   --state-dir DIR    where the delay line's pid and log are kept (default /run/ferry-netns)
#
# The link is a veth pair named wan0 on both sides, with `tc netem` adding the delay. Kernels built
# without sch_netem get a user-space delay line instead: one TUN device (also wan0) in each
# namespace and a small process that forwards every IP packet from one to the other after the
# delay, so TCP sees the same round-trip time. Addresses default to the benchmark range
# 198.18.0.0/15 and exist only inside the two namespaces. Needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN).
set -euo pipefail

ns_a="ferry-demo-a"
ns_b="ferry-demo-b"
addr_a=198.18.0.1
addr_b=198.18.0.2
delay_ms=20
loss_pct=0
state_dir=/run/ferry-netns

usage() {
    sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'
}

cmd=${1:-}
[[ -n "$cmd" ]] && shift
while (($#)); do
    case $1 in
        --ns-a) ns_a=$2; shift 2 ;;
        --ns-b) ns_b=$2; shift 2 ;;
        --addr-a) addr_a=$2; shift 2 ;;
        --addr-b) addr_b=$2; shift 2 ;;
        --delay-ms) delay_ms=$2; shift 2 ;;
        --loss-pct) loss_pct=$2; shift 2 ;;
        --state-dir) state_dir=$2; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "netns.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
if ! [[ "$delay_ms" =~ ^[0-9]+$ ]]; then
    echo "netns.sh: --delay-ms needs a whole number of milliseconds" >&2
    exit 2
fi
if ! [[ "$loss_pct" =~ ^[0-9]+(\.[0-9]+)?$ ]] || ! awk -v p="$loss_pct" 'BEGIN { exit !(p < 100) }'; then
    echo "netns.sh: --loss-pct needs a number of percent below 100" >&2
    exit 2
fi
lossy=$(awk -v p="$loss_pct" 'BEGIN { print (p > 0) ? 1 : 0 }')

python=/usr/bin/python3
[[ -x $python ]] || python=python3

# The user-space delay line (stdlib only). argv: marker ns_a ns_b ifname delay_ms loss_pct ready_file
# shellcheck disable=SC2016
delay_line_py='
import collections, ctypes, fcntl, os, random, selectors, struct, sys, time

_, _marker, ns_a, ns_b, ifname, delay_ms, loss_pct, ready_file = sys.argv
delay = int(delay_ms) / 1000.0
loss = float(loss_pct) / 100.0
CLONE_NEWNET = 0x40000000
TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000
libc = ctypes.CDLL(None, use_errno=True)

def enter(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, "setns " + path + ": " + os.strerror(err))
    finally:
        os.close(fd)

def open_tun(ns):
    enter("/run/netns/" + ns)
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", ifname.encode(), IFF_TUN | IFF_NO_PI))
    return fd

home = os.open("/proc/self/ns/net", os.O_RDONLY)
fa = open_tun(ns_a)
fb = open_tun(ns_b)
libc.setns(home, CLONE_NEWNET)
os.close(home)
with open(ready_file, "w") as f:
    f.write("ready\n")

peer = {fa: fb, fb: fa}
queue = {fa: collections.deque(), fb: collections.deque()}  # keyed by the fd packets leave by
sel = selectors.DefaultSelector()
sel.register(fa, selectors.EVENT_READ)
sel.register(fb, selectors.EVENT_READ)
while True:
    now = time.monotonic()
    timeout = None
    for out, q in queue.items():
        while q and q[0][0] <= now:
            try:
                os.write(out, q[0][1])
            except BlockingIOError:
                break
            except OSError:
                pass  # the device went away or refused the packet: it is lost, like on a wire
            q.popleft()
        if q:
            wait = max(0.0, q[0][0] - now)
            timeout = wait if timeout is None else min(timeout, wait)
    for key, _ in sel.select(timeout):
        q = queue[peer[key.fd]]
        for _ in range(256):
            try:
                packet = os.read(key.fd, 65536)
            except BlockingIOError:
                break
            if loss and random.random() < loss:
                continue  # lost on the wire
            q.append((time.monotonic() + delay, packet))
'

netns_exists() {
    ip netns list 2>/dev/null | awk '{print $1}' | grep -qx -- "$1"
}

# Stops the delay line this script started (by its recorded pid, after checking it is ours).
stop_delay_line() {
    local pidfile=$state_dir/$ns_a-$ns_b.delay-line.pid pid
    [[ -f $pidfile ]] || return 0
    pid=$(<"$pidfile")
    if [[ -n "$pid" ]] && tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q "ferry-delay-line $ns_a $ns_b"; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile" "$state_dir/$ns_a-$ns_b.delay-line.ready"
}

# Stops whatever still runs inside namespace NS (only processes started into it are there).
stop_processes_in() {
    local ns=$1 pids
    pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
    [[ -n ${pids// /} ]] || return 0
    echo "netns.sh: stopping processes left in $ns: $pids" >&2
    # shellcheck disable=SC2086
    kill -TERM $pids 2>/dev/null || true
    for _ in $(seq 50); do
        [[ -z $(ip netns pids "$ns" 2>/dev/null) ]] && return 0
        sleep 0.1
    done
    pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
    if [[ -n ${pids// /} ]]; then
        # shellcheck disable=SC2086
        kill -KILL $pids 2>/dev/null || true
    fi
}

down() {
    stop_delay_line
    local ns
    for ns in "$ns_a" "$ns_b"; do
        if netns_exists "$ns"; then
            stop_processes_in "$ns"
            ip netns delete "$ns"
        fi
    done
}

start_delay_line() {
    mkdir -p "$state_dir"
    local ready=$state_dir/$ns_a-$ns_b.delay-line.ready
    local log=$state_dir/$ns_a-$ns_b.delay-line.log
    rm -f "$ready"
    # setsid: the delay line outlives this script, and a Ctrl-C meant for the caller does not cut
    # the link before the caller has drained its traffic; `down` stops it by pid.
    setsid "$python" -c "$delay_line_py" "ferry-delay-line" "$ns_a" "$ns_b" wan0 "$delay_ms" "$loss_pct" "$ready" \
        </dev/null >"$log" 2>&1 &
    local pid=$!
    echo "$pid" >"$state_dir/$ns_a-$ns_b.delay-line.pid"
    for _ in $(seq 100); do
        [[ -s $ready ]] && break
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "netns.sh: the delay line failed to start:" >&2
            cat "$log" >&2
            return 1
        fi
        sleep 0.05
    done
    [[ -s $ready ]] || { echo "netns.sh: the delay line did not come up" >&2; return 1; }
    ip -n "$ns_a" addr add "$addr_a/32" peer "$addr_b/32" dev wan0
    ip -n "$ns_b" addr add "$addr_b/32" peer "$addr_a/32" dev wan0
    ip -n "$ns_a" link set wan0 up
    ip -n "$ns_b" link set wan0 up
}

up() {
    down
    ip netns add "$ns_a"
    ip netns add "$ns_b"
    ip -n "$ns_a" link set lo up
    ip -n "$ns_b" link set lo up

    ip link add wan0 netns "$ns_a" type veth peer name wan0 netns "$ns_b"
    ip -n "$ns_a" addr add "$addr_a/30" dev wan0
    ip -n "$ns_b" addr add "$addr_b/30" dev wan0
    ip -n "$ns_a" link set wan0 up
    ip -n "$ns_b" link set wan0 up
    if ((delay_ms == 0 && !lossy)); then
        echo "link: veth $ns_a/wan0 $addr_a <-> $ns_b/wan0 $addr_b, no added delay"
        return 0
    fi
    local err netem=(delay "${delay_ms}ms") what="${delay_ms} ms each way"
    if ((lossy)); then
        netem+=(loss "${loss_pct}%")
        what+=", ${loss_pct}% loss each way"
    fi
    if err=$(ip netns exec "$ns_a" tc qdisc add dev wan0 root netem "${netem[@]}" 2>&1) &&
        err=$(ip netns exec "$ns_b" tc qdisc add dev wan0 root netem "${netem[@]}" 2>&1); then
        echo "link: veth $ns_a/wan0 $addr_a <-> $ns_b/wan0 $addr_b, tc netem $what"
        return 0
    fi
    echo "link: tc netem is not available here (${err//$'\n'/ }); using a user-space delay line"
    ip -n "$ns_a" link delete wan0
    start_delay_line
    echo "link: tun $ns_a/wan0 $addr_a <-> $ns_b/wan0 $addr_b, user-space delay line $what (pid $(<"$state_dir/$ns_a-$ns_b.delay-line.pid"))"
}

case $cmd in
    up)
        trap 'rc=$?; if ((rc != 0)); then down; fi' EXIT
        up
        ;;
    down) down ;;
    -h | --help | help) usage ;;
    *) usage >&2; exit 2 ;;
esac
