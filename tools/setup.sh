#!/usr/bin/env bash
# Installs everything ferry needs to build, test and benchmark on Debian 12 (idempotent; run as root).
#   tools/setup.sh          build + test dependencies
#   tools/setup.sh --bench  also the peers the benchmark compares against
set -euo pipefail

build_deps=(
    meson ninja-build pkg-config g++ clang-14 libclang-rt-14-dev clang-format
    liburing-dev libssl-dev openssl libxxhash-dev libabsl-dev
    libgtest-dev libgmock-dev libbenchmark-dev libnghttp2-dev nlohmann-json3-dev libc-ares-dev
    libgrpc++-dev
    python3-websockets nodejs node-ws
    python3-grpcio python3-protobuf protobuf-compiler python3-h2
    iproute2 procps curl python3 ca-certificates
    # tools/check-deploy.sh: shell scripts, and the deploy bundle rendered by Debian's kubectl
    # and checked against the Kubernetes API schemas (npm packages under tools/node_modules)
    shellcheck kubernetes-client npm
    # the kTLS tests boot Debian kernels in QEMU (shared/vm/run-in-vm.sh, tools/vm-kernel.sh)
    qemu-system-x86 xz-utils zstd debian-archive-keyring
)
bench_deps=(haproxy stunnel4 nginx-light libnginx-mod-stream linux-perf nghttp2-client)

want=("${build_deps[@]}")
if [[ "${1:-}" == "--bench" ]]; then
    want+=("${bench_deps[@]}")
fi

root=$(cd "$(dirname "$0")/.." && pwd)
# Debian's kubectl 1.20 (kubernetes-client) is the one the deploy check renders with. Where
# another package already owns /usr/bin/kubectl (a cloud SDK's), Debian's is unpacked into
# .cache/kubernetes-client instead of replacing it; tools/check-deploy.sh looks there first.
debian_kubectl=$root/.cache/kubernetes-client
unpack_kubectl=0
owner=$(dpkg-query -S /usr/bin/kubectl 2>/dev/null | cut -d: -f1 || true)
if [[ -n $owner && $owner != kubernetes-client ]]; then
    unpack_kubectl=1
fi

missing=()
for pkg in "${want[@]}"; do
    if [[ $pkg == kubernetes-client ]] && ((unpack_kubectl)); then
        continue
    fi
    # A nodejs build that bundles npm conflicts with Debian's npm package.
    if [[ $pkg == npm ]] && command -v npm >/dev/null; then
        continue
    fi
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((unpack_kubectl)) && [[ ! -x $debian_kubectl/usr/bin/kubectl ]]; then
    missing+=(kubernetes-client)
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
if ((${#missing[@]} > 0)); then
    $SUDO apt-get update -q
fi
if ((unpack_kubectl)) && [[ ! -x $debian_kubectl/usr/bin/kubectl ]]; then
    tmp=$(mktemp -d)
    chmod a+rwx "$tmp" # apt's download user writes there
    (cd "$tmp" && apt-get download -q kubernetes-client)
    rm -rf "$debian_kubectl"
    mkdir -p "$debian_kubectl"
    dpkg-deb -x "$tmp"/kubernetes-client_*.deb "$debian_kubectl"
    rm -rf "$tmp"
    missing=("${missing[@]/kubernetes-client/}")
fi
packages=()
for pkg in "${missing[@]}"; do
    [[ -n $pkg ]] && packages+=("$pkg")
done
if ((${#packages[@]} > 0)); then
    $SUDO apt-get install -y -q --no-install-recommends "${packages[@]}"
fi

# The npm packages of tools/check-deploy.sh, at the versions tools/package-lock.json pins (none
# in a copy of the tree without it, such as the image build's).
if [[ -f $root/tools/package-lock.json ]] &&
    ! cmp -s "$root/tools/package-lock.json" "$root/tools/node_modules/.package-lock.json.installed"; then
    (cd "$root/tools" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$root/tools/package-lock.json" "$root/tools/node_modules/.package-lock.json.installed"
fi
