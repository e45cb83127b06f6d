"""What the MLflow UI shows beyond the runs' own data: shared views of the runs table and of the charts, tables of
samples, and the UI address of a run. Written with MLflow's client directly (not the outbox): a view is an
experiment's tag, and the runs hold the same values anyway."""

from __future__ import annotations

import json
import logging

from mlflow.tracking import MlflowClient

from rlvr.config import Params
from rlvr.metrics import AVERAGE, accuracy_names
from rlvr.tracking.runs import USER_TRACKING_URI, active_id

logger = logging.getLogger("rlvr.tracking")

RUNS_VIEW = "rlvr"  # open the runs table as #/experiments/<id>/runs?viewStateShareKey=rlvr


def share_runs_view(run_id: str, param_keys: list[str], metric_keys: list[str]) -> None:
    """A shared view of the experiment's runs table with these params and metrics of the pipeline runs as its
    columns, newest first. (The MLflow UI reads a shared view from the experiment tag
    ``mlflow.sharedViewState.<key>``, JSON of the table's state, for the URL parameter ``viewStateShareKey``.)"""
    columns = [f"params.`{key}`" for key in param_keys] + [f"metrics.`{key}`" for key in metric_keys]
    state = {"selectedColumns": columns, "orderByKey": "attributes.start_time", "orderByAsc": False}
    _share_view(run_id, RUNS_VIEW, state, "runs table view")


def _share_view(run_id: str, key: str, state: dict, what: str) -> None:
    """Save ``state`` as the shared view ``key`` of ``run_id``'s experiment (the experiment tag
    ``mlflow.sharedViewState.<key>``)."""
    try:
        client = MlflowClient()
        experiment_id = client.get_run(run_id).info.experiment_id
        client.set_experiment_tag(experiment_id, f"mlflow.sharedViewState.{key}", json.dumps(state))
    except Exception as error:  # noqa: BLE001 - a view of the UI; the runs hold the values anyway
        logger.warning("could not save the %s in MLflow: %s", what, error)


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
    for name in [AVERAGE, *benchmarks]:
        title = f"{name}: held-out accuracy ({mode}) with its 95% interval"
        charts.append(_line_chart(f"rlvr-{name}", section, title, list(accuracy_names(mode, name))))
    sections = [{"uuid": section, "name": "Held-out accuracy by step", "display": True}] + [
        {"uuid": f"rlvr-{name.split()[0].lower()}", "name": name, "display": False} for name in GENERATED_SECTIONS
    ]
    sections = [s | {"isReordered": False, "deleted": False, "isGenerated": s["uuid"] != section} for s in sections]
    state = {"compareRunCharts": charts, "compareRunSections": sections, "hideEmptyCharts": True}
    _share_view(run_id, CHARTS_VIEW, state, "chart view")


def log_table(rows: list[dict], artifact_file: str, run_id: str | None = None) -> None:
    """Rows as an MLflow table artifact (browsable in the run's artifacts and the evaluation view)."""
    run_id = run_id or active_id()
    if run_id is None or not rows:
        return
    columns = list(dict.fromkeys(key for row in rows for key in row))
    table = {column: [row.get(column) for row in rows] for column in columns}  # MLflow's shape: one list a column
    try:
        MlflowClient().log_table(run_id, data=table, artifact_file=artifact_file)
    except Exception as error:  # noqa: BLE001 - the same samples are in the eval folder's jsonl files
        logger.warning("could not log table %s to MLflow: %s", artifact_file, error)


def run_url(params: Params, run_id: str) -> str:
    """The MLflow UI address of a run: on its tracking server, or the local UI (``mlflow ui``) for a local store."""
    uri = USER_TRACKING_URI or params.mlflow.tracking_uri
    base = uri.rstrip("/") if uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000"
    experiment = MlflowClient().get_run(run_id).info.experiment_id
    return f"{base}/#/experiments/{experiment}/runs/{run_id}"
