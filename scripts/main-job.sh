#!/usr/bin/env bash
# Kiln's main job, as far as it goes today: build the example models with the
# C++ builder, print their IR, and run their forward pass (the loss) with the
# reference interpreter. Training with compiled code replaces this when the
# autodiff and CPU backend issues land.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
mkdir -p build/examples-out
./build/examples/kiln-export-examples build/examples-out
for model in mlp cnn gpt; do
  echo
  echo "== $model: IR built by the C++ builder (build/examples-out/$model.kir, first lines)"
  head -n 14 "build/examples-out/$model.kir"
  echo "   ... ($(wc -l < "build/examples-out/$model.kir") lines in all)"
  echo "== $model: forward pass (the loss) on the reference interpreter"
  ./build/tools/kiln run "build/examples-out/$model.kir" --target=interp --seed=1
done
