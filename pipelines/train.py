"""Train stage: GRPO (or PPO) on the selected example(s), keeping checkpoints; a killed run resumes from its
last complete checkpoint, a run with other settings moves the earlier one aside.

    python -m pipelines.train --params configs/paper/qwen25_math_1.5b_pi1.yaml --print-config"""

import json

from rlvr.cli import add_path_flags, parser, run


def main(args, params) -> None:
    if args.print_config:
        from rlvr.stages.train import effective_config

        print(json.dumps(effective_config(params), indent=2))
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
    cli.add_argument("--print-config", action="store_true", help="print the effective trainer configuration as JSON")
    run(main, cli.parse_args())
