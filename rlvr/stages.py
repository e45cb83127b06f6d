"""The pipeline stages, each one function called alike by DVC (``pipelines/``) and Prefect (``tasks/``).

Each stage runs in a nested MLflow run under the pipeline's parent run, logging the parsed config it ran
with, its metrics (with their step) and its artifacts.
"""

from __future__ import annotations

from pathlib import Path

from rlvr import launch, lineage, tracking
from rlvr.config import Params, Paths, to_dict

# Library modules are imported inside each stage: a stage process then loads only the stack it needs
# (torch, transformers and TRL take seconds to import).

STAGES = ("model", "data", "history", "select", "train", "evaluate", "report")


def _stage_run(stage: str, params: Params, config, parent_id: str | None):
    """The stage's MLflow run, with its config logged and its lineage tagged (``rlvr.lineage``)."""
    return tracking.stage_run(stage, params.mlflow, to_dict(config), parent_id, lineage.run_tags(stage, params))


def model(params: Params, out_dir: str, parent_id: str | None = None) -> Path:
    from rlvr.model import prepare_model

    with _stage_run("model", params, params.model, parent_id):
        return prepare_model(params.model.source, out_dir)


def data(params: Params, paths: Paths, parent_id: str | None = None) -> dict:
    from rlvr.registry import run_data

    with _stage_run("data", params, params.data, parent_id):
        manifest = run_data(params.data, paths.pool, paths.test, paths.benchmarks_dir, paths.data_manifest)
        for key, entry in manifest.items():
            tracking.log_metrics({f"{key}.rows": entry["rows"], f"{key}.missing_answer": entry["missing_answer"]})
        tracking.log_artifact(paths.data_manifest)
        for key, value in lineage.dataset_tags(paths.data_manifest).items():
            tracking.set_tag(key, value)
        return manifest


def history(params: Params, model_dir: str, pool_path: str, out_path: str, parent_id: str | None = None) -> dict:
    from rlvr.data import read_json
    from rlvr.history import run_history
    from rlvr.registry import excluded_ids

    if params.history.source == "grpo" and launch.needs_launch(params.history):
        args = ["--model", str(model_dir), "--pool", str(pool_path), "--out", str(out_path)]
        launch.relaunch(params.history, "pipelines.history", params, args, parent_id)
        return read_json(out_path)
    with _stage_run("history", params, params.history, parent_id):
        excluded = excluded_ids(params.paths.data_manifest)
        work_dir = params.paths.history_work
        result = run_history(params.history, model_dir, pool_path, params.model, out_path, work_dir, excluded)
        tracking.log_metrics({"examples": len(result), "max_epochs": max(map(len, result.values()), default=0)})
        tracking.log_artifact(out_path)
        return result


def select(
    params: Params,
    history_path: str,
    pool_path: str,
    out_path: str,
    ranking_path: str | None,
    parent_id: str | None = None,
) -> list[dict]:
    from rlvr.registry import excluded_ids
    from rlvr.select import run_select

    with _stage_run("select", params, params.select, parent_id):
        rows = run_select(
            history_path,
            pool_path,
            params.select.method,
            params.select.ranks,
            params.select.repeat,
            out_path,
            ranking_path,
            params.select.seed,
            excluded_ids(params.paths.data_manifest),
        )
        tracking.log_metrics({"selected_rows": len(rows)})
        tracking.set_tag("rlvr.selected_ids", ",".join(dict.fromkeys(row["id"] for row in rows)))
        tracking.log_artifact(out_path)
        if ranking_path:
            tracking.log_artifact(ranking_path)
        return rows


def train(params: Params, model_dir: str, train_path: str, out_dir: str, parent_id: str | None = None) -> list:
    from rlvr.data import read_records
    from rlvr.train import run_train

    if launch.needs_launch(params.train):
        args = ["--model", str(model_dir), "--data", str(train_path), "--out", str(out_dir)]
        launch.relaunch(params.train, "pipelines.train", params, args, parent_id)
        return read_records(Path(out_dir) / "train_log.jsonl")
    with _stage_run("train", params, params.train, parent_id):
        steps = run_train(params.train, model_dir, train_path, params.model, out_dir)
        tracking.log_artifact(Path(out_dir) / "train_log.jsonl")
        return steps


def evaluate(
    params: Params, model_dir: str, train_dir: str, test_path: str, out_dir: str, parent_id: str | None = None
) -> list[dict]:
    from rlvr.data import read_json
    from rlvr.evaluate import run_evaluate, suite

    benchmarks = suite(test_path, params.data.test, params.paths.benchmarks_dir, params.data.benchmarks)
    with _stage_run("evaluate", params, params.evaluate, parent_id):
        rows = run_evaluate(
            params.evaluate,
            params.model,
            model_dir,
            train_dir,
            benchmarks,
            out_dir,
            params.report.headline_mode,
            on_result=lambda step, metrics: tracking.log_metrics(metrics, step),
        )
        tracking.log_artifact(Path(out_dir) / "metrics.json")
        tracking.log_artifact(Path(out_dir) / "by_step.json")
        if params.mlflow.register_best:
            _register_best(params, train_dir, read_json(Path(out_dir) / "metrics.json")["best"])
        return rows


def _register_best(params: Params, train_dir: str, best: dict | None) -> None:
    """Register the run's best checkpoint (by the benchmark average of the headline grading) with its metrics."""
    from rlvr.checkpoints import checkpoints, is_finished

    if best is None or not is_finished(train_dir):  # a training still running registers once it has ended
        return
    checkpoint = dict(checkpoints(train_dir))[best["step"]]
    metrics = {key: value for key, value in best.items() if isinstance(value, int | float) and key != "step"}
    name = params.mlflow.registered_model or params.mlflow.experiment
    key_metric = f"average.accuracy_{params.report.headline_mode}"
    tracking.register_checkpoint(name, checkpoint, best["step"], metrics, key_metric)


def report(
    params: Params, train_dir: str, eval_dir: str, selection_path: str, out_dir: str, parent_id: str | None = None
) -> Path:
    from mlflow.tracking import MlflowClient

    from rlvr.report import run_report
    from rlvr.runs import from_mlflow, from_outputs

    config = params.report
    with _stage_run("report", params, config, parent_id) as active:
        runs = [from_outputs(params, train_dir, eval_dir, selection_path)]
        if config.compare_experiments:
            client = MlflowClient()
            experiments = [client.get_experiment_by_name(name) for name in config.compare_experiments]
            missing = [n for n, e in zip(config.compare_experiments, experiments, strict=True) if e is None]
            if missing:
                raise ValueError(f"report.compare_experiments: no MLflow experiment named {missing}")
            this = client.get_run(active.info.run_id).data.tags.get("mlflow.parentRunId") if active else None
            ids = [e.experiment_id for e in experiments]
            runs += from_mlflow(client, ids, config.compare_filter, exclude={this} if this else set())
        path = run_report(runs, out_dir, config.headline_mode, config.step)
        tracking.log_artifact(out_dir, "report")
        return path
