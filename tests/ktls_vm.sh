#!/bin/sh
# Runs something in the kTLS VM for a test: ktls_vm.sh RUNNER [OPTIONS...]
# RUNNER is ../shared/vm/run-in-vm.sh, or tools/vm-kernel.sh --run for a newer kernel. A missing
# harness, and run-in-vm.sh's exit 125 (the VM itself failed: no QEMU, no image), are a skip (77)
# for meson with the reason: the kTLS path was not tested, which is neither a pass nor a failure
# of the code. Used by the kTLS unit tests (tests/unit/tls) and end-to-end tests
# (tests/integration).
run_in_vm=$1
shift
# One vCPU under emulation. Without hardware KVM (no vmx/svm: run-in-vm.sh's --accel auto picks
# TCG) QEMU runs each vCPU in its own host thread (tcg,thread=multi), while the guest kernel
# patches its own code under the other vCPU's feet: static keys flip after SMP boot (sched_clock
# "Marking stable", tracing init, module loads) by text_poke_bp's int3 protocol. QEMU 7.2's
# multi-threaded TCG can go on running a block translated while the int3 was there after the
# patch is done; the guest dies on an int3 no patch owns ("Oops: int3" in sched_clock_cpu or
# hrtimer_start_range_ns), run-in-vm.sh exits 125 and the test is skipped. Seen here with
# Debian's 6.18, three VMs at once: 2 of 90 boots with 2 vCPUs panicked (that int3 oops, and a
# double fault with garbage EFLAGS), 0 of 60 with one vCPU. One vCPU thread leaves no other thread
# to run stale code, and these tests need no parallelism (ferry runs one shard). FERRY_VM_CPUS,
# if set, still wins (FERRY_VM_CPUS=2 to look for SMP races); under real KVM the default is kept.
kvm_usable() {
    [ -r /dev/kvm ] && [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo &&
        [ ! -d /sys/module/kvm_pvm ]
}
case ${FERRY_VM_ACCEL:-auto} in
    tcg) FERRY_VM_CPUS=${FERRY_VM_CPUS:-1} ;;
    auto) kvm_usable || FERRY_VM_CPUS=${FERRY_VM_CPUS:-1} ;;
esac
if [ -n "${FERRY_VM_CPUS:-}" ]; then
    export FERRY_VM_CPUS
fi
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
