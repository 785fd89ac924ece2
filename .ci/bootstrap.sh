#!/usr/bin/env bash
# Set up mixbench on a fresh machine: a virtual environment with the pinned stack (constraints.txt) and mmcv 2.1.0
# with its compiled ops. Idempotent: a second run checks each step and skips what is already there.
#
# Why mmcv is built here: PyPI has mmcv 2.1.0 (the newest mmdet 3.3.0 accepts) as source only, and its setup.py
# passes -std=c++17 while the torch 2.14 headers need C++20. We patch that one flag, build the wheel once per machine
# and cache it outside the clone (MIXBENCH_CACHE, default ~/.cache/mixbench), keyed by mmcv/torch/CUDA/Python/arch.
#
# Environment: PYTHON (interpreter, default python3, must be >= 3.11), MIXBENCH_VENV (default ./.venv),
#              MIXBENCH_CACHE (wheel cache), MAX_JOBS (compiler jobs, default: number of cores).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}
VENV=${MIXBENCH_VENV:-$ROOT/.venv}
CACHE=${MIXBENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mixbench}
MMCV_VERSION=2.1.0
say() { printf '[setup] %s\n' "$*"; }

"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { say "mixbench needs Python >= 3.11; $PYTHON is $("$PYTHON" --version 2>&1). Set PYTHON=/path/to/python3.11"; exit 1; }

if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check -q)

stamp_of() { cat "$ROOT/constraints.txt" "$ROOT/pyproject.toml" | sha256sum | cut -c1-16; }
STAMP="$VENV/.mixbench-stamp"

# 1. Build tools and the pinned torch/torchvision (mmcv is compiled against exactly this torch).
if [ "$(cat "$STAMP" 2>/dev/null)" != "$(stamp_of)" ]; then
  say "installing torch/torchvision and build tools pinned in constraints.txt (a few minutes the first time)"
  "${PIP[@]}" install --upgrade pip
  "${PIP[@]}" install -c "$ROOT/constraints.txt" torch torchvision numpy setuptools wheel ninja
fi

# 2. mmcv with compiled ops, from the cache or built once.
if ! "$PY" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '$MMCV_VERSION'" 2>/dev/null; then
  KEY=$("$PY" - <<PYEOF
import platform, sys, torch
cuda = "cu" + torch.version.cuda.replace(".", "") if (torch.version.cuda and torch.cuda.is_available()) else "cpu"
print(f"mmcv-$MMCV_VERSION-torch{torch.__version__.split('+')[0]}-{cuda}-cp{sys.version_info[0]}{sys.version_info[1]}-{platform.machine()}")
PYEOF
)
  WHEEL_DIR="$CACHE/wheels/$KEY"
  WHEEL=$(ls "$WHEEL_DIR"/mmcv-*.whl 2>/dev/null | head -n1 || true)
  if [ -z "$WHEEL" ]; then
    FORCE_CUDA=0
    if [[ "$KEY" != *-cpu-* ]] && command -v nvcc >/dev/null; then FORCE_CUDA=1; fi
    say "building mmcv $MMCV_VERSION with compiled ops ($KEY, CUDA ops: $FORCE_CUDA)."
    say "this takes about 8 minutes on 2 cores (longer with CUDA ops) and happens once per machine;"
    say "the wheel is cached in $WHEEL_DIR"
    BUILD=$(mktemp -d)
    trap 'rm -rf "$BUILD"' EXIT
    "${PIP[@]}" download --no-deps --no-binary :all: --no-build-isolation "mmcv==$MMCV_VERSION" -d "$BUILD"
    tar -xzf "$BUILD"/mmcv-"$MMCV_VERSION".tar.gz -C "$BUILD"
    # The one source change: C++20 instead of C++14/17 (torch >= 2.10 headers need it).
    sed -i 's/-std=c++1[47]/-std=c++20/g' "$BUILD/mmcv-$MMCV_VERSION/setup.py"
    grep -q -- '-std=c++20' "$BUILD/mmcv-$MMCV_VERSION/setup.py" || { say "could not patch mmcv's setup.py"; exit 1; }
    (cd "$BUILD/mmcv-$MMCV_VERSION" && MMCV_WITH_OPS=1 FORCE_CUDA=$FORCE_CUDA MAX_JOBS=${MAX_JOBS:-$(nproc)} \
      "${PIP[@]}" wheel --no-deps --no-build-isolation -w "$BUILD/dist" .)
    mkdir -p "$WHEEL_DIR"
    for w in "$BUILD"/dist/mmcv-*.whl; do cp "$w" "$WHEEL_DIR/.partial" && mv "$WHEEL_DIR/.partial" "$WHEEL_DIR/$(basename "$w")"; done
    WHEEL=$(ls "$WHEEL_DIR"/mmcv-*.whl | head -n1)
  else
    say "using cached mmcv wheel $WHEEL"
  fi
  "${PIP[@]}" install --no-deps --force-reinstall "$WHEEL"
fi

# 3. mixbench itself (editable) with the rest of the pinned stack.
if [ "$(cat "$STAMP" 2>/dev/null)" != "$(stamp_of)" ]; then
  say "installing mixbench and the pinned stack (mmengine, mmdet, pycocotools, tabulate, ...)"
  "${PIP[@]}" install -c "$ROOT/constraints.txt" -e "$ROOT[dev]"
  stamp_of > "$STAMP"
fi
say "ready: $VENV ($("$PY" -c 'import torch, mmcv, mmdet; print(f"torch {torch.__version__}, mmcv {mmcv.__version__}, mmdet {mmdet.__version__}")'))"
