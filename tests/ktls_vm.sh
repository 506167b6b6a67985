#!/bin/sh
# Runs something in the kTLS VM for a test: ktls_vm.sh RUNNER [OPTIONS...]
# RUNNER is ../shared/vm/run-in-vm.sh, or tools/vm-kernel.sh --run for a newer kernel. A missing
# harness, and run-in-vm.sh's exit 125 (the VM itself failed: no QEMU, no image), are a skip (77)
# for meson with the reason: the kTLS path was not tested, which is neither a pass nor a failure
# of the code. Used by the kTLS unit tests (tests/unit/tls) and end-to-end tests
# (tests/integration).
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
