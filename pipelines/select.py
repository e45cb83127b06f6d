"""Select stage: rank pool examples by a score of their history, write the chosen rows repeated.

    python -m pipelines.select --history FILE --pool FILE --method std --ranks 1,13 --repeat 128 --out FILE

The history is {id: [acc_epoch_0, ...]} (the official acc_step_*.json format); the pool a verl parquet
(id = extra_info.index) or a normalised jsonl/parquet. --repeat is the number of rows written (the batch
size), the selection cycled, at least one row per selected example.

With --params the run is tracked in MLflow and unset options come from the params file."""

from rlvr.cli import add_path_flags, parser, run
from rlvr.config import Params, SelectConfig
from rlvr.errors import ConfigError
from rlvr.selection import METHODS, run_select
from rlvr.stages import select

STANDALONE = {"method": "std", "ranks": "1", "repeat": 1, "seed": 0}  # the options' defaults without --params


def main(args, params: Params | None) -> None:
    if params is None:
        if not (args.path_history and args.path_pool and args.path_selection):
            raise ConfigError("--history, --pool and --out are required without --params")
        given = {
            key: default if getattr(args, key) is None else getattr(args, key) for key, default in STANDALONE.items()
        }
        method, ranks, repeat, seed = (given[key] for key in ("method", "ranks", "repeat", "seed"))
        run_select(
            args.path_history, args.path_pool, method, ranks, repeat, args.path_selection, args.path_ranking, seed
        )
        return
    chosen = {key: getattr(args, key) for key in STANDALONE if getattr(args, key) is not None}
    chosen_select = SelectConfig.model_validate(params.select.model_dump() | chosen)
    select.run(params.model_copy(update={"select": chosen_select}))


if __name__ == "__main__":
    cli = parser("python -m pipelines.select", __doc__, params_default=None)
    add_path_flags(
        cli,
        {
            "--history": ("history", "history JSON {id: [acc_epoch_0, ...]}"),
            "--pool": ("pool", "pool file: verl parquet or normalised jsonl/parquet"),
            "--out": ("selection", "output rows, .jsonl or .parquet"),
            "--ranking": ("ranking", "ranking table, .csv"),
        },
    )
    unset = "(default: the params' select.{}; without --params, {})"
    cli.add_argument(
        "--method", choices=sorted(METHODS), help="ranking method " + unset.format("method", STANDALONE["method"])
    )
    cli.add_argument("--ranks", help="ranks to keep: 1, 1,13 or 1-16 " + unset.format("ranks", STANDALONE["ranks"]))
    cli.add_argument(
        "--repeat",
        type=int,
        help="rows in the output, the selection repeated " + unset.format("repeat", STANDALONE["repeat"]),
    )
    cli.add_argument("--seed", type=int, help="seed of the random method " + unset.format("seed", STANDALONE["seed"]))
    run(main, cli.parse_args())
