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
# files in the repository are never modified.
render() {
    local dir=$1 image=$2 peer_host=${3:-} peer_port=${4:-}
    local tmp name tag="" digest=""
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/ferry-deploy.XXXXXX")
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
        echo "resources:"
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
    } >"$tmp/kustomization.yaml"
    local rc=0
    kubectl kustomize "$tmp" || rc=$?
    rm -rf "$tmp"
    return "$rc"
}
