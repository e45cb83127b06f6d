"""Report stage: table by step and accuracy plot."""

from rlvr import stages
from rlvr.cli import parser, run

if __name__ == "__main__":
    cli = parser(__doc__)
    cli.add_argument("--train-dir", help="train stage output (default: paths.train_dir)")
    cli.add_argument("--eval-dir", help="evaluate stage output (default: paths.eval_dir)")
    cli.add_argument("--selection", help="selected training rows (default: paths.selection)")
    cli.add_argument("--out", help="output directory (default: paths.report_dir)")
    run(
        lambda a, p: print(
            "report written to",
            stages.report(
                p,
                a.train_dir or p.paths.train_dir,
                a.eval_dir or p.paths.eval_dir,
                a.selection or p.paths.selection,
                a.out or p.paths.report_dir,
            ),
        ),
        cli.parse_args(),
    )
