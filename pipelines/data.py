"""Data stage: materialise the candidate pool, the held-out test set and the benchmarks, with a manifest."""

import dataclasses

from rlvr import stages
from rlvr.cli import parser, run


def main(args, params) -> None:
    overrides = {k: v for k, v in {"pool": args.pool, "test": args.test}.items() if v}
    stages.data(params, dataclasses.replace(params.paths, **overrides))


if __name__ == "__main__":
    cli = parser(__doc__)
    cli.add_argument("--pool", help="output pool file (default: paths.pool)")
    cli.add_argument("--test", help="output test file (default: paths.test)")
    run(main, cli.parse_args())
