#!/usr/bin/env bash
# Builds Kiln with AddressSanitizer + UndefinedBehaviorSanitizer (and LeakSanitizer,
# part of ASan) in build-asan/ and runs the whole ctest suite under them. Any
# report aborts the test that triggered it, so the suite passes only when clean.
#
#   bash scripts/sanitize.sh                 # everything (see the timing below)
#   bash scripts/sanitize.sh -R 'lit|cli-'   # extra arguments go to ctest
#   KILN_SANITIZE_JOBS=1 bash scripts/sanitize.sh   # on a busy machine
#   KILN_SANITIZE_CPU=ON bash scripts/sanitize.sh    # with the CPU backend (JIT),
#                                                   # in build-asan-cpu/
#   KILN_SANITIZE_CUDA=ON bash scripts/sanitize.sh   # with CUDA codegen and runtime
#                                                   # (the emulated device), build-asan-cuda/
#
# Debug with -O1: assertions stay on, and -O1 keeps the run time down.
#
# With the CPU backend (KILN_SANITIZE_CPU=ON: the JIT, the kernels' runtime, AOT,
# the embed package), 2026-11-26, 2 jobs, ccache warm: build 182 s, the whole
# suite (597 tests) 117 s, no report.
#
# Measured on the 2-core development machine, busy with other builds, one job:
# build from scratch 536 s, the whole suite (418 tests) 145 s, of which the
# dump-stages test takes 95 s. CI does not run this yet. If it does and time
# is short, run the subset
#   bash scripts/sanitize.sh -E dump-stages
# (about 50 s of tests): every unit test (parsers, loaders, verifier, passes,
# interpreter kernels, fuzz regressions), the lit tests and the command-line
# bad-input matrix; dump-stages only re-runs, stage by stage, code the others
# already cover.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

jobs="${KILN_SANITIZE_JOBS:-$(nproc)}"
cpu="${KILN_SANITIZE_CPU:-OFF}"
cuda="${KILN_SANITIZE_CUDA:-OFF}"
dir=build-asan
[ "$cpu" = ON ] && dir=build-asan-cpu
[ "$cuda" = ON ] && dir=$dir-cuda
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
start=$(date +%s)
mkdir -p "$dir"
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-g -O1" \
  -DKILN_SANITIZE=address,undefined "${launcher[@]}" \
  -DKILN_ENABLE_CPU_BACKEND="$cpu" -DKILN_ENABLE_CUDA="$cuda" > "$dir/configure.log" || {
  cat "$dir/configure.log"; exit 1; }
ninja -C "$dir" -j "$jobs"
built=$(date +%s)

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
# LLVM and MLIR (not instrumented) keep some allocations for the process's
# lifetime; leaks are reported only for Kiln's own frames.
export LSAN_OPTIONS=suppressions=$PWD/scripts/lsan-suppressions.txt
# abort_on_error for UBSan too: a finding is then a crash, which `not` in the
# lit tests and the exit-code checks of tests/e2e cannot mistake for exit 1.
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:abort_on_error=1
status=0
ctest --test-dir "$dir" --output-on-failure -j "$jobs" --timeout 1800 "$@" || status=$?
done=$(date +%s)
echo "sanitize: build $((built - start)) s, tests $((done - built)) s (ASan + UBSan, $jobs jobs)"
exit $status
