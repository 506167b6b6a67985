#!/bin/sh
# Host side of the kTLS end-to-end test: makes a PKI, boots the VM with Debian's kernel (which has
# tls.ko) and runs ktls_vm_e2e.sh inside it. A VM that cannot start is a skip (77), not a pass.
#   ktls_vm_host.sh [--newer-kernel VM_KERNEL_SH] RUN_IN_VM GEN_CERTS FERRY FERRY_LOAD
# --newer-kernel boots a Debian kernel >= 6.14 (kTLS rekey) through tools/vm-kernel.sh instead of
# the harness's default 6.1; it exits 77 with the reason when no such kernel can be had.
newer=""
if [ "$1" = "--newer-kernel" ]; then
    newer=$2
    shift 2
fi
run_in_vm=$1
gen_certs=$2
ferry=$3
load=$4
here=$(cd "$(dirname "$0")" && pwd)
pki=$(mktemp -d /tmp/ferry-ktls-pki.XXXXXX)
trap 'rm -rf "$pki"' EXIT
"$gen_certs" "$pki" > /dev/null || exit 1
set -- --tls-stat --timeout 500 --file "$ferry" --file "$load" --file "$pki" \
    --file "$here/ktls_vm_e2e.sh" --sh "sh $here/ktls_vm_e2e.sh $ferry $load $pki"
# The shared wrapper makes a missing harness or a VM that cannot start a visible skip.
if [ -n "$newer" ]; then
    FERRY_VM=$run_in_vm "$here/../ktls_vm.sh" "$newer" --run "$@"
else
    "$here/../ktls_vm.sh" "$run_in_vm" "$@"
fi
rc=$?
exit "$rc"
