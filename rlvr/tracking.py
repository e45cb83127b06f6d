"""MLflow tracking: one parent run per pipeline run, one nested run per stage, every metric with its step.

The parent run is shared by the stages of one pipeline run even though DVC runs each stage in its own
process: stages find it by a pipeline key, taken from ``RLVR_PIPELINE_KEY`` if set, else from the
``dvc repro`` process that started them, else (a stage run by hand) the stage's own process.

Outages: a tracking server unreachable when a stage starts stops it within seconds with one line naming the
URI, before it writes anything. Unreachable later, logging never stops the work: what could not be logged is
kept and retried (at most every ``RETRY_SECONDS``), and what is still pending when the stage ends is written
to ``mlflow-pending/<run id>.jsonl`` and named in a warning (``python -m rlvr.tracking replay FILE`` logs it).

Shutdown: SIGTERM or SIGINT (Prefect cancellation, Ctrl-C, a preemption) ends the stage's and the pipeline's
runs as KILLED (other errors: FAILED).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import psutil
from mlflow.entities import Metric
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from rlvr import stages
from rlvr.config import Params, TrackingConfig, to_dict
from rlvr.errors import ConfigError

logger = logging.getLogger(__name__)

PIPELINE_KEY_ENV = "RLVR_PIPELINE_KEY"
PARENT_RUN_ENV = "RLVR_PARENT_RUN_ID"  # set for the processes a stage launches (accelerate launch)
PIPELINE_KEY_TAG = "rlvr.pipeline_key"
STAGE_TAG = "rlvr.stage"
RUNNER_TAG = "rlvr.runner"
BEST_ALIAS = "best"
PENDING_DIR = Path("mlflow-pending")
RETRY_SECONDS = 30.0
CLOSE_SECONDS = 30.0
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


class Terminated(BaseException):
    """SIGTERM received: unwinds like KeyboardInterrupt (which generic ``except Exception`` does not catch)."""


INTERRUPTS = (KeyboardInterrupt, Terminated)


def _raise_terminated(signum, frame) -> None:
    raise Terminated(f"signal {signum}")


@contextmanager
def interruptible() -> Iterator[None]:
    """In the main thread, SIGTERM raises :class:`Terminated` inside the block (so runs end as KILLED and
    files being written are left incomplete, to be discarded on resume); elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def end_status(error: BaseException | None) -> str:
    """The MLflow status of a run whose block ended with ``error``."""
    if error is None:
        return "FINISHED"
    return "KILLED" if isinstance(error, INTERRUPTS) else "FAILED"


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


class _Outbox:
    """Logging calls that could not reach MLflow, retried in order (see module docstring)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: list[tuple[str, str, Any]] = []  # (kind, run id, payload)
        self.failed_at = 0.0

    def send(self, kind: str, run_id: str, payload: Any) -> None:
        with self.lock:
            self.pending.append((kind, run_id, payload))
            if self.failed_at and time.monotonic() - self.failed_at < RETRY_SECONDS:
                return
            self.flush_locked()

    def flush_locked(self) -> bool:
        client = MlflowClient()
        while self.pending:
            kind, run_id, payload = self.pending[0]
            try:
                _SENDERS[kind](client, run_id, payload)
            except Exception as error:  # noqa: BLE001 - a server down: keep it and carry on
                if not _unreachable(error):  # refused by the store (e.g. a param set twice): not an outage
                    logger.warning("MLflow refused a %s of run %s: %s", kind, run_id, str(error).splitlines()[0])
                    self.pending.pop(0)
                    continue
                if not self.failed_at:
                    logger.warning("MLflow unreachable (%s): logging is kept and retried; the work goes on", error)
                self.failed_at = time.monotonic()
                return False
            self.pending.pop(0)
            if self.failed_at:
                logger.warning("MLflow reachable again: logged what was kept")
                self.failed_at = 0.0
        return True

    def close(self, run_id: str) -> None:
        """Last tries (for up to ``CLOSE_SECONDS``) of ``run_id``'s pending calls; those still failing go to a file
        named in a warning."""
        deadline = time.monotonic() + (CLOSE_SECONDS if self.pending else 0)
        with self.lock:
            while not self.flush_locked() and time.monotonic() < deadline:
                time.sleep(2)
            if not self.pending:
                return
            mine = [entry for entry in self.pending if entry[1] == run_id]
            self.pending = [entry for entry in self.pending if entry[1] != run_id]
        if mine:
            PENDING_DIR.mkdir(exist_ok=True)
            path = PENDING_DIR / f"{run_id}.jsonl"
            with path.open("a") as handle:
                for kind, run, payload in mine:
                    handle.write(json.dumps({"kind": kind, "run_id": run, "payload": payload}, default=str) + "\n")
            logger.warning(
                "MLflow still unreachable: %d logging calls of run %s written to %s "
                "(python -m rlvr.tracking replay %s logs them)",
                len(mine),
                run_id,
                path,
                path,
            )


def _unreachable(error: BaseException) -> bool:
    """Whether ``error`` says the tracking server could not be reached (rather than refusing the call)."""
    import requests

    seen: BaseException | None = error
    while seen is not None:
        text = str(seen)
        if isinstance(seen, requests.exceptions.ConnectionError | requests.exceptions.Timeout | ConnectionError):
            return True
        if any(sign in text for sign in ("Max retries exceeded", "Connection refused", "timed out", "ConnectionError")):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _send_metrics(client: MlflowClient, run_id: str, payload: dict) -> None:
    stamp = payload["timestamp"]
    metrics = [Metric(key, float(value), stamp, payload["step"]) for key, value in payload["metrics"].items()]
    for start in range(0, len(metrics), 900):  # the REST API takes up to 1,000 per batch
        client.log_batch(run_id, metrics=metrics[start : start + 900])


def _send_artifact(client: MlflowClient, run_id: str, payload: dict) -> None:
    path = Path(payload["path"])
    if path.is_dir():
        client.log_artifacts(run_id, str(path), payload["artifact_path"])
    elif path.is_file():
        client.log_artifact(run_id, str(path), payload["artifact_path"])


_SENDERS: dict[str, Callable[[MlflowClient, str, Any], None]] = {
    "metrics": _send_metrics,
    "tag": lambda client, run_id, payload: client.set_tag(run_id, payload[0], payload[1]),
    "artifact": _send_artifact,
    "dict": lambda client, run_id, payload: client.log_dict(run_id, payload[0], payload[1]),
    "params": lambda client, run_id, payload: client.log_batch(run_id, params=_params(payload)),
}
_OUTBOX = _Outbox()


def _params(values: Mapping[str, Any]) -> list:
    from mlflow.entities import Param

    return [Param(key, str(value)[:6000]) for key, value in values.items()]


def _active_id() -> str | None:
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
        _OUTBOX.close(run_id)
        status = end_status(error)
        try:
            mlflow.end_run(status)
        except Exception as failure:  # noqa: BLE001 - the work is done; the server being down must not undo it
            logger.warning("could not end MLflow run %s: %s", run_id, failure)
        if owns_parent and (error is not None or stage == stages.LAST):
            _terminate(parent_id, status)


def log_metrics(metrics: Mapping[str, float], step: int = 0, run_id: str | None = None) -> None:
    """Log metrics to ``run_id`` or the active run, if there is one (there is none in the non-zero ranks)."""
    run_id = run_id or _active_id()
    if run_id is not None and metrics:
        payload = {"metrics": {k: float(v) for k, v in metrics.items()}, "step": step, "timestamp": _now()}
        _OUTBOX.send("metrics", run_id, payload)


def log_params(values: Mapping[str, Any], run_id: str | None = None) -> None:
    run_id = run_id or _active_id()
    if run_id is not None and values:
        _OUTBOX.send("params", run_id, dict(values))


def set_tag(key: str, value: str, run_id: str | None = None) -> None:
    """Tag ``run_id`` or the active run, if there is one."""
    run_id = run_id or _active_id()
    if run_id is not None:
        _OUTBOX.send("tag", run_id, (key, str(value)))


def log_dict(value: Any, artifact_file: str, run_id: str | None = None) -> None:
    run_id = run_id or _active_id()
    if run_id is not None:
        _OUTBOX.send("dict", run_id, (value, artifact_file))


def log_artifact(path: str | Path, artifact_path: str | None = None, run_id: str | None = None) -> None:
    """Log a file or directory to ``run_id`` or the active run, if there is one."""
    run_id = run_id or _active_id()
    if run_id is not None and Path(path).exists():
        _OUTBOX.send("artifact", run_id, {"path": str(Path(path).resolve()), "artifact_path": artifact_path})


def _now() -> int:
    return int(time.time() * 1000)


def log_datasets(manifest: Mapping[str, Mapping[str, Any]], context: str, run_id: str | None = None) -> None:
    """The data stage's datasets as MLflow run inputs (the runs table's Dataset column; digest: the file's
    SHA-256 from the manifest) and as ``rlvr.data.<key>.sha256`` tags."""
    run_id = run_id or _active_id()
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


RUNS_VIEW = "rlvr"  # open the runs table as #/experiments/<id>/runs?viewStateShareKey=rlvr


def share_runs_view(run_id: str, param_keys: list[str], metric_keys: list[str]) -> None:
    """A shared view of the experiment's runs table with these params and metrics of the pipeline runs as its
    columns, newest first. (The MLflow UI reads a shared view from the experiment tag
    ``mlflow.sharedViewState.<key>``, JSON of the table's state, for the URL parameter ``viewStateShareKey``.)"""
    columns = [f"params.`{key}`" for key in param_keys] + [f"metrics.`{key}`" for key in metric_keys]
    state = {"selectedColumns": columns, "orderByKey": "attributes.start_time", "orderByAsc": False}
    try:
        client = MlflowClient()
        experiment_id = client.get_run(run_id).info.experiment_id
        client.set_experiment_tag(experiment_id, f"mlflow.sharedViewState.{RUNS_VIEW}", json.dumps(state))
    except Exception as error:  # noqa: BLE001 - a view of the UI; the runs hold the values anyway
        logger.warning("could not save the runs table view in MLflow: %s", error)


GENERATED_SECTIONS = ("Model metrics", "System metrics")  # the UI's own sections, for the charts it generates


CHARTS_VIEW = "rlvr-charts"  # open as #/experiments/<id>/runs?viewStateShareKey=rlvr-charts&compareRunsMode=CHART


def _line_chart(uuid: str, section: str, title: str, keys: list[str]) -> dict:
    """A line chart of the MLflow UI's chart view (its ``RunsChartsLineCardConfig``): ``keys`` by step."""
    return {
        "type": "LINE", "uuid": uuid, "metricSectionId": section, "deleted": False, "isGenerated": False,
        "displayName": title, "metricKey": keys[0], "selectedMetricKeys": keys, "xAxisKey": "step",
        "xAxisScaleType": "linear", "scaleType": "linear", "lineSmoothness": 0, "yAxisKey": "metric",
        "yAxisExpressions": [], "ignoreOutliers": False, "useGlobalXaxisKey": False, "useGlobalLineSmoothing": False,
        "range": {}, "selectedXAxisMetricKey": "",
    }  # fmt: skip


def share_charts_view(run_id: str, benchmarks: list[str], mode: str) -> None:
    """A shared chart view of the experiment: first, held-out accuracy by step under grading ``mode`` for the
    benchmark average and each benchmark, each with its 95% interval (``_low``, ``_high``), and the training
    example's accuracy beside them; the charts MLflow generates for every other metric follow, folded."""
    section = "rlvr-heldout"
    charts = [_line_chart("rlvr-train", section, "training example: accuracy of the rollouts", ["train.accuracy"])]
    for name in ["average", *benchmarks]:
        key = f"{name}.accuracy_{mode}"
        title = f"{name}: held-out accuracy ({mode}) with its 95% interval"
        charts.append(_line_chart(f"rlvr-{name}", section, title, [key, f"{key}_low", f"{key}_high"]))
    sections = [{"uuid": section, "name": "Held-out accuracy by step", "display": True}] + [
        {"uuid": f"rlvr-{name.split()[0].lower()}", "name": name, "display": False} for name in GENERATED_SECTIONS
    ]
    sections = [s | {"isReordered": False, "deleted": False, "isGenerated": s["uuid"] != section} for s in sections]
    state = {"compareRunCharts": charts, "compareRunSections": sections, "hideEmptyCharts": True}
    try:
        client = MlflowClient()
        experiment_id = client.get_run(run_id).info.experiment_id
        client.set_experiment_tag(experiment_id, f"mlflow.sharedViewState.{CHARTS_VIEW}", json.dumps(state))
    except Exception as error:  # noqa: BLE001 - a view of the UI; the runs hold the values anyway
        logger.warning("could not save the chart view in MLflow: %s", error)


def log_table(rows: list[dict], artifact_file: str, run_id: str | None = None) -> None:
    """Rows as an MLflow table artifact (browsable in the run's artifacts and the evaluation view)."""
    run_id = run_id or _active_id()
    if run_id is None or not rows:
        return
    columns = list(dict.fromkeys(key for row in rows for key in row))
    table = {column: [row.get(column) for row in rows] for column in columns}  # MLflow's shape: one list a column
    try:
        MlflowClient().log_table(run_id, data=table, artifact_file=artifact_file)
    except Exception as error:  # noqa: BLE001 - the same samples are in the eval folder's jsonl files
        logger.warning("could not log table %s to MLflow: %s", artifact_file, error)


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


def replay(path: str | Path) -> int:
    """Log the calls of a ``mlflow-pending`` file (see module docstring); returns how many were logged."""
    client = MlflowClient()
    entries = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    for entry in entries:
        payload = entry["payload"]
        _SENDERS[entry["kind"]](client, entry["run_id"], tuple(payload) if isinstance(payload, list) else payload)
    return len(entries)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "replay":
        sys.exit("usage: python -m rlvr.tracking replay mlflow-pending/<run id>.jsonl")
    print(f"logged {replay(sys.argv[2])} calls from {sys.argv[2]}")
