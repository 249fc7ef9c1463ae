#!/usr/bin/env bash
# Kiln's main job: train an MLP on the digits data set with the whole
# training step (forward, loss, gradients, Adam update) compiled into one
# graph, fused, memory-planned and compiled by the CPU backend, then score it
# with the same model compiled ahead of time to an executable; then show the
# training step of the benchmark MLP as IR and run it compiled.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh

echo
echo "== Training a 64-128-10 MLP on digits (1437 train / 360 held-out images)"
./build/examples/mlp_digits --save=build/digits

echo
echo "== The same model compiled ahead of time to an executable, run on the trained params"
echo "   and the 360 held-out images (its loss and accuracy are those above)"
./build/tools/kiln compile build/digits/model.kir --target=cpu -o build/digits/mlp_digits_aot
./build/digits/mlp_digits_aot --params=build/digits/params.safetensors \
  --inputs=build/digits/heldout.safetensors

echo
echo "== The training step of examples/mlp.kir (784-512-512-10, SGD with momentum): simplified,"
echo "   fused and memory-planned IR (kernels: fusions and library ops; buffers: the arena plan)"
./build/tools/kiln compile examples/mlp.kir --train --optimizer=momentum --lr=0.01 -o build/mlp-step.kir \
  --report=fusion,memory | grep -E '^@|arena bytes|max-live|one buffer'
sed -n '17,40p' build/mlp-step.kir
echo "   ... ($(wc -l < build/mlp-step.kir) lines in all: build/mlp-step.kir)"
echo
echo "== Three steps of it, compiled for the CPU, on one seeded random batch (the loss falls)"
./build/tools/kiln run build/mlp-step.kir --target=cpu --steps=3 --seed=1
