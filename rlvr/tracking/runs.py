"""MLflow runs: one parent run per pipeline run, one nested run per stage, every metric with its step.

The parent run is shared by the stages of one pipeline run even though DVC runs each stage in its own
process: stages find it by a pipeline key, taken from ``RLVR_PIPELINE_KEY`` if set, else from the
``dvc repro`` process that started them, else (a stage run by hand) the stage's own process.

A tracking server unreachable when a stage starts stops it within seconds with one line naming the URI, before
it writes anything; unreachable later, logging goes through the outbox (``rlvr.tracking.outbox``) and never
stops the work.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import psutil
from mlflow.tracking import MlflowClient

from rlvr import stages
from rlvr.config import Params, TrackingConfig, to_dict
from rlvr.errors import ConfigError
from rlvr.tracking.outbox import OUTBOX
from rlvr.tracking.signals import end_status, interruptible

logger = logging.getLogger("rlvr.tracking")

PIPELINE_KEY_ENV = "RLVR_PIPELINE_KEY"

PARENT_RUN_ENV = "RLVR_PARENT_RUN_ID"  # set for the processes a stage launches (accelerate launch)

PIPELINE_KEY_TAG = "rlvr.pipeline_key"

STAGE_TAG = "rlvr.stage"

RUNNER_TAG = "rlvr.runner"

REACH_SECONDS = 5.0

SYSTEM_METRICS_STAGES = ("history", "train", "evaluate")

# The experiment opens on its runs table (MLflow's model-training view), not on the GenAI trace overview.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}

# Read once: mlflow.set_tracking_uri writes this variable too, so a later read would see our own last choice.
USER_TRACKING_URI = os.environ.get("MLFLOW_TRACKING_URI")
# A server that does not answer fails a call in seconds, not after MLflow's minutes of retries.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
# CPU, memory (and GPU) use of the history, train and evaluate runs, every 10 s
os.environ.setdefault("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "10")
os.environ.setdefault("MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING", "1")


def absolute_uri(uri: str) -> str:
    """``uri`` with a relative SQLite path made absolute: MLflow keeps one database engine per URI string, so a
    relative one would keep pointing at the first working directory's store in a long-lived process."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix) :].startswith("/"):
        return prefix + str(Path(uri[len(prefix) :]).resolve())
    return uri


def check_reachable(uri: str, timeout: float = REACH_SECONDS) -> None:
    """A tracking server URI (http/https) must answer its health check within ``timeout`` seconds."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout):
            pass
    except urllib.error.HTTPError:
        return  # it answers (a server without /health, or behind a proxy)
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise ConfigError(
            f"MLflow tracking server {uri} is unreachable ({reason}); start it or set mlflow.tracking_uri"
        ) from None


def configure(config: TrackingConfig) -> str:
    """Point MLflow at the store and experiment of ``config`` (the server checked first); returns the
    experiment id. ``MLFLOW_TRACKING_URI``, where the user set it before the process started, takes precedence."""
    uri = absolute_uri(USER_TRACKING_URI or config.tracking_uri)
    check_reachable(uri)
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.set_experiment(config.experiment)
    if experiment.tags.get("mlflow.experimentKind") != EXPERIMENT_KIND["mlflow.experimentKind"]:
        for key, value in EXPERIMENT_KIND.items():
            MlflowClient().set_experiment_tag(experiment.experiment_id, key, value)
    return experiment.experiment_id


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


def _source_tags(source: str) -> dict[str, str]:
    """MLflow's own source tags (the runs table's Source column) and the code's git commit."""
    from rlvr.lineage import git_commit

    return {
        "mlflow.source.type": "PROJECT",
        "mlflow.source.name": source,
        "mlflow.source.git.commit": git_commit().removesuffix("-dirty"),
        "rlvr.git_commit": git_commit(),
    }


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
    tags = {**(tags or {}), PIPELINE_KEY_TAG: key, **_source_tags(source)}
    if pipeline:
        tags[RUNNER_TAG] = source
    return client.create_run(experiment_id, run_name=name, tags=tags).info.run_id


@contextmanager
def parent_run(config: TrackingConfig, key: str, source: str, **options) -> Iterator[str]:
    """A parent run (see :func:`parent_run_id`) ended as FINISHED, KILLED (a signal) or FAILED."""
    parent_id = parent_run_id(configure(config), key, source, **options)
    error: BaseException | None = None
    try:
        with interruptible():
            yield parent_id
    except BaseException as raised:
        error = raised
        raise
    finally:
        _terminate(parent_id, end_status(error))


def _terminate(run_id: str, status: str) -> None:
    try:
        MlflowClient().set_terminated(run_id, status)
    except Exception as failure:  # noqa: BLE001 - the tracking server being down must not fail the work
        logger.warning("could not mark MLflow run %s %s: %s", run_id, status, failure)


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


def active_id() -> str | None:
    active = mlflow.active_run()
    return None if active is None else active.info.run_id


@contextmanager
def stage_run(stage: str, params: Params, parent_id: str | None = None) -> Iterator[mlflow.ActiveRun | None]:
    """A nested MLflow run for ``stage`` under the pipeline's parent run: its params section logged, its lineage
    tagged; ended as FINISHED, KILLED (a signal) or FAILED. The parent is this process's own where none is
    given (a stage run by ``dvc repro``): ended after the last stage, or when a stage fails or is stopped.

    In the other ranks of a multi-process run it starts no run (and yields None): rank 0 logs for all.
    """
    if not is_main_process():
        yield None
        return
    from rlvr.lineage import run_tags

    experiment_id = configure(params.mlflow)
    parent_id = parent_id or os.environ.get(PARENT_RUN_ENV)
    owns_parent = parent_id is None
    if owns_parent:
        parent_id = parent_run_id(experiment_id, pipeline_key(), "dvc")
    config = to_dict(getattr(params, stage))
    tags = {**run_tags(stage, params), **_source_tags(f"{stage} stage"), STAGE_TAG: stage}
    run = mlflow.start_run(
        run_name=stage, parent_run_id=parent_id, tags=tags, log_system_metrics=stage in SYSTEM_METRICS_STAGES
    )
    run_id, error = run.info.run_id, None
    log_params(flatten(config))
    log_dict(config, f"config/{stage}.json")
    try:
        with interruptible():
            yield run
    except BaseException as raised:
        error = raised
        raise
    finally:
        OUTBOX.close(run_id)
        status = end_status(error)
        try:
            mlflow.end_run(status)
        except Exception as failure:  # noqa: BLE001 - the work is done; the server being down must not undo it
            logger.warning("could not end MLflow run %s: %s", run_id, failure)
        if owns_parent and (error is not None or stage == stages.LAST):
            _terminate(parent_id, status)


def log_metrics(metrics: Mapping[str, float], step: int = 0, run_id: str | None = None) -> None:
    """Log metrics to ``run_id`` or the active run, if there is one (there is none in the non-zero ranks)."""
    run_id = run_id or active_id()
    if run_id is not None and metrics:
        payload = {"metrics": {k: float(v) for k, v in metrics.items()}, "step": step, "timestamp": _now()}
        OUTBOX.send("metrics", run_id, payload)


def log_params(values: Mapping[str, Any], run_id: str | None = None) -> None:
    run_id = run_id or active_id()
    if run_id is not None and values:
        OUTBOX.send("params", run_id, dict(values))


def set_tag(key: str, value: str, run_id: str | None = None) -> None:
    """Tag ``run_id`` or the active run, if there is one."""
    run_id = run_id or active_id()
    if run_id is not None:
        OUTBOX.send("tag", run_id, (key, str(value)))


def log_dict(value: Any, artifact_file: str, run_id: str | None = None) -> None:
    run_id = run_id or active_id()
    if run_id is not None:
        OUTBOX.send("dict", run_id, (value, artifact_file))


def log_artifact(path: str | Path, artifact_path: str | None = None, run_id: str | None = None) -> None:
    """Log a file or directory to ``run_id`` or the active run, if there is one."""
    run_id = run_id or active_id()
    if run_id is not None and Path(path).exists():
        OUTBOX.send("artifact", run_id, {"path": str(Path(path).resolve()), "artifact_path": artifact_path})


def _now() -> int:
    return int(time.time() * 1000)


def log_datasets(manifest: Mapping[str, Mapping[str, Any]], context: str, run_id: str | None = None) -> None:
    """The data stage's datasets as MLflow run inputs (the runs table's Dataset column; digest: the file's
    SHA-256 from the manifest) and as ``rlvr.data.<key>.sha256`` tags."""
    run_id = run_id or active_id()
    if run_id is None:
        return
    from mlflow.entities import Dataset as DatasetEntity
    from mlflow.entities import DatasetInput, InputTag

    inputs = []
    for key, entry in manifest.items():
        set_tag(f"rlvr.data.{key}.sha256", entry["sha256"], run_id)
        source = json.dumps({"uri": str(Path(entry["path"]).resolve()), "origin": entry["origin"]})
        dataset = DatasetEntity(
            name=key,
            digest=entry["sha256"][:16],
            source_type="local",
            source=source,
            schema=json.dumps({"columns": ["id", "problem", "answer", "source"]}),
            profile=json.dumps({"num_rows": entry["rows"]}),
        )
        inputs.append(DatasetInput(dataset, [InputTag("mlflow.data.context", f"{context}:{entry['dataset']}")]))
    try:
        MlflowClient().log_inputs(run_id, datasets=inputs)
    except Exception as error:  # noqa: BLE001 - the datasets' hashes are in the tags and the manifest anyway
        logger.warning("could not log datasets to MLflow: %s", error)
