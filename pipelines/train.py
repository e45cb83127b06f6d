"""Train stage: GRPO (or PPO) on the selected example(s), keeping checkpoints; resumes a killed run."""

import json

from rlvr import stages
from rlvr.cli import parser, run


def main(args, params) -> None:
    if args.print_config:
        from rlvr.train import effective_config

        print(json.dumps(effective_config(params), indent=2))
        return
    stages.train(params, args.model or params.paths.model_dir, args.data or params.paths.selection,
                 args.out or params.paths.train_dir)  # fmt: skip


if __name__ == "__main__":
    cli = parser(__doc__)
    cli.add_argument("--model", help="base model directory (default: paths.model_dir)")
    cli.add_argument("--data", help="selected training rows (default: paths.selection)")
    cli.add_argument("--out", help="output directory for checkpoints and the step log (default: paths.train_dir)")
    cli.add_argument("--print-config", action="store_true", help="print the effective trainer configuration as JSON")
    run(main, cli.parse_args())
