#!/usr/bin/env bash
# Deploys cluster B (the sink): the io_uring seccomp profile on every node, Secret
# ferry-tunnel-tls, the ferry terminator DaemonSet, its LoadBalancer Service and the demo echo
# upstream. Deploy this cluster FIRST: it waits until every terminator pod is ready and the
# LoadBalancer has an address, then prints that address and the command for cluster A.
#
#   deploy/deploy-cluster-b.sh [--context CTX] [--k3d] [--image REF] [--timeout SECONDS]
#                              [--pki DIR | --demo-pki DIR | --plain] [--no-seccomp-installer]
#
#   --context CTX   kubectl context of cluster B (default: the current context)
#   --k3d           local k3d cluster created with --port "30200:30200@loadbalancer":
#                   applies deploy/k3d/cluster-b (LoadBalancer on port 30200)
#   --image REF     ferry image (default ferry:0.1.0, e.g. loaded with k3d image import)
#   --timeout S     bound on each wait: rollout, LoadBalancer address (default 300)
#   --pki DIR       Secret ferry-tunnel-tls from DIR/ca.crt, DIR/terminator.crt, DIR/terminator.key
#                   (without --pki/--demo-pki an existing Secret is kept)
#   --demo-pki DIR  make a demo PKI in DIR with tools/gen-certs.sh (or reuse it) and use it
#   --plain         PLAIN TRANSPORT, no encryption, no authentication (trusted networks only;
#                   cluster A must be deployed with --plain too)
#   --no-seccomp-installer   the profile is installed otherwise (Security Profiles Operator)
set -euo pipefail
# shellcheck source=deploy/lib.sh
source "$(dirname "$0")/lib.sh"

context=""
k3d=0
image=$ferry_default_image
timeout=300
pki=""
demo=""
plain=0
seccomp=1
while (($#)); do
    case $1 in
        --context) context=${2:?--context needs a value}; shift 2 ;;
        --k3d) k3d=1; shift ;;
        --image) image=${2:?--image needs a value}; shift 2 ;;
        --timeout) timeout=${2:?--timeout needs seconds}; shift 2 ;;
        --pki) pki=${2:?--pki needs a directory}; shift 2 ;;
        --demo-pki) demo=${2:?--demo-pki needs a directory}; shift 2 ;;
        --plain) plain=1; shift ;;
        --no-seccomp-installer) seccomp=0; shift ;;
        -h | --help) sed -n '2,/^set -e/{/^#/p}' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done
need_kubectl
if ((plain)) && [[ -n $pki$demo ]]; then
    die "--plain takes no certificates (--pki, --demo-pki)"
fi

if ((seccomp)); then
    install_seccomp "$context" "$image" "$timeout"
fi
transport=tls
if ((plain)); then
    transport=plain
    ferry_plain=terminator
    echo "== PLAIN TRANSPORT: the tunnel will be neither encrypted nor authenticated"
else
    if [[ -n $demo ]]; then
        demo_pki "$demo"
        pki=$demo
    fi
    if [[ -n $pki ]]; then
        tls_secret "$context" terminator "$pki"
    else
        need_tls_secret "$context"
    fi
fi

dir=$ferry_deploy_dir/terminator
((k3d)) && dir=$ferry_deploy_dir/k3d/cluster-b
echo "== cluster B${context:+ ($context)}: applying ${dir#"$ferry_deploy_dir"/} with image $image, transport $transport"
render "$dir" "$image" | kc "$context" apply -f -

echo "== waiting for the terminators (up to ${timeout}s)"
kc "$context" -n "$ferry_namespace" rollout status daemonset/ferry-terminator --timeout="${timeout}s"
kc "$context" -n "$ferry_namespace" rollout status deployment/ferry-echo --timeout="${timeout}s"
kc "$context" -n "$ferry_namespace" get pods -l app.kubernetes.io/part-of=ferry -o wide

echo "== waiting for the LoadBalancer address (up to ${timeout}s)"
address=$(lb_address "$context" "$timeout")
echo "terminator LoadBalancer: $address"
echo
same="--pki ${pki:-DIR}"
((plain)) && same="--plain"
if ((k3d)); then
    echo "k3d: cluster A's pods reach this LoadBalancer through the host's port mapping, as"
    echo "host.k3d.internal:30200. Next:"
    echo "  deploy/deploy-cluster-a.sh --context k3d-cluster-a --k3d $same"
else
    echo "Record it (or pre-provision it as a static address: docs/deploy.md). Next, cluster A:"
    echo "  deploy/deploy-cluster-a.sh --context CLUSTER_A --peer $address $same"
    if [[ -n $context ]]; then
        echo "or let it ask this cluster:"
        echo "  deploy/deploy-cluster-a.sh --context CLUSTER_A --peer-context $context $same"
    fi
fi
