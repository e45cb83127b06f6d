"""Data stage: materialise the candidate pool and the held-out test set."""

from rlvr import stages
from rlvr.cli import parser, run

if __name__ == "__main__":
    cli = parser(__doc__)
    cli.add_argument("--pool", help="output pool file (default: paths.pool)")
    cli.add_argument("--test", help="output test file (default: paths.test)")
    run(lambda a, p: stages.data(p, a.pool or p.paths.pool, a.test or p.paths.test), cli.parse_args())
