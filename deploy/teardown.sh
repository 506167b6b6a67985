#!/usr/bin/env bash
# Removes ferry from both clusters: cluster A (initiators) first, then cluster B (terminators,
# their LoadBalancer, the demo upstream). Deleting namespaces "ferry" and "ferry-seccomp" deletes
# everything the deploy scripts created (Secret ferry-tunnel-tls included); the pods drain on the
# way out (preStop, --drain-timeout). Static addresses you reserved in the cloud are kept.
#
#   deploy/teardown.sh [--context-a CTX] [--context-b CTX] [--k3d-clusters]
#
#   --context-a CTX   kubectl context of cluster A ("" = skip cluster A)
#   --context-b CTX   kubectl context of cluster B ("" = skip cluster B)
#   --k3d-clusters    also delete the k3d clusters cluster-a and cluster-b (k3d cluster delete)
# Without context options it uses k3d-cluster-a and k3d-cluster-b.
set -euo pipefail
# shellcheck source=deploy/lib.sh
source "$(dirname "$0")/lib.sh"

context_a=k3d-cluster-a
context_b=k3d-cluster-b
k3d_clusters=0
while (($#)); do
    case $1 in
        --context-a) context_a=$2; shift 2 ;;
        --context-b) context_b=$2; shift 2 ;;
        --k3d-clusters) k3d_clusters=1; shift ;;
        -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done
need_kubectl

for side in A B; do
    ctx=$context_a
    [[ $side == B ]] && ctx=$context_b
    if [[ -z $ctx ]]; then
        echo "== cluster $side: skipped"
        continue
    fi
    echo "== cluster $side ($ctx): deleting namespaces $ferry_namespace and ferry-seccomp"
    kc "$ctx" delete namespace "$ferry_namespace" --ignore-not-found --wait=true --timeout=180s
    # The profile file stays on the nodes (harmless; the next deploy rewrites it).
    kc "$ctx" delete namespace ferry-seccomp --ignore-not-found --wait=true --timeout=180s
done

if ((k3d_clusters)); then
    command -v k3d >/dev/null || die "k3d is not installed"
    k3d cluster delete cluster-a cluster-b
fi
