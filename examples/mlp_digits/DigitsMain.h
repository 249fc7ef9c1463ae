// The main program of a digits example (mlp_digits, cnn_digits): its options,
// the training run with progress on stdout, and the verdict.
#pragma once

#include "examples/mlp_digits/DigitsTraining.h"

#include <functional>

namespace kiln::examples {

/// What differs between the digits examples.
struct DigitsExample {
  const char *usage; // the --help text, which documents the options below
  int64_t defaultSteps = 1000;
  double accuracyBound = 0.95; // exit 0 when the held-out accuracy reaches it
  std::function<DigitsModel(const DigitsTrainingOptions &)> model;
};

/// Parses `--steps --batch --lr --optimizer --seed --threads --data --target
/// --save` (and `--help`), loads and splits the digits (360 held out by a
/// fixed shuffle), trains `example.model` with progress lines on stdout (a bar
/// in between on a terminal), prints the time, throughput and held-out
/// accuracy. With `--save=DIR`, writes what an AOT executable needs to score
/// the trained model: DIR/model.kir (the model batched over the held-out
/// set, results `loss` and `accuracy`), DIR/params.safetensors (the trained
/// params) and DIR/heldout.safetensors (the held-out set as its inputs).
/// Returns 0 when the accuracy reaches the bound, else 1; throws kiln::Error
/// for bad options or data.
int runDigitsExample(const DigitsExample &example, int argc, char **argv);

} // namespace kiln::examples
