"""History stage: every pool example's accuracy per epoch, from GRPO on the pool, a history file or pass rates."""

from rlvr import stages
from rlvr.cli import parser, run

if __name__ == "__main__":
    cli = parser(__doc__)
    cli.add_argument("--model", help="model directory (default: paths.model_dir)")
    cli.add_argument("--pool", help="pool file (default: paths.pool)")
    cli.add_argument("--out", help="output history JSON (default: paths.history)")
    run(
        lambda a, p: stages.history(p, a.model or p.paths.model_dir, a.pool or p.paths.pool, a.out or p.paths.history),
        cli.parse_args(),
    )
