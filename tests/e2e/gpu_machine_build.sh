#!/usr/bin/env bash
# The build of the GPU machines (shared/device/gpu-check): the CPU backend off,
# CUDA on, no zlib. Configures SOURCE into DIR and builds what gpu-check runs
# (kiln, kiln-gpu-tests, kiln-bench-gpu), then checks that kiln links none of
# LLVM, MLIR, OpenBLAS, OpenMP or zlib, which those machines do not have.
#   bash tests/e2e/gpu_machine_build.sh SOURCE DIR
set -euo pipefail
source_dir=$1
dir=$2
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S "$source_dir" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DKILN_ENABLE_CPU_BACKEND=OFF \
  -DKILN_ENABLE_CUDA=ON -DCMAKE_DISABLE_FIND_PACKAGE_ZLIB=ON "${launcher[@]}" > "$dir.configure.log" 2>&1 || {
  cat "$dir.configure.log"; exit 1; }
ninja -C "$dir" kiln kiln-gpu-tests kiln-bench-gpu
libraries=$(ldd "$dir/tools/kiln")
if grep -Ei 'LLVM|MLIR|openblas|gomp|libz\.' <<< "$libraries"; then
  echo "gpu_machine_build: kiln links a library the GPU machines do not have (above)" >&2
  exit 1
fi
echo "gpu_machine_build: kiln, kiln-gpu-tests and kiln-bench-gpu build with the CPU backend off"
