#!/usr/bin/env bash
# Sets up, builds and runs every test: the layering and format checks, an optimized build with
# warnings as errors, and a debug build under ASan+UBSan; plus the fuzz targets over their
# committed corpora (clang).
#   tools/test.sh            everything (what CI runs)
#   tools/test.sh --quick    the optimized build only
set -euo pipefail
cd "$(dirname "$0")/.."

tools/setup.sh

echo "== static checks: layering, formatting, shell scripts and the deploy bundle"
tools/check_layering.py
tools/check-deploy.sh
# shellcheck disable=SC2046
if ! clang-format --dry-run --Werror $(git ls-files '*.cc' '*.h') 2>/tmp/ferry-format.log; then
    head -n 20 /tmp/ferry-format.log
    echo "clang-format: the files above are not formatted (run clang-format -i on them)"
    exit 1
fi

jobs=$(nproc)
passed=0
failed=0
skipped=0
run_suite() {
    local dir=$1
    shift
    if [[ ! -f "$dir/build.ninja" ]]; then
        meson setup "$dir" "$@"
    fi
    ninja -C "$dir" -j "$jobs"
    local rc=0
    meson test -C "$dir" --print-errorlogs --num-processes 1 --no-rebuild | tee "$dir/test-summary.txt" || rc=$?
    passed=$((passed + $(awk '/^Ok:/ {print $2}' "$dir/test-summary.txt")))
    failed=$((failed + $(awk '/^Fail:/ || /^Timeout:/ {n += $2} END {print n + 0}' "$dir/test-summary.txt")))
    skipped=$((skipped + $(awk '/^Skipped:/ {print $2}' "$dir/test-summary.txt")))
    if ((rc != 0)); then
        echo "$passed passed, $failed failed, $skipped skipped"
        exit "$rc"
    fi
}

echo "== release (-Dwerror=true)"
run_suite build -Dbuildtype=release -Dwerror=true
if [[ "${1:-}" == "--quick" ]]; then
    echo "$passed passed, $failed failed, $skipped skipped"
    exit 0
fi
echo "== debug + ASan/UBSan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    run_suite build-asan -Dbuildtype=debug -Db_sanitize=address,undefined -Dwerror=true -Dbench=false
echo "== fuzz targets over the committed corpora (clang)"
CXX=clang++-14 run_suite build-fuzz -Dbuildtype=debug -Dfuzzing=true -Dtests=false -Dbench=false
echo "$passed passed, $failed failed, $skipped skipped"
