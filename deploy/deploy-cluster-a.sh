#!/usr/bin/env bash
# Deploys cluster A (the gateway): ferry initiator DaemonSet, pointed at cluster B's terminator
# LoadBalancer. Deploy cluster B first (deploy-cluster-b.sh). Waits until every initiator pod is
# ready, which for an initiator means its tunnel to cluster B is up.
#
#   deploy/deploy-cluster-a.sh [--context CTX] (--peer HOST:PORT | --peer-context CTX_B | --k3d)
#                              [--image REF] [--timeout SECONDS] [--verify]
#
#   --context CTX        kubectl context of cluster A (default: the current context)
#   --peer HOST:PORT     cluster B's terminator LoadBalancer address (IP or DNS name)
#   --peer-context CTX   read that address from cluster B's Service ferry-terminator
#   --k3d                local k3d cluster created with --port "30100:30100@loadbalancer":
#                        applies deploy/k3d/cluster-a; the peer defaults to host.k3d.internal:30200
#   --image REF          ferry image (default ferry:0.1.0)
#   --timeout S          bound on each wait (default 300)
#   --verify             then send verified traffic through the tunnel from a one-shot pod
#                        (ferry-load run --mode verify against ferry-initiator:9000)
set -euo pipefail
# shellcheck source=deploy/lib.sh
source "$(dirname "$0")/lib.sh"

context=""
peer=""
peer_context=""
k3d=0
image=$ferry_default_image
timeout=300
verify=0
while (($#)); do
    case $1 in
        --context) context=${2:?--context needs a value}; shift 2 ;;
        --peer) peer=${2:?--peer needs HOST:PORT}; shift 2 ;;
        --peer-context) peer_context=${2:?--peer-context needs a context}; shift 2 ;;
        --k3d) k3d=1; shift ;;
        --image) image=${2:?--image needs a value}; shift 2 ;;
        --timeout) timeout=${2:?--timeout needs seconds}; shift 2 ;;
        --verify) verify=1; shift ;;
        -h | --help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done
need_kubectl

if [[ -z $peer && -n $peer_context ]]; then
    echo "== reading the terminator's LoadBalancer address from cluster B ($peer_context)"
    peer=$(lb_address "$peer_context" "$timeout")
fi
if [[ -z $peer ]] && ((k3d)); then
    peer=host.k3d.internal:30200
fi
[[ -n $peer ]] || die "give cluster B's terminator address: --peer HOST:PORT or --peer-context CTX"
[[ $peer == *:* ]] || die "--peer needs HOST:PORT (e.g. 203.0.113.7:7443)"
peer_host=${peer%:*}
peer_port=${peer##*:}
[[ $peer_port =~ ^[0-9]+$ ]] || die "--peer port '$peer_port' is not a number"

dir=$ferry_deploy_dir/initiator
((k3d)) && dir=$ferry_deploy_dir/k3d/cluster-a
echo "== cluster A${context:+ ($context)}: applying ${dir#"$ferry_deploy_dir"/} with image $image, peer $peer_host:$peer_port"
render "$dir" "$image" "$peer_host" "$peer_port" | kc "$context" apply -f -

echo "== waiting for the initiators: ready = tunnel to cluster B up (up to ${timeout}s)"
if ! kc "$context" -n "$ferry_namespace" rollout status daemonset/ferry-initiator --timeout="${timeout}s"; then
    echo "Initiators not ready. Their logs say why (a wrong --peer, a firewall, the seccomp profile):" >&2
    kc "$context" -n "$ferry_namespace" logs -l app.kubernetes.io/component=initiator --tail=20 --prefix >&2 || true
    exit 1
fi
kc "$context" -n "$ferry_namespace" get pods -l app.kubernetes.io/component=initiator -o wide
echo
echo "Clients in cluster A connect to ferry-initiator.$ferry_namespace.svc.cluster.local:9000."
if ((k3d)); then
    echo "From the host: localhost:30100."
fi

if ((verify)); then
    echo "== verify: 8 connections x 1 MiB through the tunnel to cluster B's echo upstream"
    kc "$context" -n "$ferry_namespace" delete pod ferry-verify --ignore-not-found >/dev/null
    kc "$context" -n "$ferry_namespace" run ferry-verify --rm -i --restart=Never --quiet \
        --image="$image" --image-pull-policy=IfNotPresent \
        --overrides='{"apiVersion":"v1","spec":{"securityContext":{"seccompProfile":{"type":"Unconfined"}}}}' \
        --command -- /usr/local/bin/ferry-load run \
        --target "ferry-initiator.$ferry_namespace.svc.cluster.local:9000" \
        --mode verify --connections 8 --bytes-per-connection 1MiB --timeout 60s
fi
