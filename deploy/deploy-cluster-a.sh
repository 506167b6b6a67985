#!/usr/bin/env bash
# Deploys cluster A (the gateway): the io_uring seccomp profile on every node, Secret
# ferry-tunnel-tls, the ferry initiator DaemonSet, pointed at cluster B's terminator
# LoadBalancer. Deploy cluster B first (deploy-cluster-b.sh). Waits until every initiator pod is
# ready, which for an initiator means its tunnel to cluster B is up.
#
#   deploy/deploy-cluster-a.sh [--context CTX] (--peer HOST:PORT | --peer-context CTX_B | --k3d)
#                              [--image REF] [--timeout SECONDS] [--verify]
#                              [--pki DIR | --demo-pki DIR | --plain] [--no-seccomp-installer]
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
#   --pki DIR            Secret ferry-tunnel-tls from DIR/ca.crt, DIR/initiator.crt,
#                        DIR/initiator.key (without --pki/--demo-pki an existing Secret is kept)
#   --demo-pki DIR       the demo PKI cluster B was deployed with (tools/gen-certs.sh)
#   --plain              PLAIN TRANSPORT (only when cluster B was deployed with --plain)
#   --no-seccomp-installer   the profile is installed otherwise (Security Profiles Operator)
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
pki=""
demo=""
plain=0
seccomp=1
while (($#)); do
    case $1 in
        --context) context=${2:?--context needs a value}; shift 2 ;;
        --peer) peer=${2:?--peer needs HOST:PORT}; shift 2 ;;
        --peer-context) peer_context=${2:?--peer-context needs a context}; shift 2 ;;
        --k3d) k3d=1; shift ;;
        --image) image=${2:?--image needs a value}; shift 2 ;;
        --timeout) timeout=${2:?--timeout needs seconds}; shift 2 ;;
        --verify) verify=1; shift ;;
        --pki) pki=${2:?--pki needs a directory}; shift 2 ;;
        --demo-pki) demo=${2:?--demo-pki needs a directory}; shift 2 ;;
        --plain) plain=1; shift ;;
        --no-seccomp-installer) seccomp=0; shift ;;
        -h | --help) sed -n '2,/^set -e/{/^#/p}' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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
if ((plain)) && [[ -n $pki$demo ]]; then
    die "--plain takes no certificates (--pki, --demo-pki)"
fi

if ((seccomp)); then
    install_seccomp "$context" "$image" "$timeout"
fi
transport=tls
if ((plain)); then
    transport=plain
    ferry_plain=initiator
    echo "== PLAIN TRANSPORT: the tunnel will be neither encrypted nor authenticated"
else
    if [[ -n $demo ]]; then
        demo_pki "$demo"
        pki=$demo
    fi
    if [[ -n $pki ]]; then
        tls_secret "$context" initiator "$pki"
    else
        need_tls_secret "$context"
    fi
fi

dir=$ferry_deploy_dir/initiator
((k3d)) && dir=$ferry_deploy_dir/k3d/cluster-a
echo "== cluster A${context:+ ($context)}: applying ${dir#"$ferry_deploy_dir"/} with image $image, peer $peer_host:$peer_port, transport $transport"
render "$dir" "$image" "$peer_host" "$peer_port" | kc "$context" apply -f -

echo "== waiting for the initiators: ready = tunnel to cluster B up (up to ${timeout}s)"
if ! kc "$context" -n "$ferry_namespace" rollout status daemonset/ferry-initiator --timeout="${timeout}s"; then
    echo "Initiators not ready. Their logs say why (a wrong --peer, a firewall, certificates from" \
        "another CA, a transport other than cluster B's):" >&2
    kc "$context" -n "$ferry_namespace" logs -l app.kubernetes.io/component=initiator --tail=20 --prefix >&2 || true
    exit 1
fi
kc "$context" -n "$ferry_namespace" get pods -l app.kubernetes.io/component=initiator -o wide
echo
echo "Clients in cluster A connect to ferry-initiator.$ferry_namespace.svc.cluster.local:"
echo "9000 (TCP), 9001 (WebSocket, ws://.../), 9002 (gRPC, h2c)."
if ((k3d)); then
    echo "From the host: localhost:30100, ws://localhost:30101/, localhost:30102."
fi

if ((verify)); then
    echo "== verify: 8 connections x 1 MiB through the tunnel to cluster B's echo upstream"
    # The whole pod spec is in the override (kubectl run's default merge replaces the container
    # list): Pod Security "restricted" like ferry's pods, with the same seccomp profile.
    target=ferry-initiator.$ferry_namespace.svc.cluster.local:9000
    overrides='{"apiVersion":"v1","spec":{"automountServiceAccountToken":false,"restartPolicy":"Never",
 "securityContext":{"runAsNonRoot":true,"runAsUser":10001,"runAsGroup":10001,
  "seccompProfile":{"type":"Localhost","localhostProfile":"profiles/ferry-io-uring.json"}},
 "containers":[{"name":"ferry-verify","image":"'"$image"'","imagePullPolicy":"IfNotPresent",
  "stdin":true,"stdinOnce":true,
  "command":["/usr/local/bin/ferry-load","run","--target","'"$target"'","--mode","verify",
   "--connections","8","--bytes-per-connection","1MiB","--timeout","60s"],
  "securityContext":{"allowPrivilegeEscalation":false,"readOnlyRootFilesystem":true,
   "capabilities":{"drop":["ALL"]}}}]}}'
    kc "$context" -n "$ferry_namespace" delete pod ferry-verify --ignore-not-found >/dev/null
    kc "$context" -n "$ferry_namespace" run ferry-verify --rm -i --restart=Never --quiet \
        --image="$image" --overrides="$overrides"
fi
