#!/usr/bin/env bash
# Kiln's main job, as far as it goes today: build the example models with the
# C++ builder, print their IR, and run their forward pass (the loss) with the
# reference interpreter. Training with compiled code replaces this when the
# autodiff and CPU backend issues land.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
for model in mlp cnn gpt; do
  echo "== $model: IR (first lines of examples/$model.kir, regenerated from the C++ builder)"
  ./build/examples/kiln-export-examples --model "$model" --out-dir build/examples-out
  head -n 12 "build/examples-out/$model.kir"
  echo "   ... ($(wc -l < "build/examples-out/$model.kir") lines)"
  echo "== $model: forward pass on the reference interpreter"
  ./build/tools/kiln run "build/examples-out/$model.kir" --target=interp --seed=1
done
