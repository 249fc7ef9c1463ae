#!/usr/bin/env bash
# Configures and builds Kiln in build/ (Release, Ninja). Extra arguments go to cmake.
set -euo pipefail
cd "$(dirname "$0")/.."
# The CPU backend (MLIR/LLVM, OpenBLAS) is on. CUDA code generation is on when
# the CUDA toolkit is found (/usr/local/cuda): NVRTC compiles every generated
# kernel in the tests, no GPU needed.
cuda=OFF
if [ -x /usr/local/cuda/bin/nvcc ] || [ -e /usr/local/cuda/include/nvrtc.h ]; then
  cuda=ON
fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DKILN_ENABLE_CPU_BACKEND=ON -DKILN_ENABLE_CUDA=$cuda "$@" > build-configure.log || {
  cat build-configure.log; exit 1; }
ninja -C build
