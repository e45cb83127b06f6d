"""The model registry: each run's best checkpoint registered as a version (alias ``best`` on the best so far)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

BEST_ALIAS = "best"


def register_checkpoint(
    name: str, checkpoint: Path, step: int, metrics: Mapping[str, float], key_metric: str
) -> ModelVersion | None:
    """Register ``checkpoint`` as a new version of the registered model ``name``, with ``metrics``.

    The weights stay where they are: the version points to an external MLflow model (logged to the active
    run and its pipeline run, its path in the ``rlvr.checkpoint`` tag) that holds ``metrics`` as ``best.*``;
    the version is tagged with the step and ``key_metric``. The alias ``best`` moves to it when its
    ``key_metric`` beats the current holder's.
    """
    active = mlflow.active_run()
    if active is None:
        return None
    client = MlflowClient()
    location = str(Path(checkpoint).resolve())
    parent = active.data.tags.get("mlflow.parentRunId")
    model = mlflow.create_external_model(
        name=f"checkpoint-{step}",
        # the pipeline run's: the runs table's Models column lists the models whose source run a row is
        source_run_id=parent or active.info.run_id,
        tags={"rlvr.checkpoint": location},
        params={"step": str(step)},
        model_type="transformers",
    )
    # linked to the model and (MLflow logs them with the model's run) the run too: prefixed, so they do not
    # repeat the run's own per-step series
    best = {f"best.{key}": float(value) for key, value in metrics.items()}
    mlflow.log_metrics(best, step=step, model_id=model.model_id)
    if parent:  # and its outputs (the Models column where MLflow reads them from there)
        client.log_outputs(parent, models=[_model_output(model.model_id, step)])
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


def _model_output(model_id: str, step: int):
    from mlflow.entities import LoggedModelOutput

    return LoggedModelOutput(model_id=model_id, step=step)
