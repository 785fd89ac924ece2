#!/usr/bin/env bash
# Set up mixbench on a fresh machine: a virtual environment with the pinned stack (mixbench/constraints.txt) and mmcv,
# at the version pinned there, with its compiled ops. Idempotent: a second run checks each step and skips what is
# already there.
#
# Why mmcv is built here: PyPI has the pinned mmcv (the newest the pinned mmdet accepts) as source only, and its
# setup.py passes -std=c++17 while the torch 2.14 headers need C++20. We patch that one flag, build the wheel once per
# machine and cache it outside the clone (MIXBENCH_CACHE, default ~/.cache/mixbench), keyed by mmcv/torch/CUDA/Python/arch.
#
# mmcv's ops are built for CPU only by default, on every machine, GPU or not: it is fast, needs no CUDA compiler, and on
# a GPU mixbench runs mmcv's nms/RoIAlign/focal loss on CUDA tensors with torchvision's CUDA kernels
# (transfer/ops_backend.py). MIXBENCH_MMCV_CUDA=1 opts in to mmcv's own CUDA kernels: it installs the CUDA compiler
# from the package index for torch's CUDA major version (nvidia-cuda-nvcc), builds for the visible GPU's arch only
# and caches that wheel under its own key (mmcv-...-cu<ver>-sm<arch>-...). Needed only for configs using other mmcv
# ops on GPU (deformable convolution, ...); `mixbench doctor` prints which backend each op uses.
#
# Environment: PYTHON (interpreter, default python3, must be >= 3.11), MIXBENCH_VENV (default ./.venv),
#              MIXBENCH_CACHE (wheel cache), MAX_JOBS (compiler jobs, default: number of cores),
#              MIXBENCH_MMCV_CUDA (1: also build mmcv's CUDA ops; default 0).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}
VENV=${MIXBENCH_VENV:-$ROOT/.venv}
CACHE=${MIXBENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mixbench}
say() { printf '[setup] %s\n' "$*"; }
CONSTRAINTS=$ROOT/mixbench/constraints.txt  # the pinned stack, the one place its versions are written
MMCV_VERSION=$(sed -n 's/^mmcv==\([^[:space:]#]*\).*/\1/p' "$CONSTRAINTS")
[ -n "$MMCV_VERSION" ] || { say "$CONSTRAINTS has no line mmcv==VERSION"; exit 1; }

"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { say "mixbench needs Python >= 3.11; $PYTHON is $("$PYTHON" --version 2>&1). Set PYTHON=/path/to/python3.11"; exit 1; }

if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check -q)

stamp_of() { cat "$CONSTRAINTS" "$ROOT/pyproject.toml" | sha256sum | cut -c1-16; }
STAMP="$VENV/.mixbench-stamp"

# 1. Build tools and the pinned torch/torchvision (mmcv is compiled against exactly this torch).
if [ "$(cat "$STAMP" 2>/dev/null)" != "$(stamp_of)" ]; then
  say "installing torch/torchvision and build tools pinned in constraints.txt (a few minutes the first time)"
  "${PIP[@]}" install --upgrade pip
  "${PIP[@]}" install -c "$CONSTRAINTS" torch torchvision numpy setuptools wheel ninja
fi

# 2. mmcv with compiled ops, from the cache or built once.
# (with MIXBENCH_MMCV_CUDA=1 an installed CPU-ops-only mmcv does not count)
if ! "$PY" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '$MMCV_VERSION'
from mmcv.ops import get_compiling_cuda_version as v; assert ${MIXBENCH_MMCV_CUDA:-0} == 0 or v() not in ('', 'not available')" 2>/dev/null; then
  FORCE_CUDA=0
  OPS=cpuops  # the cache key says which kind of wheel it is, so the two never replace each other
  if [ "${MIXBENCH_MMCV_CUDA:-0}" = 1 ]; then
    # torch's CUDA major version and the visible GPU's arch (compute capability), e.g. "13 9.0"
    read -r CUDA_MAJOR ARCH < <("$PY" -c 'import torch
assert torch.version.cuda, "this torch has no CUDA"
assert torch.cuda.is_available(), "no GPU visible: MIXBENCH_MMCV_CUDA=1 builds for the visible GPU only"
print(torch.version.cuda.split(".")[0], "%d.%d" % torch.cuda.get_device_capability())') \
      || { say "MIXBENCH_MMCV_CUDA=1 needs a CUDA build of torch and a visible GPU"; exit 1; }
    if ! command -v nvcc >/dev/null; then
      # the CUDA compiler from the package index, matching torch's CUDA major (CUDA 13 dropped the -cuXX suffix)
      if [ "$CUDA_MAJOR" -ge 13 ]; then NVCC_PKG="nvidia-cuda-nvcc==$CUDA_MAJOR.*"; else NVCC_PKG="nvidia-cuda-nvcc-cu$CUDA_MAJOR"; fi
      say "installing the CUDA compiler ($NVCC_PKG) into $VENV"
      "${PIP[@]}" install "$NVCC_PKG"
      NVCC=$("$PY" -c 'import pathlib, nvidia; print(next(p for d in nvidia.__path__ for p in pathlib.Path(d).rglob("bin/nvcc")))') \
        || { say "no nvcc found in the installed $NVCC_PKG"; exit 1; }
      export CUDA_HOME=${NVCC%/bin/nvcc} PATH="${NVCC%/nvcc}:$PATH"
      # the CUDA runtime/library headers and libraries come in torch's own nvidia-* wheels, each in its own folder
      NV_DIRS=$("$PY" -c 'import pathlib, nvidia; print(" ".join(str(p) for d in nvidia.__path__ for p in pathlib.Path(d).iterdir()))')
      for d in $NV_DIRS; do
        [ -d "$d/include" ] && export CPATH="$d/include${CPATH:+:$CPATH}"
        [ -d "$d/lib" ] && export LIBRARY_PATH="$d/lib${LIBRARY_PATH:+:$LIBRARY_PATH}"
      done
    fi
    export TORCH_CUDA_ARCH_LIST=$ARCH
    FORCE_CUDA=1
    OPS="cu$("$PY" -c 'import torch; print(torch.version.cuda.replace(".", ""))')-sm${ARCH/./}"
  fi
  KEY=$("$PY" - <<PYEOF
import platform, sys, torch
print(f"mmcv-$MMCV_VERSION-torch{torch.__version__.split('+')[0]}-$OPS-cp{sys.version_info[0]}{sys.version_info[1]}-{platform.machine()}")
PYEOF
)
  WHEEL_DIR="$CACHE/wheels/$KEY"
  WHEEL=$(ls "$WHEEL_DIR"/mmcv-*.whl 2>/dev/null | head -n1 || true)
  if [ -z "$WHEEL" ]; then
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
    # mmcv's setup.py compiles CUDA kernels whenever torch sees a GPU: hide it for the CPU-ops build
    [ "$FORCE_CUDA" = 0 ] && export CUDA_VISIBLE_DEVICES=""
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
  "${PIP[@]}" install -c "$CONSTRAINTS" -e "$ROOT[dev]"
  stamp_of > "$STAMP"
fi
say "ready: $VENV ($("$PY" -c 'import torch, mmcv, mmdet; print(f"torch {torch.__version__}, mmcv {mmcv.__version__}, mmdet {mmdet.__version__}")'))"
