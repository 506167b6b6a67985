#!/bin/sh
# Runs a test program in the kTLS VM: ktls_vm.sh RUN_IN_VM [OPTIONS] -- PROGRAM [ARGS...]
# run-in-vm.sh exits 125 when the VM itself failed (no QEMU, no image); that is a skip (77) for
# meson, since the kTLS path was not tested, not a pass and not a failure of the code.
run_in_vm=$1
shift
if [ ! -x "$run_in_vm" ]; then
    echo "SKIP: the kTLS VM harness is not at $run_in_vm (shared/vm beside the checkout)" >&2
    exit 77
fi
"$run_in_vm" "$@"
rc=$?
if [ "$rc" -eq 125 ]; then
    echo "SKIP: the kTLS VM could not start (run-in-vm.sh exit 125)" >&2
    exit 77
fi
exit "$rc"
