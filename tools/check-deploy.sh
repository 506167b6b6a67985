#!/usr/bin/env bash
# Offline checks of everything that ships beside the binary; no cluster, no container daemon:
#   - shellcheck on every shell script in the repository;
#   - every kustomization under deploy/ renders with Debian 12's kubectl (1.20, whose built-in
#     kustomize is the oldest the bundle supports), and every object validates against the
#     Kubernetes API schemas, with ferry's pod rules, the seccomp profile and the Grafana
#     dashboard's metric names checked by tools/check-deploy.js;
#   - deploy/Dockerfile builds with the commands of README.md's "Build" block (one source of
#     truth): its RUN lines call tools/setup.sh and the same meson and ninja lines, the runtime
#     stage is Debian 12 and runs as a non-root user.
# tools/setup.sh installs what it needs (shellcheck, kubernetes-client, npm + tools/node_modules).
#   tools/check-deploy.sh
set -euo pipefail
cd "$(dirname "$0")/.."

fail=0
bad() {
    echo "FAIL $*"
    fail=1
}

# ---- shell scripts ----------------------------------------------------------------------------
scripts=()
while IFS= read -r f; do
    if [[ $f == *.sh ]] || head -n 1 "$f" | grep -qE '^#!.*\b(ba)?sh\b'; then
        scripts+=("$f")
    fi
done < <(git ls-files --cached --others --exclude-standard | grep -v '^shared/' | while IFS= read -r f; do
    [[ -f $f ]] && echo "$f"
done)
if shellcheck -x "${scripts[@]}"; then
    echo "shellcheck: ${#scripts[@]} scripts clean"
else
    bad "shellcheck (above)"
fi

# ---- kustomizations ---------------------------------------------------------------------------
# Debian's kubectl: unpacked by tools/setup.sh where another package owns /usr/bin/kubectl.
kubectl=.cache/kubernetes-client/usr/bin/kubectl
if [[ ! -x $kubectl ]]; then
    kubectl=/usr/bin/kubectl
    [[ $(dpkg-query -S "$kubectl" 2>/dev/null | cut -d: -f1) == kubernetes-client ]] ||
        { echo "Debian's kubectl (kubernetes-client) is missing: run tools/setup.sh"; exit 1; }
fi
[[ -d tools/node_modules/kubernetes-models ]] ||
    { echo "tools/node_modules is missing: run tools/setup.sh"; exit 1; }

render=$(mktemp -d)
trap 'rm -rf "$render"' EXIT
n=0
while IFS= read -r k; do
    dir=$(dirname "$k")
    out=$render/${dir//\//__}.yaml
    if "$kubectl" kustomize "$dir" >"$out" 2>"$render/err"; then
        n=$((n + 1))
    else
        bad "$dir does not render with $("$kubectl" version --client --short 2>/dev/null || echo kubectl 1.20): $(head -n 3 "$render/err")"
        rm -f "$out"
    fi
done < <(git ls-files --cached --others --exclude-standard 'deploy/*kustomization.yaml' | sort)
echo "kustomize: $n kustomizations render with Debian's kubectl"
node tools/check-deploy.js "$render" || fail=1

# ---- Dockerfile = README's build commands -----------------------------------------------------
# The README's block between the "build-commands" markers, and the Dockerfile's RUN commands,
# each split into single commands at "&&".
commands() { sed -e ':a' -e '/\\$/{N;s/\\\n/ /;ba' -e '}' | sed -e 's/&&/\n/g' | sed -e 's/^ *//' -e 's/ *$//' -e 's/  */ /g'; }
readme=$(sed -n '/<!-- build-commands -->/,/<!-- \/build-commands -->/p' README.md | { grep -v '^<!--\|^```' || true; } | commands)
docker=$(awk '/^RUN /{r=1} r{print} r && !/\\$/{r=0}' deploy/Dockerfile | sed 's/^RUN //' | commands)
if [[ -z $readme ]]; then
    bad "README.md has no <!-- build-commands --> block"
fi
while IFS= read -r cmd; do
    [[ -z $cmd ]] && continue
    grep -qxF -- "$cmd" <<<"$docker" || bad "deploy/Dockerfile does not run README's build command: $cmd"
done <<<"$readme"
while IFS= read -r cmd; do
    if [[ $cmd == meson* || $cmd == ninja* || $cmd == *setup.sh* ]]; then
        grep -qxF -- "$cmd" <<<"$readme" || bad "deploy/Dockerfile runs '$cmd', which README.md's build block does not"
    fi
done <<<"$docker"
stages=$(grep -c '^FROM ' deploy/Dockerfile)
((stages >= 2)) || bad "deploy/Dockerfile is not multi-stage"
grep -q '^ARG DEBIAN_IMAGE=debian:bookworm' deploy/Dockerfile || bad "deploy/Dockerfile's base is not Debian 12 (bookworm)"
user=$(grep '^USER ' deploy/Dockerfile | tail -n 1 | awk '{print $2}')
[[ -n $user && ${user%%:*} != 0 && ${user%%:*} != root ]] || bad "deploy/Dockerfile's last stage must run as a non-root USER"
if ((fail == 0)); then
    echo "Dockerfile: runs README's build commands; multi-stage on Debian 12, USER $user"
fi
exit "$fail"
