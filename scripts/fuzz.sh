#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang-19, ASan and UBSan in
# build-fuzz/ and runs each for SECONDS (default 60):
#
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]     TARGET: kir json safetensors npy (default: all)
#
# KILN_FUZZ_JOBS=N runs N targets at a time (default 1; each uses one core).
# The seeds in tests/fuzz/corpus/TARGET are only read; new inputs go to
# build-fuzz/corpus/TARGET, crashing inputs to build-fuzz/crashes/TARGET-*,
# each target's output to build-fuzz/logs/TARGET.log. A crash found becomes a
# file under tests/fuzz/regressions/TARGET/, replayed by kiln-unit-tests
# (FuzzRegression.*). Prints executions and executions per second per target;
# exits 1 if any target found something.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="$root/build-fuzz"
all_targets=(kir json safetensors npy)

seconds=${1:-60}
[ $# -gt 0 ] && shift
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -eq 0 ]; then
  echo "fuzz.sh: SECONDS must be a positive integer, got '$seconds'" >&2
  exit 2
fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
  [[ " ${all_targets[*]} " == *" $t "* ]] || { echo "fuzz.sh: unknown target '$t' (targets: ${all_targets[*]})" >&2; exit 2; }
done
jobs=${KILN_FUZZ_JOBS:-1}

bash "$root/scripts/setup-fuzz.sh"
mkdir -p "$build/logs" "$build/crashes"
# -O1 -g without NDEBUG: assertions are findings too.
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=clang++-19 \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
  -DKILN_BUILD_FUZZERS=ON -DKILN_BUILD_TESTS=OFF -DKILN_ENABLE_CPU_BACKEND=OFF \
  -DKILN_ENABLE_CUDA=OFF >"$build/logs/configure.log" 2>&1 || { cat "$build/logs/configure.log"; exit 1; }
ninja -C "$build" -j"${KILN_FUZZ_BUILD_JOBS:-2}" "${targets[@]/#/fuzz_}"

# The .kir dictionary: the syntax tokens plus every op and attribute name of OpKind.def.
{
  cat "$root/tests/fuzz/dict/kir.dict"
  grep -o '^KILN_OP([A-Za-z0-9]*, *"[a-z_0-9]*"' "$root/ir/OpKind.def" | sed 's/.*\("[a-z_0-9]*"\)/\1/'
  grep -o '[a-z_]*:\(int\|ints\|float\|bool\|dtype\|string\|literal\)' "$root/ir/OpKind.def" |
    sed 's/:.*//' | sort -u | sed 's/.*/"&"/'
} >"$build/kir.dict"

run_target() {
  local t=$1 dict="$root/tests/fuzz/dict/$1.dict"
  [ "$t" = kir ] && dict="$build/kir.dict"
  mkdir -p "$build/corpus/$t"
  local start=$SECONDS rc=0
  "$build/tests/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -dict="$dict" -artifact_prefix="$build/crashes/$t-" \
    "$build/corpus/$t" "$root/tests/fuzz/corpus/$t" >"$build/logs/$t.log" 2>&1 || rc=$?
  echo "$rc $((SECONDS - start))" >"$build/logs/$t.result"
}

echo "fuzz.sh: ${targets[*]} for ${seconds}s each, $jobs at a time (logs in $build/logs)"
for t in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  run_target "$t" &
done
wait

status=0
printf '%-12s %8s %14s %10s  %s\n' target seconds executions exec/s result
for t in "${targets[@]}"; do
  read -r rc took <"$build/logs/$t.result"
  log="$build/logs/$t.log"
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  result=ok
  if [ "$rc" -ne 0 ]; then
    status=1
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
    result="FOUND (exit $rc) ${artifact:-see $log}"
  fi
  printf '%-12s %8s %14s %10s  %s\n' "$t" "$took" "${runs:-?}" "${rate:-?}" "$result"
done
exit $status
