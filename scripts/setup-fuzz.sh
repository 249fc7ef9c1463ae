#!/usr/bin/env bash
# Installs what the fuzz targets need (scripts/fuzz.sh): clang 19 and its
# libFuzzer and sanitizer runtimes, besides the usual packages. Kept apart
# from the plain setup so the normal build and CI do not pull in a second
# compiler. Idempotent.
set -euo pipefail
exec bash "$(dirname "$0")/setup.sh" clang-19 libclang-rt-19-dev
