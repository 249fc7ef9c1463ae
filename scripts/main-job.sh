#!/usr/bin/env bash
# Kiln's main job, as far as it goes today: train an MLP on the digits data
# set with the whole training step compiled into one graph (forward, loss,
# gradients, Adam update) and run by the reference interpreter; then show the
# training step of the benchmark MLP as IR and run a few steps of it. The CPU
# backend (compiled code instead of the interpreter) replaces the interpreter
# when it lands.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh

echo
echo "== Training a 64-128-10 MLP on digits (1437 train / 360 held-out images)"
./build/examples/mlp_digits

echo
echo "== The training step of examples/mlp.kir (784-512-512-10, SGD with momentum), as IR"
./build/tools/kiln compile examples/mlp.kir --train --optimizer=momentum --lr=0.01 -o build/mlp-step.kir
grep -E '^graph|^    %|update' build/mlp-step.kir | head -n 24
echo "   ... ($(wc -l < build/mlp-step.kir) lines in all: build/mlp-step.kir)"
echo
echo "== Three steps of it on one seeded random batch (the loss falls)"
./build/tools/kiln run build/mlp-step.kir --steps=3 --seed=1
