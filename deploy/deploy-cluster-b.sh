#!/usr/bin/env bash
# Deploys cluster B (the sink): ferry terminator DaemonSet, its LoadBalancer Service and the demo
# echo upstream. Deploy this cluster FIRST: it waits until every terminator pod is ready and the
# LoadBalancer has an address, then prints that address and the command for cluster A.
#
#   deploy/deploy-cluster-b.sh [--context CTX] [--k3d] [--image REF] [--timeout SECONDS]
#
#   --context CTX   kubectl context of cluster B (default: the current context)
#   --k3d           local k3d cluster created with --port "30200:30200@loadbalancer":
#                   applies deploy/k3d/cluster-b (LoadBalancer on port 30200)
#   --image REF     ferry image (default ferry:0.1.0, e.g. loaded with k3d image import)
#   --timeout S     bound on each wait: rollout, LoadBalancer address (default 300)
set -euo pipefail
# shellcheck source=deploy/lib.sh
source "$(dirname "$0")/lib.sh"

context=""
k3d=0
image=$ferry_default_image
timeout=300
while (($#)); do
    case $1 in
        --context) context=${2:?--context needs a value}; shift 2 ;;
        --k3d) k3d=1; shift ;;
        --image) image=${2:?--image needs a value}; shift 2 ;;
        --timeout) timeout=${2:?--timeout needs seconds}; shift 2 ;;
        -h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done
need_kubectl

dir=$ferry_deploy_dir/terminator
((k3d)) && dir=$ferry_deploy_dir/k3d/cluster-b
echo "== cluster B${context:+ ($context)}: applying ${dir#"$ferry_deploy_dir"/} with image $image"
render "$dir" "$image" | kc "$context" apply -f -

echo "== waiting for the terminators (up to ${timeout}s)"
kc "$context" -n "$ferry_namespace" rollout status daemonset/ferry-terminator --timeout="${timeout}s"
kc "$context" -n "$ferry_namespace" rollout status deployment/ferry-echo --timeout="${timeout}s"
kc "$context" -n "$ferry_namespace" get pods -l app.kubernetes.io/part-of=ferry -o wide

echo "== waiting for the LoadBalancer address (up to ${timeout}s)"
address=$(lb_address "$context" "$timeout")
echo "terminator LoadBalancer: $address"
echo
if ((k3d)); then
    echo "k3d: cluster A's pods reach this LoadBalancer through the host's port mapping, as"
    echo "host.k3d.internal:30200. Next:"
    echo "  deploy/deploy-cluster-a.sh --context k3d-cluster-a --k3d"
else
    echo "Record it (or pre-provision it as a static address: docs/deploy.md). Next, cluster A:"
    echo "  deploy/deploy-cluster-a.sh --context CLUSTER_A --peer $address"
    if [[ -n $context ]]; then
        echo "or let it ask this cluster:"
        echo "  deploy/deploy-cluster-a.sh --context CLUSTER_A --peer-context $context"
    fi
fi
