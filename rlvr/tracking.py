"""MLflow tracking: one parent run per pipeline run, one nested run per stage, every metric with its step.

The parent run is shared by the stages of one pipeline run even though DVC runs each stage in its own
process: stages find it by a pipeline key, taken from ``RLVR_PIPELINE_KEY`` if set, else from the
``dvc repro`` process that started them, else (a stage run by hand) the stage's own process.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import psutil
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from rlvr.config import TrackingConfig
from rlvr.lineage import git_commit

logger = logging.getLogger(__name__)

PIPELINE_KEY_ENV = "RLVR_PIPELINE_KEY"
PARENT_RUN_ENV = "RLVR_PARENT_RUN_ID"  # set for the processes a stage launches (accelerate launch)
PIPELINE_KEY_TAG = "rlvr.pipeline_key"
STAGE_TAG = "rlvr.stage"
RUNNER_TAG = "rlvr.runner"
LAST_STAGE = "report"
BEST_ALIAS = "best"


# Read once: mlflow.set_tracking_uri writes this variable too, so a later read would see our own last choice.
USER_TRACKING_URI = os.environ.get("MLFLOW_TRACKING_URI")


def configure(config: TrackingConfig) -> str:
    """Point MLflow at the store and experiment of ``config``; returns the experiment id.

    ``MLFLOW_TRACKING_URI``, where the user set it before the process started, takes precedence.
    """
    mlflow.set_tracking_uri(absolute_uri(USER_TRACKING_URI or config.tracking_uri))
    return mlflow.set_experiment(config.experiment).experiment_id


def absolute_uri(uri: str) -> str:
    """``uri`` with a relative SQLite path made absolute: MLflow keeps one database engine per URI string, so a
    relative one would keep pointing at the first working directory's store in a long-lived process."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix) :].startswith("/"):
        return prefix + str(Path(uri[len(prefix) :]).resolve())
    return uri


def pipeline_key() -> str:
    """Identifies the pipeline run this process belongs to (see module docstring)."""
    if os.environ.get(PIPELINE_KEY_ENV):
        return os.environ[PIPELINE_KEY_ENV]
    process = psutil.Process()
    for ancestor in process.parents():
        try:
            words = [os.path.basename(word) for word in ancestor.cmdline()[:3]]
        except psutil.Error:
            continue
        if "dvc" in words:
            return f"dvc-{ancestor.pid}-{int(ancestor.create_time())}"
    return f"process-{process.pid}-{int(process.create_time())}"


def parent_run_id(
    experiment_id: str, key: str, source: str, tags: Mapping[str, str] | None = None, pipeline: bool = True
) -> str:
    """Id of the parent run for ``key``, created on first use, named after ``source`` and tagged with ``tags``.

    A ``pipeline`` run (one pipeline's stages) is tagged with its runner; a run grouping pipeline runs (the
    cross-family matrix) is not, so reports reading pipeline runs from MLflow skip it.
    """
    client = MlflowClient()
    found = client.search_runs([experiment_id], filter_string=f"tags.`{PIPELINE_KEY_TAG}` = '{key}'", max_results=1)
    if found:
        return found[0].info.run_id
    name = f"{source}-{time.strftime('%Y%m%d-%H%M%S')}"
    tags = {**(tags or {}), PIPELINE_KEY_TAG: key, "rlvr.git_commit": git_commit()}
    if pipeline:
        tags[RUNNER_TAG] = source
    return client.create_run(experiment_id, run_name=name, tags=tags).info.run_id


@contextmanager
def parent_run(config: TrackingConfig, key: str, source: str, **options) -> Iterator[str]:
    """A parent run (see :func:`parent_run_id`) ended as FINISHED, or FAILED if the block raises."""
    parent_id = parent_run_id(configure(config), key, source, **options)
    client = MlflowClient()
    try:
        yield parent_id
    except BaseException:
        client.set_terminated(parent_id, "FAILED")
        raise
    client.set_terminated(parent_id, "FINISHED")


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mapping as ``a.b.c`` keys, for ``mlflow.log_params``."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def is_main_process() -> bool:
    """False in the non-zero ranks of a multi-process (``accelerate launch``) run: only rank 0 tracks."""
    return int(os.environ.get("RANK", "0")) == 0


@contextmanager
def stage_run(
    stage: str,
    tracking: TrackingConfig,
    config: Mapping[str, Any],
    parent_id: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> Iterator[mlflow.ActiveRun]:
    """A nested MLflow run for ``stage`` under the pipeline's parent run, with ``config`` logged and ``tags`` set.

    In the other ranks of a multi-process run it starts no run (and yields None): rank 0 logs for all.
    """
    if not is_main_process():
        yield None
        return
    experiment_id = configure(tracking)
    client = MlflowClient()
    parent_id = parent_id or os.environ.get(PARENT_RUN_ENV)
    if parent_id is None:
        parent_id = parent_run_id(experiment_id, pipeline_key(), "dvc")
        owns_parent = True
    else:
        owns_parent = False
    with mlflow.start_run(run_name=stage, parent_run_id=parent_id, tags={**(tags or {}), STAGE_TAG: stage}) as run:
        mlflow.log_params(flatten(config))
        mlflow.log_dict(dict(config), f"config/{stage}.json")
        try:
            yield run
        except BaseException:
            if owns_parent:
                client.set_terminated(parent_id, "FAILED")
            raise
    if owns_parent and stage == LAST_STAGE:
        client.set_terminated(parent_id, "FINISHED")


def log_metrics(metrics: Mapping[str, float], step: int = 0) -> None:
    """Log metrics to the active run, if there is one (there is none in the non-zero ranks)."""
    if mlflow.active_run() is not None and metrics:
        mlflow.log_metrics({key: float(value) for key, value in metrics.items()}, step=step)


def set_tag(key: str, value: str) -> None:
    """Tag the active run, if there is one."""
    if mlflow.active_run() is not None:
        mlflow.set_tag(key, value)


def register_checkpoint(
    name: str, checkpoint: Path, step: int, metrics: Mapping[str, float], key_metric: str
) -> ModelVersion | None:
    """Register ``checkpoint`` as a new version of the registered model ``name``, with ``metrics``.

    The weights stay where they are: the version points to an external MLflow model (logged to the active
    run, its path in the ``rlvr.checkpoint`` tag) that holds ``metrics`` as ``best.*``; the version is tagged
    with the step and ``key_metric``. The alias ``best`` moves to it when its ``key_metric`` beats the current holder's.
    """
    active = mlflow.active_run()
    if active is None:
        return None
    client = MlflowClient()
    location = str(Path(checkpoint).resolve())
    model = mlflow.create_external_model(
        name=f"checkpoint-{step}",
        source_run_id=active.info.run_id,
        tags={"rlvr.checkpoint": location},
        params={"step": str(step)},
        model_type="transformers",
    )
    # linked to the model and (MLflow logs them with the model's run) the run too: prefixed, so they do not
    # repeat the run's own per-step series
    best = {f"best.{key}": float(value) for key, value in metrics.items()}
    mlflow.log_metrics(best, step=step, model_id=model.model_id)
    score = float(metrics[key_metric])
    tags = {"step": str(step), key_metric: str(score), "rlvr.checkpoint": location}
    version = mlflow.register_model(f"models:/{model.model_id}", name, tags=tags)
    try:
        holder = client.get_model_version_by_alias(name, BEST_ALIAS)
        best_so_far = float(holder.tags.get(key_metric, "-inf"))
    except MlflowException:  # no version holds the alias yet
        best_so_far = float("-inf")
    if score > best_so_far:
        client.set_registered_model_alias(name, BEST_ALIAS, version.version)
    return version


def log_artifact(path: str | Path, artifact_path: str | None = None) -> None:
    """Log a file or directory to the active run, if there is one."""
    path = Path(path)
    if mlflow.active_run() is None:
        return
    if path.is_dir():
        mlflow.log_artifacts(str(path), artifact_path)
    elif path.is_file():
        mlflow.log_artifact(str(path), artifact_path)
