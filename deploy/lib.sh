# Shared by deploy-cluster-a.sh, deploy-cluster-b.sh and teardown.sh (sourced, not run).
# shellcheck shell=bash

# shellcheck disable=SC2034  # used by the scripts that source this file
ferry_deploy_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ferry_namespace=ferry
# shellcheck disable=SC2034
ferry_default_image=ferry:0.1.0

die() {
    echo "$(basename "$0"): $*" >&2
    exit 1
}

# kubectl against one cluster: kc CONTEXT ARGS... (an empty CONTEXT means the current one).
kc() {
    local ctx=$1
    shift
    if [[ -n $ctx ]]; then
        kubectl --context "$ctx" "$@"
    else
        kubectl "$@"
    fi
}

need_kubectl() {
    command -v kubectl >/dev/null || die "kubectl is not installed"
}

# Prints the terminator LoadBalancer's address as HOST:PORT once the cloud (or k3d's servicelb)
# has assigned one; fails after TIMEOUT seconds. lb_address CONTEXT TIMEOUT
lb_address() {
    local ctx=$1 timeout=$2 host="" port deadline=$((SECONDS + $2))
    while ((SECONDS < deadline)); do
        host=$(kc "$ctx" -n "$ferry_namespace" get service ferry-terminator \
            -o jsonpath='{.status.loadBalancer.ingress[0].ip}' 2>/dev/null || true)
        if [[ -z $host ]]; then # EKS NLBs have a DNS name instead of an IP
            host=$(kc "$ctx" -n "$ferry_namespace" get service ferry-terminator \
                -o jsonpath='{.status.loadBalancer.ingress[0].hostname}' 2>/dev/null || true)
        fi
        if [[ -n $host ]]; then
            port=$(kc "$ctx" -n "$ferry_namespace" get service ferry-terminator \
                -o jsonpath='{.spec.ports[?(@.name=="tunnel")].port}')
            echo "$host:$port"
            return 0
        fi
        sleep 5
    done
    echo "$(basename "$0"): service ferry-terminator has no LoadBalancer address after ${timeout}s" \
        "(kubectl -n $ferry_namespace describe service ferry-terminator)" >&2
    return 1
}

# Renders a kustomization with the image (and, for the initiator, the peer) replaced, on stdout.
#   render DIR IMAGE [PEER_HOST PEER_PORT]
# DIR is a kustomization under deploy/; the override is a temporary overlay on top of it, so the
# files in the repository are never modified. With ferry_plain set to "initiator" or
# "terminator", the overlay also applies deploy/overlays/plain-ROLE's patch (plain transport).
ferry_plain=""
render() {
    local dir=$1 image=$2 peer_host=${3:-} peer_port=${4:-}
    local tmp name tag="" digest=""
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/ferry-deploy.XXXXXX")
    if [[ -n $ferry_plain ]]; then
        cp "$ferry_deploy_dir/overlays/plain-$ferry_plain/plain-transport.yaml" "$tmp/"
    fi
    name=$image
    if [[ $image == *@* ]]; then
        name=${image%@*}
        digest=${image#*@}
    elif [[ ${image##*/} == *:* ]]; then
        name=${image%:*}
        tag=${image##*:}
    fi
    {
        echo "apiVersion: kustomize.config.k8s.io/v1beta1"
        echo "kind: Kustomization"
        # "bases": a directory as kubectl 1.20's kustomize takes it (newer ones warn, and read it)
        echo "bases:"
        echo "  - $(realpath --relative-to="$tmp" "$dir")"
        echo "images:"
        echo "  - name: ferry"
        echo "    newName: \"$name\""
        [[ -n $tag ]] && echo "    newTag: \"$tag\""
        [[ -n $digest ]] && echo "    digest: \"$digest\""
        if [[ -n $peer_host ]]; then
            echo "configMapGenerator:"
            echo "  - name: ferry-peer"
            echo "    namespace: $ferry_namespace"
            echo "    behavior: replace"
            echo "    literals:"
            echo "      - TERMINATOR_LB_IP=$peer_host"
            echo "      - TERMINATOR_LB_PORT=$peer_port"
        fi
        if [[ -n $ferry_plain ]]; then
            echo "patchesJson6902:"
            echo "  - target: {group: apps, version: v1, kind: DaemonSet, name: ferry-$ferry_plain}"
            echo "    path: plain-transport.yaml"
        fi
    } >"$tmp/kustomization.yaml"
    local rc=0
    kubectl kustomize "$tmp" || rc=$?
    rm -rf "$tmp"
    return "$rc"
}

# Installs the io_uring seccomp profile on every node (deploy/seccomp) and waits until each node
# has it: ferry's pods name it, and fail with CreateContainerError where it is missing.
#   install_seccomp CONTEXT IMAGE TIMEOUT
install_seccomp() {
    local ctx=$1 image=$2 timeout=$3
    echo "== installing the io_uring seccomp profile on every node (deploy/seccomp)"
    render "$ferry_deploy_dir/seccomp" "$image" | kc "$ctx" apply -f -
    kc "$ctx" -n ferry-seccomp rollout status daemonset/ferry-seccomp-installer --timeout="${timeout}s"
}

# Creates or updates Secret ferry-tunnel-tls (tls.crt, tls.key, ca.crt) from a PKI directory
# holding ca.crt, ROLE.crt and ROLE.key (the layout of tools/gen-certs.sh). An update in place is
# how certificates are renewed: the kubelet swaps the mounted files and ferry reloads them.
#   tls_secret CONTEXT ROLE PKI_DIR
tls_secret() {
    local ctx=$1 role=$2 pki=$3 f
    for f in ca.crt "$role.crt" "$role.key"; do
        [[ -r $pki/$f ]] || die "$pki/$f: not found (a PKI directory holds ca.crt, $role.crt, $role.key)"
    done
    echo "== Secret ferry-tunnel-tls from $pki ($role.crt, $role.key, ca.crt)"
    kc "$ctx" create namespace "$ferry_namespace" --dry-run=client -o yaml | kc "$ctx" apply -f -
    kc "$ctx" -n "$ferry_namespace" create secret generic ferry-tunnel-tls \
        --from-file=tls.crt="$pki/$role.crt" --from-file=tls.key="$pki/$role.key" \
        --from-file=ca.crt="$pki/ca.crt" --dry-run=client -o yaml | kc "$ctx" apply -f -
}

# Fails unless Secret ferry-tunnel-tls exists (deploying without --pki keeps the one in place).
#   need_tls_secret CONTEXT
need_tls_secret() {
    kc "$1" -n "$ferry_namespace" get secret ferry-tunnel-tls >/dev/null 2>&1 ||
        die "no Secret ferry-tunnel-tls in namespace $ferry_namespace: give --pki DIR (your CA's" \
            "certificates) or --demo-pki DIR (made by tools/gen-certs.sh), or --plain"
}

# Makes the demo PKI with tools/gen-certs.sh (idempotent: a complete DIR is reused).
#   demo_pki DIR
demo_pki() {
    local gen=$ferry_deploy_dir/../tools/gen-certs.sh
    [[ -x $gen ]] || die "$gen not found (--demo-pki needs the repository's tools/)"
    "$gen" "$1" >/dev/null
    echo "== demo PKI in $1 (tools/gen-certs.sh; for production use your own CA: --pki)"
}
