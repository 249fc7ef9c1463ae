#!/usr/bin/env bash
# Creates (or extends) the virtual environment of the benchmark peers with pip:
# torch, jax[cpu], safetensors, numpy. Default: .venv in the repository root
# (bench/compare's default --python); KILN_VENV=DIR chooses another. A torch
# already there is kept. TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# installs the CPU-only torch wheel (PyPI's default wheel brings CUDA libraries).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
venv=${KILN_VENV:-$root/.venv}
python=${PYTHON:-python3}

if [ ! -x "$venv/bin/python" ]; then
  echo "setup.sh: creating $venv"
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip install --disable-pip-version-check)
if ! "$venv/bin/python" -c 'import torch' 2>/dev/null; then
  if [ -n "${TORCH_INDEX_URL:-}" ]; then
    "${pip[@]}" --index-url "$TORCH_INDEX_URL" torch
  else
    "${pip[@]}" torch
  fi
fi
"${pip[@]}" numpy safetensors 'jax[cpu]'
"$venv/bin/python" - <<'PY'
import jax, numpy, safetensors, torch
print(f"setup.sh: torch {torch.__version__}, jax {jax.__version__}, numpy {numpy.__version__}, "
      f"safetensors {safetensors.__version__}")
PY
