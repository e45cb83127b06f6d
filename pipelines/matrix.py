"""The cross-family matrix as DVC stages (``families/dvc.yaml``): a model's first stages, a cell, the report.

    python -m pipelines.matrix base --matrix families/matrix.yaml --model NAME      # model, data, history
    python -m pipelines.matrix cell --matrix FILE --model NAME --examples NAME --algorithm NAME
    python -m pipelines.matrix report --matrix FILE

Each call tracks under its own MLflow parent run (a cell's is a pipeline run, tagged ``rlvr.cell``).
"""

from __future__ import annotations

import argparse

from rlvr import stages, tracking
from rlvr.cli import run
from rlvr.matrix import load_matrix, write_report


def main(args: argparse.Namespace, _params) -> None:
    matrix = load_matrix(args.matrix)
    if args.part == "report":
        write_report(matrix)
        return
    if args.part == "base":
        cell = next((c for c in matrix.cells if c.model == args.model), None)
        if cell is None:
            raise ValueError(f"{args.matrix}: no model named {args.model!r}")
        params, paths, key = cell.params, cell.params.paths, f"{tracking.pipeline_key()}-{args.model}"
        tags = {"rlvr.model_stages": args.model}
        with tracking.parent_run(params.mlflow, key, "dvc", tags=tags, pipeline=False) as parent_id:
            stages.model(params, paths.model_dir, parent_id)
            stages.data(params, paths, parent_id)
            stages.history(params, paths.model_dir, paths.pool, paths.history, parent_id)
        return
    cell = matrix.cell(args.model, args.examples, args.algorithm)
    params, paths, key = cell.params, cell.params.paths, f"{tracking.pipeline_key()}-{cell.name}"
    with tracking.parent_run(params.mlflow, key, "dvc", tags={"rlvr.cell": cell.name}) as parent_id:
        stages.select(params, paths.history, paths.pool, paths.selection, paths.ranking, parent_id)
        stages.train(params, paths.model_dir, paths.selection, paths.train_dir, parent_id)
        stages.evaluate(params, paths.model_dir, paths.train_dir, paths.test, paths.eval_dir, parent_id)
        stages.report(params, paths.train_dir, paths.eval_dir, paths.selection, paths.report_dir, parent_id)


if __name__ == "__main__":
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("part", choices=("base", "cell", "report"))
    cli.add_argument("--matrix", default="families/matrix.yaml", help="matrix file (default: %(default)s)")
    cli.add_argument("--model")
    cli.add_argument("--examples")
    cli.add_argument("--algorithm")
    cli.set_defaults(params=None)
    run(main, cli.parse_args())
