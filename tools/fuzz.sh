#!/usr/bin/env bash
# Fuzzes ferry's parsers with libFuzzer for a while: builds the targets of tests/fuzz/ with clang
# (into build-fuzz/, set up once), then runs each one, or those named, for N seconds, seeded with
# its committed corpus and dictionary.
#
#   tools/fuzz.sh [--seconds N] [--out DIR] [TARGET...]
#
#   TARGET         tunnel_frame, http1_request, ws_frame, grpc_message, grpc_tunnel_chunk,
#                  grpc_server, tls_handshake, tls_record, tls_reassembly (the _fuzz suffix may
#                  be given too); default: every tests/fuzz/*_fuzz.cc
#   --seconds N    how long to fuzz each target (default 60)
#   --out DIR      where new inputs and crash artifacts go (default build-fuzz/fuzz-out/<time>)
#   -h, --help     this text
#   env JOBS       parallel compile jobs for the build (default: nproc)
#
# The committed corpus (tests/fuzz/corpus/<target>/) is only read. New interesting inputs go to
# DIR/<target>/new/, crash, leak, timeout and OOM reproducers to DIR/<target>/crashes/; both
# paths are printed. To keep new coverage, minimize it into the committed corpus:
#   build-fuzz/tests/fuzz/<target>_fuzz -merge=1 tests/fuzz/corpus/<target> DIR/<target>/new
# A crash repro goes into the corpus and becomes a unit test too (STYLE.md, "Tests, fuzzing").
# Exit status: 0 if no target found anything, 1 if one did, 2 on a usage error.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,/^set -e/{/^set -e/d;s/^# \{0,1\}//;p}' "$0"; }

seconds=60
out=
targets=()
while [[ $# -gt 0 ]]; do
    case $1 in
        --seconds)
            [[ $# -ge 2 ]] || { echo "fuzz.sh: --seconds needs a value" >&2; exit 2; }
            seconds=$2
            shift 2
            ;;
        --seconds=*) seconds=${1#*=}; shift ;;
        --out)
            [[ $# -ge 2 ]] || { echo "fuzz.sh: --out needs a value" >&2; exit 2; }
            out=$2
            shift 2
            ;;
        --out=*) out=${1#*=}; shift ;;
        -h | --help) usage; exit 0 ;;
        -*) echo "fuzz.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
        *) targets+=("${1%_fuzz}"); shift ;;
    esac
done
[[ $seconds =~ ^[1-9][0-9]*$ ]] || { echo "fuzz.sh: --seconds wants whole seconds > 0" >&2; exit 2; }

known=()
for f in tests/fuzz/*_fuzz.cc; do
    f=${f##*/}
    known+=("${f%_fuzz.cc}")
done
if [[ ${#targets[@]} -eq 0 ]]; then
    targets=("${known[@]}")
fi
for t in "${targets[@]}"; do
    if [[ " ${known[*]} " != *" $t "* ]]; then
        echo "fuzz.sh: no fuzz target '$t' (have: ${known[*]})" >&2
        exit 2
    fi
done

build="build-fuzz"
if [[ ! -f $build/build.ninja ]]; then
    CXX=clang++-14 meson setup "$build" -Dbuildtype=debug -Dfuzzing=true -Dtests=false -Dbench=false
fi
build_targets=()
for t in "${targets[@]}"; do
    build_targets+=("tests/fuzz/${t}_fuzz")
done
ninja -C "$build" -j "${JOBS:-$(nproc)}" "${build_targets[@]}"

# Absolute, so the paths printed and handed to libFuzzer do not depend on where it runs.
out=$(realpath -m -- "${out:-$build/fuzz-out/$(date +%Y%m%d-%H%M%S)}")
found=()
for t in "${targets[@]}"; do
    new=$out/$t/new
    crashes=$out/$t/crashes
    mkdir -p "$new" "$crashes"
    args=(-max_total_time="$seconds" -timeout=10 -print_final_stats=1
        -artifact_prefix="$crashes/")
    if [[ -f tests/fuzz/$t.dict ]]; then
        args+=(-dict="tests/fuzz/$t.dict")
    fi
    echo "== $t: ${seconds}s; new inputs -> $new, crash artifacts -> $crashes"
    # libFuzzer writes new inputs to the first directory only; the committed corpus is a seed.
    rc=0
    "$build/tests/fuzz/${t}_fuzz" "${args[@]}" "$new" "tests/fuzz/corpus/$t" 2>"$out/$t/fuzz.log" ||
        rc=$?
    grep -E '^(stat::|INFO: Loaded|Done [0-9]+ runs)' "$out/$t/fuzz.log" || true
    if [[ $rc -ne 0 ]] || [[ -n $(find "$crashes" -type f -print -quit) ]]; then
        echo "!! $t: libFuzzer exit $rc; log $out/$t/fuzz.log" >&2
        grep -E '^(==[0-9]+==ERROR|SUMMARY|artifact_prefix|Test unit written)' "$out/$t/fuzz.log" >&2 || true
        echo "   reproduce: $build/tests/fuzz/${t}_fuzz $crashes/<artifact>" >&2
        found+=("$t")
    else
        echo "   $t: no crash ($(find "$new" -type f | wc -l) new inputs)"
    fi
done

echo "new inputs and crash artifacts: $out"
if [[ ${#found[@]} -gt 0 ]]; then
    echo "FOUND problems in: ${found[*]} (reproducers in $out/<target>/crashes/)" >&2
    exit 1
fi
echo "no crashes in: ${targets[*]}"
