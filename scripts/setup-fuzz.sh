#!/usr/bin/env bash
# Installs what the fuzz targets need (scripts/fuzz.sh): clang 19 and its
# libFuzzer and sanitizer runtimes. Kept apart from scripts/setup.sh so the
# normal build and CI do not pull in a second compiler. Idempotent.
set -euo pipefail

packages=(clang-19 libclang-rt-19-dev)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup-fuzz: all ${#packages[@]} packages present"
  exit 0
fi
echo "setup-fuzz: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
