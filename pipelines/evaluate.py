"""Evaluate stage: the base model (step 0) and every checkpoint on the held-out set and the benchmarks."""

from rlvr import stages
from rlvr.cli import parser, run

if __name__ == "__main__":
    cli = parser(__doc__)
    cli.add_argument("--model", help="base model directory (default: paths.model_dir)")
    cli.add_argument("--train-dir", help="directory holding checkpoint-* (default: paths.train_dir)")
    cli.add_argument("--test", help="held-out test file (default: paths.test)")
    cli.add_argument("--out", help="output directory (default: paths.eval_dir)")
    run(
        lambda a, p: stages.evaluate(
            p,
            a.model or p.paths.model_dir,
            a.train_dir or p.paths.train_dir,
            a.test or p.paths.test,
            a.out or p.paths.eval_dir,
        ),
        cli.parse_args(),
    )
