"""Train stage: GRPO on the selected example(s), keeping checkpoints."""

from rlvr import stages
from rlvr.cli import parser, run

if __name__ == "__main__":
    cli = parser(__doc__)
    cli.add_argument("--model", help="base model directory (default: paths.model_dir)")
    cli.add_argument("--data", help="selected training rows (default: paths.selection)")
    cli.add_argument("--out", help="output directory for checkpoints and the step log (default: paths.train_dir)")
    run(
        lambda a, p: stages.train(
            p, a.model or p.paths.model_dir, a.data or p.paths.selection, a.out or p.paths.train_dir
        ),
        cli.parse_args(),
    )
