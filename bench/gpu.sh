#!/bin/bash
# bench/gpu.sh: Kiln against PyTorch eager and torch.compile on the GPU
# workloads of shared/BENCHMARKS.md (mlp-gpu, gpt2-gpu), on one GPU, side by
# side in one run, from the same initial weights and input batch; one table.
#
#   [KILN_BUILD=build-gpu] [PYTHON=python3] [OUT=/tmp/kiln-out] bash bench/gpu.sh
#       [--workloads=mlp-gpu,gpt2-gpu] [--systems=torch-eager,torch-compile]
#       [--steps=50] [--warmup=5] [--peer-timeout=300] [--tiny]
#
# 1. $KILN_BUILD/bench/kiln-bench-gpu, once per workload: the cuBLASLt sgemm
#    rate (f32, TF32 off), then the workload (cold and warm compile, warm-up,
#    timed steps), exporting its initial params and input batch;
# 2. bench/peers/torch_gpu.py per workload and system, loading that export;
# 3. bench/gpu_table.py: the table (median and min step, TFLOP/s and % of the
#    sgemm rate from Kiln's FLOP count, peak device memory, Kiln / peer, and
#    whether the peers' losses of steps 1 and 2 agree with Kiln's to 1e-3).
# --tiny: the models at the CPU workloads' sizes, a check of the whole run in
# a minute (not the benchmark; the table says so).
# Everything measured goes to $OUT (default /tmp/kiln-out): kiln-bench-gpu.*.json,
# torch-*.*.json, their stderr (*.err) and bench-gpu.json (all of it, one file).
# Exits 1 without a GPU (kiln-bench-gpu's "no CUDA driver" line), when a run
# fails or when a loss check fails; 0 otherwise.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${KILN_BUILD:-build-gpu}
python=${PYTHON:-python3}
out=${OUT:-/tmp/kiln-out}
workloads=mlp-gpu,gpt2-gpu
systems=torch-eager,torch-compile
steps=50
warmup=5
peer_timeout=300
tiny=()

for arg in "$@"; do
  case "$arg" in
    --workloads=*) workloads=${arg#*=} ;;
    --systems=*) systems=${arg#*=} ;;
    --steps=*) steps=${arg#*=} ;;
    --warmup=*) warmup=${arg#*=} ;;
    --peer-timeout=*) peer_timeout=${arg#*=} ;;
    --tiny) tiny=(--tiny) ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "gpu.sh: error: unknown argument '$arg' (see --help)" >&2; exit 1 ;;
  esac
done
for n in "$steps" "$warmup" "$peer_timeout"; do
  case "$n" in ''|*[!0-9]*) echo "gpu.sh: error: '$n' is not a number" >&2; exit 1 ;; esac
done

bench="$build/bench/kiln-bench-gpu"
if [ ! -x "$bench" ]; then
  echo "gpu.sh: error: $bench not found: build it with 'cmake --build $build --target kiln-bench-gpu'" >&2
  exit 1
fi
mkdir -p "$out"
export_dir=$(mktemp -d "${TMPDIR:-/tmp}/kiln-gpu-export.XXXXXX")
trap 'rm -rf "$export_dir"' EXIT

failed=0
kiln_files=()
IFS=, read -r -a workload_list <<< "$workloads"
IFS=, read -r -a system_list <<< "$systems"
echo "gpu.sh: $(date -u '+%Y-%m-%d %H:%M UTC'); $steps timed steps after $warmup warm-up; results in $out"

# Kiln, one process per workload: a failure of one leaves the others' figures.
for w in "${workload_list[@]}"; do
  echo "gpu.sh: kiln-bench-gpu $w"
  start=$SECONDS
  "$bench" --json --workloads="$w" --steps="$steps" --warmup="$warmup" --export-dir="$export_dir" \
    ${tiny[@]+"${tiny[@]}"} > "$out/kiln-bench-gpu.$w.json" 2> "$out/kiln-bench-gpu.$w.err"
  rc=$?
  if [ $rc -ne 0 ]; then
    cat "$out/kiln-bench-gpu.$w.err" >&2
    if grep -q "no CUDA" "$out/kiln-bench-gpu.$w.err"; then
      exit 1 # no GPU here: nothing else can run
    fi
    echo "gpu.sh: kiln-bench-gpu $w failed (exit $rc); the peers still run, without Kiln's initial values" >&2
    rm -f "$out/kiln-bench-gpu.$w.json"
    failed=1
  else
    kiln_files+=("$out/kiln-bench-gpu.$w.json")
  fi
  echo "gpu.sh: kiln-bench-gpu $w: $((SECONDS - start)) s"
done

# The peers, one process per workload and system (its own peak memory).
peer_files=()
for w in "${workload_list[@]}"; do
  init=()
  [ -f "$export_dir/$w.safetensors" ] && init=(--init="$export_dir/$w.safetensors")
  for s in "${system_list[@]}"; do
    echo "gpu.sh: $s $w"
    start=$SECONDS
    timeout "$peer_timeout" "$python" "$root/bench/peers/torch_gpu.py" --system="$s" --workload="$w" \
      --steps="$steps" --warmup="$warmup" ${init[@]+"${init[@]}"} \
      ${tiny[@]+"${tiny[@]}"} > "$out/$s.$w.json" 2> "$out/$s.$w.err"
    rc=$?
    if [ $rc -ne 0 ]; then
      tail -5 "$out/$s.$w.err" >&2
      [ $rc -eq 124 ] && echo "gpu.sh: $s $w: stopped after --peer-timeout=$peer_timeout s" >&2
      echo "gpu.sh: $s $w failed (exit $rc)" >&2
      echo "{\"system\": \"$s\", \"workload\": \"$w\", \"error\": \"exit $rc\"}" > "$out/$s.$w.json"
      failed=1
    fi
    peer_files+=("$out/$s.$w.json")
    echo "gpu.sh: $s $w: $((SECONDS - start)) s"
  done
  rm -f "$export_dir/$w.safetensors" # 0.5 GB for gpt2-gpu
done

echo
"$python" "$root/bench/gpu_table.py" --steps="$steps" --warmup="$warmup" --json="$out/bench-gpu.json" \
  --kiln ${kiln_files[@]+"${kiln_files[@]}"} --peers ${peer_files[@]+"${peer_files[@]}"} --workloads="$workloads" --systems="$systems"
rc=$?
[ $rc -ne 0 ] && failed=1
exit $failed
