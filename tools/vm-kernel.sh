#!/usr/bin/env bash
# vm-kernel.sh - give shared/vm/run-in-vm.sh a Debian kernel >= 6.14, the first
# with kTLS TLS 1.3 rekey (a second TLS_TX/TLS_RX setsockopt installs the next
# key instead of failing with EBUSY).  The harness only boots kernels apt knows,
# and this machine's apt knows bookworm only (6.1, 6.12).  So we keep a private
# apt configuration (own sources, lists, cache and an empty dpkg status: the
# system's apt state is never touched) that adds a newer suite of the mirror
# the machine already uses.
#
# Usage: tools/vm-kernel.sh [--refresh]
#            prints  APT_CONFIG=...  and  FERRY_VM_KERNEL=<package>  (eval-able)
#        tools/vm-kernel.sh [--refresh] --run [HARNESS OPTIONS] -- PROGRAM [ARGS...]
#            runs PROGRAM in the VM on that kernel (exit status: the harness's)
# Exits 77 with a reason on stderr when no such kernel can be had, so that
# tests skip visibly.  Env: FERRY_VM_CACHE, FERRY_VM (harness path),
# FERRY_VM_SUITES (default "trixie-backports sid", tried in order).
# Under emulation (no vmx/svm) give the harness --cpus 1 (or FERRY_VM_CPUS=1):
# with two vCPUs this kernel now and then dies at boot on a stale int3 of its
# own live code patching; tests/ktls_vm.sh, which the tests go through, says why.
set -euo pipefail

MIN=6.14
SUITES=${FERRY_VM_SUITES:-trixie-backports sid}
DIR=${FERRY_VM_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/ferry-vm}/apt-newer
CONF=$DIR/apt.conf
HARNESS=${FERRY_VM:-$(dirname "$0")/../../shared/vm/run-in-vm.sh}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
MAX_AGE_MIN=$((7 * 24 * 60)) # re-resolve the kernel weekly (backports drops old ones)

skip() {
	echo "vm-kernel: skip: $*" >&2
	exit 77
}

REFRESH=0
RUN=0
while [[ $# -gt 0 ]]; do
	case $1 in
	--refresh) REFRESH=1; shift ;;
	--run) RUN=1; shift; break ;;
	-h | --help) sed -n '2,/^set -e/{/^set -e/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
	*) echo "vm-kernel: unknown option '$1' (see --help)" >&2; exit 2 ;;
	esac
done

# The machine's own Debian mirror: the URI of its "<codename> main" source,
# from one-line (.list) or deb822 (.sources) files.  No host name is built in.
# shellcheck source=/dev/null
CODENAME=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
[[ -n $CODENAME ]] || skip "no VERSION_CODENAME in /etc/os-release (not Debian?)"
host_mirror() {
	local f
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
		[[ -f $f ]] || continue
		if [[ $f == *.sources ]]; then
			awk -v s="$CODENAME" 'BEGIN { RS = "" }
				{	t = u = su = c = ""; en = "yes"; n = split($0, L, "\n")
					for (i = 1; i <= n; i++) {
						if (L[i] ~ /^[ \t]*#/) continue
						k = tolower(L[i]); sub(/:.*/, "", k); v = L[i]; sub(/^[^:]*:[ \t]*/, "", v)
						if (k == "types") t = v; else if (k == "uris") u = v
						else if (k == "suites") su = v; else if (k == "components") c = v
						else if (k == "enabled") en = tolower(v)
					}
					if (en != "no" && (" " t " ") ~ / deb / && (" " su " ") ~ (" " s " ") &&
					    (" " c " ") ~ / main /) { split(u, U, " "); print U[1]; exit }
				}' "$f"
		else
			sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" |
				awk -v s="$CODENAME" '$1 == "deb" && $3 == s { for (i = 4; i <= NF; i++) if ($i == "main") { print $2; exit } }'
		fi
	done | head -n 1
}
MIRROR=$(host_mirror)
[[ -n $MIRROR ]] || skip "no '$CODENAME main' source in /etc/apt to take the mirror from"
# debian-archive-keyring >= 2023.3+deb12u2 (bookworm) already holds the trixie keys
[[ -r $KEYRING ]] || skip "$KEYRING missing (apt-get install debian-archive-keyring)"

mkdir -p "$DIR/lists/partial" "$DIR/cache/archives/partial" "$DIR/none.d"
[[ -f $DIR/status ]] || : >"$DIR/status"
# A scratch name of its own: runs that start together (two checkouts, say) each write the
# whole file and rename it into place, instead of racing on one "$CONF.new".
conf_tmp=$(mktemp "$CONF.XXXXXX")
{
	echo "Dir::State \"$DIR\"; Dir::State::Lists \"$DIR/lists\"; Dir::State::status \"$DIR/status\";"
	echo "Dir::Cache \"$DIR/cache\"; Dir::Etc::SourceList \"$DIR/sources.list\";"
	echo "Dir::Etc::SourceParts \"$DIR/none.d\"; Dir::Etc::Preferences \"$DIR/preferences\";"
	echo "Dir::Etc::PreferencesParts \"$DIR/none.d\"; Acquire::Languages \"none\";"
	echo "APT::Architecture \"amd64\"; APT::Architectures { \"amd64\"; };"
	# _apt cannot enter /root/.cache: fetch as root, like the harness does
	if [[ $(id -u) == 0 ]]; then echo 'APT::Sandbox::User "root";'; fi
} >"$conf_tmp" && chmod 644 "$conf_tmp" && mv "$conf_tmp" "$CONF"
export APT_CONFIG=$CONF

# newest linux-image-<ver>-amd64 >= MIN that holds the kernel itself: from 6.19
# on Debian's linux-image-* is an empty package depending on linux-binary-* and
# linux-modules-*, which the harness (one .deb with /boot and /lib/modules)
# cannot use.  Signed or not makes no difference to QEMU's direct kernel boot.
pick_kernel() {
	local names p v
	mapfile -t names < <(apt-cache pkgnames linux-image- | grep -E '^linux-image-[0-9]+\.[0-9]+[^-]*-amd64$')
	[[ ${#names[@]} -gt 0 ]] || return 0
	p=$(apt-cache show --no-all-versions "${names[@]}" |
		awk 'BEGIN { RS = "" } !/\nDepends:[^\n]*linux-(binary|modules)-/ { sub(/^Package: /, ""); sub(/\n.*/, ""); print }' |
		sort -V | tail -n 1 || true)
	v=${p#linux-image-}
	v=${v%%[+-]*}
	if [[ -n $p ]] && printf '%s\n%s\n' "$MIN" "$v" | sort -C -V; then echo "$p"; fi
}

# one resolver at a time (parallel tests share the lists)
exec 8>"$DIR/.lock"
flock 8
PKG=
if [[ $REFRESH == 0 && -n $(find "$DIR/result" -mmin -"$MAX_AGE_MIN" 2>/dev/null) ]]; then
	read -r PKG <"$DIR/result"
fi
if [[ -z $PKG ]]; then
	why=
	for suite in $SUITES; do
		# the host suite stays in: the harness takes busybox-static from it
		{
			printf 'deb [signed-by=%s] %s %s main\n' "$KEYRING" "$MIRROR" "$CODENAME"
			printf 'deb [signed-by=%s] %s %s main\n' "$KEYRING" "$MIRROR" "$suite"
		} >"$DIR/sources.list"
		if ! apt-get -q --error-on=any update >"$DIR/update.log" 2>&1; then
			why+="$suite: apt-get update failed: $(grep -E '^(E|W):' "$DIR/update.log" | head -n 1); "
			continue
		fi
		PKG=$(pick_kernel)
		[[ -n $PKG ]] && break
		why+="$suite: no one-package linux-image >= $MIN (split 6.19+ ones don't fit run-in-vm.sh); "
	done
	if [[ -n $PKG ]]; then
		echo "$PKG" >"$DIR/result"
	elif [[ -s $DIR/result ]]; then # offline, say: the harness has it cached
		read -r PKG <"$DIR/result"
		echo "vm-kernel: warning: ${why%; }; keeping $PKG" >&2
	else
		skip "${why%; }"
	fi
fi
flock -u 8

if [[ $RUN == 0 ]]; then
	printf 'APT_CONFIG=%q\nFERRY_VM_KERNEL=%q\n' "$CONF" "$PKG"
	exit 0
fi
[[ -x $HARNESS ]] || skip "harness not found at $HARNESS (set FERRY_VM)"
# with our APT_CONFIG the harness must not apt-get install anything: its
# tools have to be there already (6.18: .ko.xz modules, zstd bzImage)
for t in qemu-system-x86_64 xz zstd; do
	command -v "$t" >/dev/null || skip "$t missing (apt-get install qemu-system-x86 xz-utils zstd)"
done
exec "$HARNESS" --kernel "$PKG" "$@"
