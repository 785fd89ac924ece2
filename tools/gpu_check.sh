#!/usr/bin/env bash
# The device check, as one command (README: "GPU"). On the lent GPU machine, through the device tool:
#     run(command="bash tools/gpu_check.sh", carry=[".gpu_carry"], timeout_s=600)
# -> set-up from the carried wheels + mmcv source (no network there), then the figures in $OUT/gpu_check.json.
# Anywhere (tests, CI, before spending device time):
#     bash tools/gpu_check.sh --dry-run      # every step planned, the carried folder and versions checked, no CUDA
# Fill the carried folder here first (needs the package index): python tools/gpu_check.py --prepare
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
exec "$PYTHON" tools/gpu_check.py "$@"
