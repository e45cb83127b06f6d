"""One Prefect task per pipeline stage, each calling the same ``rlvr.stages`` function as DVC does.

Results are persisted, and a stage whose inputs are unchanged is skipped by its cache key: the stage's
key from ``dvc.yaml`` (params values, code, upstream keys: ``rlvr.lineage.stage_keys``), its outputs' absolute
paths, and for the stages reading the training directory the checkpoints complete so far. A cache hit only
stands while the stage's outputs exist: :func:`cached` recomputes a stage whose outputs are gone.
Retries where I/O can fail: the model and data stages may download from the Hub.
"""

from __future__ import annotations

from pathlib import Path

from prefect import Task, task

from rlvr import lineage, stages
from rlvr.checkpoints import MARKER, checkpoints, is_finished
from rlvr.config import Params
from rlvr.data import fingerprint
from rlvr.evaluate import evaluate_model, suite

HUB_RETRIES = {"retries": 2, "retry_delay_seconds": 30}


def training_state(train_dir: str | Path) -> list:
    """The complete checkpoints of a training directory (with their markers) and whether the run has ended."""
    markers = [(step, (path / MARKER).read_text()) for step, path in checkpoints(train_dir)]
    return [markers, is_finished(train_dir)]


def stage_cache_key(context, parameters: dict) -> str:
    """The cache key of a stage task (see module docstring); the task's name is the stage's."""
    stage, params = context.task.name, parameters["params"]
    outputs = [str(Path(path).resolve()) for path in lineage.stage_outputs(stage, params)]
    state = training_state(params.paths.train_dir) if stage in ("evaluate", "report") else None
    return f"{stage}-{fingerprint(lineage.stage_keys(params)[stage], outputs, state)}"


def cached(stage_task: Task, params: Params) -> Task:
    """``stage_task``, recomputed rather than taken from the cache when one of its outputs is missing."""
    missing = not all(Path(path).exists() for path in lineage.stage_outputs(stage_task.name, params))
    return stage_task.with_options(refresh_cache=missing)


CACHED = {"cache_key_fn": stage_cache_key, "persist_result": True}


@task(name="model", **HUB_RETRIES, **CACHED)
def prepare_model(params: Params, parent_id: str) -> str:
    return str(stages.model(params, params.paths.model_dir, parent_id))


@task(name="data", **HUB_RETRIES, **CACHED)
def make_data(params: Params, parent_id: str) -> dict:
    return stages.data(params, params.paths, parent_id)


@task(name="history", **CACHED)
def record_history(params: Params, parent_id: str) -> str:
    stages.history(params, params.paths.model_dir, params.paths.pool, params.paths.history, parent_id)
    return params.paths.history


@task(name="select", **CACHED)
def select_examples(params: Params, parent_id: str) -> str:
    paths = params.paths
    stages.select(params, paths.history, paths.pool, paths.selection, paths.ranking, parent_id)
    return paths.selection


@task(name="train", **CACHED)
def train_policy(params: Params, parent_id: str) -> str:
    stages.train(params, params.paths.model_dir, params.paths.selection, params.paths.train_dir, parent_id)
    return params.paths.train_dir


@task(name="evaluate", **CACHED)
def evaluate_checkpoints(params: Params, parent_id: str) -> str:
    paths = params.paths
    stages.evaluate(params, paths.model_dir, paths.train_dir, paths.test, paths.eval_dir, parent_id)
    return paths.eval_dir


@task(name="report", **CACHED)
def write_report(params: Params, parent_id: str) -> str:
    paths = params.paths
    return str(stages.report(params, paths.train_dir, paths.eval_dir, paths.selection, paths.report_dir, parent_id))


def checkpoint_cache_key(context, parameters: dict) -> str:
    """One model's evaluation: the evaluate stage's key, the step, its checkpoint marker, the output folder and
    the results in it (deleted results mean another key, so the task runs again)."""
    params, step, model_dir = parameters["params"], parameters["step"], Path(parameters["model_dir"])
    marker = model_dir / MARKER
    state = marker.read_text() if marker.is_file() else str(model_dir.resolve())
    eval_dir = Path(params.paths.eval_dir).resolve()
    done = sorted(path.name for path in (eval_dir / "steps" / f"step-{step}").glob("*.json"))
    key = fingerprint(lineage.stage_keys(params)["evaluate"], step, state, str(eval_dir), done)
    return f"evaluate-step-{step}-{key}"


@task(name="evaluate-checkpoint", cache_key_fn=checkpoint_cache_key, persist_result=True, tags=["rlvr-evaluate"])
def evaluate_checkpoint(params: Params, step: int, model_dir: str) -> int:
    """Evaluate one model (the base as step 0, or a checkpoint) on the test set and benchmarks; returns its step.

    Writes only its own ``steps/step-N`` files: fanned out across workers, the evaluate stage then collects them.
    """
    paths = params.paths
    benchmarks = suite(paths.test, params.data.test, paths.benchmarks_dir, params.data.benchmarks)
    evaluate_model(params.evaluate, params.model, step, model_dir, benchmarks, paths.eval_dir)
    return step
