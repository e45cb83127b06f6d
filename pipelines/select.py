"""Select stage: rank pool examples by a score of their history, write the chosen rows repeated.

    python -m pipelines.select --history FILE --pool FILE --method std --ranks 1,13 --repeat 128 --out FILE

The history is ``{id: [acc_epoch_0, ...]}`` (the official ``acc_step_*.json`` format); the pool a verl parquet
(id = ``extra_info.index``) or a normalised jsonl/parquet. ``--repeat`` is the number of rows written (the
batch size), the selection cycled, at least one row per selected example.

With ``--params`` the run is tracked in MLflow and unset options come from the params file.
"""

from rlvr import stages
from rlvr.cli import parser, run
from rlvr.config import Params
from rlvr.select import METHODS, run_select


def main(args, params: Params | None) -> None:
    if params is None:
        if not (args.history and args.pool and args.out):
            raise ValueError("--history, --pool and --out are required without --params")
        run_select(
            args.history,
            args.pool,
            args.method or "std",
            args.ranks or "1",
            args.repeat or 1,
            args.out,
            args.ranking,
            args.seed or 0,
        )
        return
    for key in ("method", "ranks", "repeat", "seed"):
        if getattr(args, key) is not None:
            setattr(params.select, key, getattr(args, key))
    paths = params.paths
    stages.select(
        params,
        args.history or paths.history,
        args.pool or paths.pool,
        args.out or paths.selection,
        args.ranking or paths.ranking,
    )


if __name__ == "__main__":
    cli = parser(__doc__, params_default=None)
    cli.add_argument("--history", help="history JSON {id: [acc_epoch_0, ...]}")
    cli.add_argument("--pool", help="pool file: verl parquet or normalised jsonl/parquet")
    cli.add_argument("--method", choices=sorted(METHODS), help="ranking method (default: std)")
    cli.add_argument("--ranks", help="ranks to keep: 1, 1,13 or 1-16 (default: 1)")
    cli.add_argument("--repeat", type=int, help="rows in the output, the selection repeated (default: 1)")
    cli.add_argument("--seed", type=int, help="seed of the random method (default: 0)")
    cli.add_argument("--out", help="output rows, .jsonl or .parquet")
    cli.add_argument("--ranking", help="optional ranking table, .csv")
    run(main, cli.parse_args())
