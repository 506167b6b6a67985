#!/bin/sh
# Host side of the kTLS end-to-end test: makes a PKI, boots the VM with Debian's kernel (which has
# tls.ko) and runs ktls_vm_e2e.sh inside it. A VM that cannot start is a skip (77), not a pass.
#   ktls_vm_host.sh RUN_IN_VM GEN_CERTS FERRY FERRY_LOAD
run_in_vm=$1
gen_certs=$2
ferry=$3
load=$4
here=$(cd "$(dirname "$0")" && pwd)
if [ ! -x "$run_in_vm" ]; then
    echo "SKIP: the kTLS VM harness is not at $run_in_vm (shared/vm beside the checkout)" >&2
    exit 77
fi
pki=$(mktemp -d /tmp/ferry-ktls-pki.XXXXXX)
trap 'rm -rf "$pki"' EXIT
"$gen_certs" "$pki" > /dev/null || exit 1
"$run_in_vm" --tls-stat --timeout 500 --file "$ferry" --file "$load" --file "$pki" \
    --file "$here/ktls_vm_e2e.sh" --sh "sh $here/ktls_vm_e2e.sh $ferry $load $pki"
rc=$?
if [ "$rc" -eq 125 ]; then
    echo "SKIP: the kTLS VM could not start (run-in-vm.sh exit 125)" >&2
    exit 77
fi
exit "$rc"
