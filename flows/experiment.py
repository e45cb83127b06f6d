"""The experiment flow: one model x one example set, the same stages, params and outputs as ``dvc repro``.

python flows/experiment.py --params params.yaml
"""

from __future__ import annotations

import argparse
import sys

from mlflow.tracking import MlflowClient
from prefect import flow
from prefect.runtime import flow_run

from rlvr import tracking
from rlvr.config import ConfigError, InputError, load_params
from tasks.stages import (
    evaluate_checkpoints,
    make_data,
    prepare_model,
    record_history,
    select_examples,
    train_policy,
    write_report,
)


@flow(name="one-shot-rlvr", flow_run_name="one-shot-rlvr-{params_path}")
def one_shot_rlvr(params_path: str = "params.yaml") -> str:
    """Run every stage in order under one MLflow parent run; returns the report's path."""
    params = load_params(params_path)
    experiment_id = tracking.configure(params.mlflow)
    parent_id = tracking.parent_run_id(experiment_id, f"prefect-{flow_run.id}", "prefect")
    client = MlflowClient()
    try:
        model_dir = prepare_model(params, parent_id)
        make_data(params, parent_id)
        history_path = record_history(params, model_dir, params.paths.pool, parent_id)
        selection_path = select_examples(params, history_path, params.paths.pool, parent_id)
        train_dir = train_policy(params, model_dir, selection_path, parent_id)
        eval_dir = evaluate_checkpoints(params, model_dir, train_dir, params.paths.test, parent_id)
        report = write_report(params, train_dir, eval_dir, selection_path, parent_id)
    except BaseException:
        client.set_terminated(parent_id, "FAILED")
        raise
    client.set_terminated(parent_id, "FINISHED")
    return report


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--params", default="params.yaml", help="params YAML file (default: %(default)s)")
    args = cli.parse_args()
    try:
        load_params(args.params)  # fail fast, in one line, before the flow starts
    except (ConfigError, InputError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print("report written to", one_shot_rlvr(args.params))


if __name__ == "__main__":
    main()
