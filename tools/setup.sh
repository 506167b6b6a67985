#!/usr/bin/env bash
# Installs everything ferry needs to build, test and benchmark on Debian 12 (idempotent; run as root).
#   tools/setup.sh          build + test dependencies
#   tools/setup.sh --bench  also the peers the benchmark compares against
set -euo pipefail

build_deps=(
    meson ninja-build pkg-config g++ clang-14 libclang-rt-14-dev clang-format
    liburing-dev libssl-dev openssl libxxhash-dev libabsl-dev
    libgtest-dev libgmock-dev libbenchmark-dev libnghttp2-dev nlohmann-json3-dev
    python3-websockets nodejs node-ws
    python3-grpcio python3-protobuf protobuf-compiler python3-h2
    iproute2 procps curl python3 ca-certificates
    # the kTLS tests boot Debian kernels in QEMU (shared/vm/run-in-vm.sh, tools/vm-kernel.sh)
    qemu-system-x86 xz-utils zstd debian-archive-keyring
)
bench_deps=(haproxy stunnel4 nginx-light libnginx-mod-stream linux-perf)

want=("${build_deps[@]}")
if [[ "${1:-}" == "--bench" ]]; then
    want+=("${bench_deps[@]}")
fi

missing=()
for pkg in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]} == 0)); then
    exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
