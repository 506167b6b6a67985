#!/bin/sh
# kTLS end to end, run INSIDE the VM (busybox sh): echo upstream, terminator and initiator with
# --ktls=on, traffic verified byte for byte, the kernel's TLS counters must move, and forced
# rotations must disturb nothing. A kernel that can rekey kTLS (Linux 6.14+, which also counts
# TlsTxRekeyOk in /proc/net/tls_stat) must rotate in place by KeyUpdate with no reconnect; an
# older one (Debian 12's 6.1) must rotate by make-before-break reconnect.
#   ktls_vm_e2e.sh FERRY FERRY_LOAD PKI_DIR
# shellcheck disable=SC2015 # "A && B || fail": fail exits, so it runs exactly when A or B is false
F=$1
L=$2
P=$3
pids=""
# shellcheck disable=SC2317 # called by the trap
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null; done
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*"
    for f in /tmp/t.log /tmp/i.log; do echo "---- $f"; tail -n 20 $f; done
    exit 1
}
metric() {  # PORT NAME: the value summed over shards
    wget -q -O - "http://127.0.0.1:$1/metrics" | grep "^$2{" | awk '{s += $2} END {print s + 0}'
}
tls_stat() { grep "^$1 " /proc/net/tls_stat | awk '{print $2}'; }
if grep -q "^TlsTxRekeyOk " /proc/net/tls_stat; then rekey=1; else rekey=0; fi
echo "kernel $(uname -r): kTLS rekey $([ $rekey = 1 ] && echo supported || echo unsupported)"
# kTLS sessions the kernel set up before ferry started (TlsTxSw/TlsRxSw count installs).
tx0=$(tls_stat TlsTxSw)
rx0=$(tls_stat TlsRxSw)

tls_t="--tls-cert $P/terminator.crt --tls-key $P/terminator.key --tls-ca $P/ca.crt"
tls_i="--tls-cert $P/initiator.crt --tls-key $P/initiator.key --tls-ca $P/ca.crt"
# Rotation by bytes, not by age: how many rotations the transfer spans must not depend on how
# fast the VM runs.
common="--shards 1 --cpus none --ktls on --rekey-bytes 1048576 --rekey-interval 0"

$L serve --listen 127.0.0.1:7001 --mode echo > /tmp/e.log 2>&1 &
pids="$pids $!"
# $tls_t, $tls_i and $common are flag lists: split into words on purpose (busybox sh has no arrays).
# shellcheck disable=SC2086
$F terminator --listen-tunnel 127.0.0.1:7002 --upstream 127.0.0.1:7001 --admin 127.0.0.1:7003 \
    $tls_t $common > /tmp/t.log 2>&1 &
pids="$pids $!"
# shellcheck disable=SC2086
$F initiator --listen 127.0.0.1:7004 --peer 127.0.0.1:7002 --admin 127.0.0.1:7005 \
    $tls_i $common > /tmp/i.log 2>&1 &
pids="$pids $!"

i=0
until wget -q -O /dev/null http://127.0.0.1:7005/ready 2>/dev/null; do
    i=$((i + 1))
    [ $i -gt 300 ] && fail "initiator never became ready"
    sleep 0.1
done
[ "$(metric 7005 ferry_tunnel_ktls)" -ge 1 ] || fail "initiator tunnel is not on kTLS"
[ "$(metric 7003 ferry_tunnel_ktls)" -ge 1 ] || fail "terminator tunnel is not on kTLS"
[ "$(tls_stat TlsCurrTxSw)" -ge 2 ] && [ "$(tls_stat TlsCurrRxSw)" -ge 2 ] ||
    fail "the kernel holds no TLS session for the tunnel"

# 8 MiB each way: several 1 MiB key epochs on both ends.
$L run --target 127.0.0.1:7004 --mode verify --connections 4 --bytes-per-connection 2MiB \
    --timeout 300s || fail "verify through the kTLS tunnel"

tx1=$(tls_stat TlsTxSw)
rx1=$(tls_stat TlsRxSw)
echo "TlsTxSw $tx0 -> $tx1, TlsRxSw $rx0 -> $rx1"
[ "$tx1" -gt "$tx0" ] || fail "TlsTxSw did not grow: the kernel did not encrypt"
[ "$rx1" -gt "$rx0" ] || fail "TlsRxSw did not grow: the kernel did not decrypt"
# Both ends read through kTLS RX, so every verified byte was sealed and opened by the kernel.
[ "$(tls_stat TlsDecryptError)" -eq 0 ] || fail "the kernel failed to decrypt a record"
rot=$(metric 7005 ferry_rotations_reconnect_total)
ku_i=$(metric 7005 ferry_key_updates_sent_total)
ku_t=$(metric 7003 ferry_key_updates_sent_total)
echo "reconnect rotations: $rot; KeyUpdates sent: initiator $ku_i, terminator $ku_t"
[ "$(metric 7005 ferry_resets_received_total)" -eq 0 ] || fail "a stream was reset"
grep -q "kTLS on" /tmp/i.log || fail "no kTLS log line"
if [ $rekey = 1 ]; then
    [ "$ku_i" -ge 1 ] && [ "$ku_t" -ge 1 ] || fail "no in-place KeyUpdate under kTLS"
    [ "$rot" -eq 0 ] || fail "rotated by reconnect although the kernel can rekey"
    [ "$(metric 7005 ferry_key_updates_received_total)" -ge 1 ] || fail "initiator got no KeyUpdate"
    txk=$(tls_stat TlsTxRekeyOk)
    rxk=$(tls_stat TlsRxRekeyOk)
    echo "TlsTxRekeyOk $txk, TlsRxRekeyOk $rxk"
    [ "$txk" -ge 2 ] && [ "$rxk" -ge 2 ] || fail "the kernel did not take the new keys"
    [ "$(tls_stat TlsRxRekeyError)" -eq 0 ] && [ "$(tls_stat TlsTxRekeyError)" -eq 0 ] ||
        fail "the kernel refused a new key"
    echo "PASS: kTLS tunnel verified, kernel crypto counters moved, $ku_i + $ku_t in-place rekeys"
else
    [ "$rot" -ge 1 ] || fail "no rotation happened"
    [ "$ku_i" -eq 0 ] && [ "$ku_t" -eq 0 ] || fail "sent a KeyUpdate the kernel cannot follow"
    echo "PASS: kTLS tunnel verified, kernel crypto counters moved, $rot rotation(s) without a reset"
fi
exit 0
