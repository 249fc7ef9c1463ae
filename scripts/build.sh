#!/usr/bin/env bash
# Configures and builds Kiln in build/ (Release, Ninja). Extra arguments go to cmake.
set -euo pipefail
cd "$(dirname "$0")/.."
# The CPU backend (MLIR/LLVM, OpenBLAS) is on; CUDA code generation does not exist yet.
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DKILN_ENABLE_CPU_BACKEND=ON -DKILN_ENABLE_CUDA=OFF "$@" > build-configure.log || {
  cat build-configure.log; exit 1; }
ninja -C build
