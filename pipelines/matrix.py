"""The cross-family matrix as DVC stages (families/stages.yaml, in place as families/dvc.yaml): a model's first
stages, a cell, the report.

    python -m pipelines.matrix base --matrix families/matrix.yaml --model NAME      # model, data, history
    python -m pipelines.matrix cell --matrix FILE --model NAME --examples NAME --algorithm NAME
    python -m pipelines.matrix cell --matrix FILE --model NAME --cell NAME          # a matrix of named cells
    python -m pipelines.matrix report --matrix FILE

Each call tracks under its own MLflow parent run (a cell's is a pipeline run, tagged rlvr.cell)."""

from __future__ import annotations

import argparse

from rlvr import stages
from rlvr.cli import add_set_option, run
from rlvr.config import parse_overrides
from rlvr.errors import ConfigError
from rlvr.matrix import load_matrix, write_report


def main(args: argparse.Namespace, _params) -> None:
    from rlvr import tracking  # here: --help answers before MLflow loads

    matrix = load_matrix(args.matrix, parse_overrides(args.assignments))
    if args.part == "report":
        write_report(matrix)
        return
    if args.part == "base":
        cell = next((c for c in matrix.cells if c.model == args.model), None)
        if cell is None:
            raise ConfigError(f"{args.matrix}: no model named {args.model!r}")
        key, tags, pipeline = f"{tracking.pipeline_key()}-{args.model}", {"rlvr.model_stages": args.model}, False
        chosen = [stage for stage in stages.STAGES if stage.per_model]
    else:
        cell = matrix.cell(args.model, args.cell or args.examples, None if args.cell else args.algorithm)
        key, tags, pipeline = f"{tracking.pipeline_key()}-{cell.name}", {"rlvr.cell": cell.name}, True
        chosen = [stage for stage in stages.STAGES if not stage.per_model]
    with tracking.parent_run(cell.params.mlflow, key, "dvc", tags=tags, pipeline=pipeline) as parent_id:
        for stage in chosen:
            stages.run(stage.name, cell.params, parent_id)


if __name__ == "__main__":
    cli = argparse.ArgumentParser(
        prog="python -m pipelines.matrix", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    cli.add_argument(
        "part", choices=("base", "cell", "report"), help="which stages: a model's, a cell's, or the report"
    )
    cli.add_argument("--matrix", default="families/matrix.yaml", help="matrix file (default: %(default)s)")
    cli.add_argument("--model", help="the model's name in the matrix (base, cell)")
    cli.add_argument("--examples", help="the example set's name in the matrix (cell)")
    cli.add_argument("--algorithm", help="the algorithm's name in the matrix (cell)")
    cli.add_argument("--cell", help="the cell's name, in a matrix of named cells (cell)")
    add_set_option(cli, "assignments", "a params value of every cell")
    cli.set_defaults(params=None, overrides=[])
    run(main, cli.parse_args())
