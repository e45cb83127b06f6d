#!/usr/bin/env bash
# The GPU tier on a machine with a CUDA GPU and PyTorch but nothing else of this project, and no network:
#   (here)  make gpu-wheels                       # the dependencies as wheels, in gpu-wheels/
#   (there) bash scripts/gpu_check.sh gpu-wheels   # installs them with --no-index, runs the gpu tests (< 8 min)
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS="${1:-gpu-wheels}"
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
python -m pip install --no-index --find-links "$WHEELS" --no-deps "$WHEELS"/*.whl >/dev/null
python -m pip install --no-index --find-links "$WHEELS" --no-deps -e . >/dev/null
export HF_HUB_OFFLINE=1 TRL_EXPERIMENTAL_SILENCE=1
timeout 480 python -m pytest -m gpu tests/test_gpu.py -v -p no:cacheprovider
