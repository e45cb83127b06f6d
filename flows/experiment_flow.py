"""The experiment flows (one model x one example set): the same stages, params and outputs as ``dvc repro``; their
command line is ``python -m flows.experiment``.

Each stage is a cached task (``tasks.stages``): a rerun with unchanged inputs skips it. Checkpoint evaluation
fans out, one task per model, on the task runner ``fan_out`` names (threads, or a Dask cluster).
"""

from __future__ import annotations

import time
from pathlib import Path

from prefect import flow
from prefect.runtime import flow_run

from flows.artifacts import publish_report
from flows.cli import FanOut
from flows.runners import make_task_runner
from rlvr import lineage, stages, tracking
from rlvr.config import Overrides, Params, load_params, override_values, parse_params, to_dict
from rlvr.errors import InputError
from rlvr.files import content_hash
from rlvr.stages.evaluate import models_to_evaluate
from rlvr.training.checkpoints import is_finished
from tasks.stages import TASKS, checkpoint_task, run_cached, training_state

RUNS_ROOT = "outputs/runs"  # the outputs of an on-demand run with overrides, one folder per set of overrides


@flow(name="evaluate-models", validate_parameters=False)
def evaluate_models(params: dict, models: list[list]) -> list[int]:
    """Evaluate each ``[step, model_dir]`` of ``models`` as its own task, on this flow's task runner."""
    parsed = parse_params(params)
    futures = [checkpoint_task(parsed, step).submit(parsed, step, model_dir) for step, model_dir in models]
    return [future.result() for future in futures]


def evaluation_round(params: Params, parent_id: str, fan_out: FanOut) -> str:
    """Evaluate the base model and every complete checkpoint not yet evaluated, then the evaluate stage
    collects them (by-step table, MLflow metrics, best checkpoint registered); returns the eval folder."""
    models = [[step, str(path)] for step, path in models_to_evaluate(params.paths.model_dir, params.paths.train_dir)]
    runner = make_task_runner(fan_out.task_runner, fan_out.dask_address, fan_out.workers)
    evaluate_models.with_options(task_runner=runner)(to_dict(params), models)
    return run_cached(TASKS["evaluate"], params, parent_id)


def run_stages(params: Params, parent_id: str, fan_out: FanOut) -> str:
    """Every stage in order, each skipped when its cache key is unchanged; returns the report's path."""
    for stage in stages.STAGES:
        if stage.name == "evaluate":
            evaluation_round(params, parent_id, fan_out)
        else:
            run_cached(TASKS[stage.name], params, parent_id)
    return str(Path(params.paths.report_dir) / "report.md")


def isolated(params: Params, base: Params, overrides: dict) -> Params:
    """``params`` with the outputs of every stage the overrides change moved to their own folder
    (``outputs/runs/<hash of the overrides>/...``): two runs with different overrides never write the same
    files, while the stages they share (same key) keep sharing their outputs."""
    if not overrides:
        return params
    before, after = lineage.stage_keys(base), lineage.stage_keys(params)
    folder = f"{RUNS_ROOT}/{content_hash(overrides)}"
    moved = {}
    for stage in stages.STAGES:
        if before[stage.name] != after[stage.name]:
            for key in stage.writes:
                path = getattr(params.paths, key)
                moved[key] = f"{folder}/{Path(path).relative_to('outputs') if path.startswith('outputs/') else path}"
    return params.model_copy(update={"paths": params.paths.model_copy(update=moved)})


@flow(name="one-shot-rlvr", flow_run_name="one-shot-rlvr-{params_path}")
def one_shot_rlvr(
    params_path: str = "params.yaml", overrides: Overrides | None = None, fan_out: FanOut | None = None
) -> str:
    """Run every stage under one MLflow parent run; ``overrides`` (typed params sections) are merged into the
    params file, and the stages they change write to their own folder (``isolated``). Returns the report's
    path; the report is also published as artifacts of the flow run."""
    values = override_values(overrides)
    params = isolated(load_params(params_path, values), load_params(params_path), values)
    with tracking.parent_run(params.mlflow, f"prefect-{flow_run.id}", "prefect") as parent_id:
        report = run_stages(params, parent_id, fan_out or FanOut())
        publish_report(params, parent_id)
        return report


@flow(name="evaluate-new-checkpoints", flow_run_name="evaluate-new-checkpoints-{params_path}")
def evaluate_new_checkpoints(
    params_path: str = "params.yaml",
    overrides: Overrides | None = None,
    watch: bool = True,
    poll_seconds: float = 60.0,
    timeout_minutes: float = 24 * 60,
    fan_out: FanOut | None = None,
) -> str:
    """Evaluate the checkpoints of a training that may still be running (started by ``dvc repro``, the
    experiment flow or a deployment), each as soon as it is complete; with ``watch``, until the training ends.

    The model and data stages must have run (their outputs are read, not remade). Returns the eval folder.
    """
    params = load_params(params_path, override_values(overrides))
    needed = [params.paths.model_dir, params.paths.test]
    if missing := [path for path in needed if not Path(path).exists()]:
        raise InputError(f"{missing[0]} not found: run the model and data stages first")
    deadline = time.monotonic() + timeout_minutes * 60
    seen = None
    with tracking.parent_run(params.mlflow, f"prefect-{flow_run.id}", "prefect-watch", pipeline=False) as parent_id:
        while True:
            finished = is_finished(params.paths.train_dir)  # read first: the checkpoints seen after it are all
            if (state := training_state(params.paths.train_dir)) != seen:
                evaluation_round(params, parent_id, fan_out or FanOut())
                seen = state
            if finished or not watch:
                return params.paths.eval_dir
            if time.monotonic() > deadline:
                raise TimeoutError(f"{params.paths.train_dir}: training not finished after {timeout_minutes} minutes")
            time.sleep(poll_seconds)
