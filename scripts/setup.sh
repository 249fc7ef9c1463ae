#!/usr/bin/env bash
# Installs the Debian 12 packages Kiln's build and tests need, and any extra
# packages named as arguments (scripts/setup-fuzz.sh). Idempotent, and fast
# when everything is present (it only calls apt-get for what is missing).
set -euo pipefail

packages=(
  build-essential cmake ninja-build python3    # toolchain
  nlohmann-json3-dev                           # JSON graph form, safetensors headers
  zlib1g-dev                                   # gzip-compressed example data (examples/data)
  libgtest-dev libgmock-dev                    # unit tests
  llvm-19-tools                                # lit and FileCheck for the lit tests
  libopenblas-openmp-dev                       # CPU runtime: sgemm on the OpenMP threads Kiln's loops use
  llvm-19-dev libmlir-19-dev mlir-19-tools     # CPU backend: MLIR -> LLVM code generation and JIT
)

packages+=("$@")

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi
echo "setup: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
