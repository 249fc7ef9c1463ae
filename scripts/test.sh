#!/usr/bin/env bash
# Sets up, builds and runs every test (unit, lit, command-line) with CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
ctest --test-dir build --output-on-failure -j "$(nproc)"
