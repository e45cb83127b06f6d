#!/usr/bin/env bash
# The GPU check on a machine with a CUDA GPU, Python 3.12, PyTorch, transformers, accelerate and peft, and no network:
#   (here)  make gpu-wheels                       # what else it needs, as Python 3.12 wheels (about 15 MiB)
#   (there) bash scripts/gpu_check.sh gpu-wheels   # installs the missing ones, then measures and tests (< 10 min)
# 1. one micro-batch of the pi_1 preset (4 completions of 3,072 tokens after a 1,024-token prompt) through TRL's loss,
#    forward and backward, on a random-weight model of Qwen2.5-Math-1.5B's shape (built from its config, bfloat16,
#    gradient checkpointing): the peak GPU memory against the memory plan's logits and activations;
# 2. the GPU tier (tests/test_gpu.py): two bf16 GRPO steps, checkpoint and resume, and the transformers evaluation
#    backend on CUDA, with a tiny Qwen2 model.
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS="${1:-gpu-wheels}"
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
python scripts/gpu_wheels.py --install "$WHEELS"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TRL_EXPERIMENTAL_SILENCE=1
timeout 240 python scripts/measure_loss_memory.py --model Qwen/Qwen2.5-Math-1.5B --micro 4 --prompt 1024 \
    --completion 3072 --device cuda
timeout 300 python -m pytest -m gpu tests/test_gpu.py -v -p no:cacheprovider
