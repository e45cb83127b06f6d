"""Train stage: GRPO (or PPO) on the selected example(s), keeping checkpoints; a killed run resumes from its
last complete checkpoint, a run with other settings moves the earlier one aside.

    python -m pipelines.train --params configs/paper/qwen25_math_1.5b_pi1.yaml --print-config
    (the memory plan and batch: add --set train.num_processes=1 for one GPU)"""

import json

from rlvr.cli import add_path_flags, parser, run
from rlvr.training.plan import GPU_GIB


def main(args, params) -> None:
    if args.print_config:
        from rlvr.stages.train import effective_config

        print(json.dumps(effective_config(params, args.gpu_memory_gib), indent=2))
        return
    from rlvr.stages import train  # here: --help answers before torch and TRL load

    train.run(params)


if __name__ == "__main__":
    cli = parser("python -m pipelines.train", __doc__)
    add_path_flags(
        cli,
        {
            "--model": ("model_dir", "base model directory"),
            "--data": ("selection", "selected training rows"),
            "--out": ("train_dir", "output directory for checkpoints and the step log"),
        },
    )
    cli.add_argument(
        "--print-config",
        action="store_true",
        help="print the effective trainer configuration and its memory plan as JSON (the plan for the GPUs torch "
        "sees; without CUDA, for train.num_processes GPUs of --gpu-memory-gib)",
    )
    cli.add_argument(
        "--gpu-memory-gib",
        type=float,
        default=GPU_GIB,
        help="each GPU's memory (GiB) for the printed plan where torch sees none (default: %(default)s)",
    )
    run(main, cli.parse_args())
