"""The report stage: tables (``tables``), figures (``figures``) and the document (``document``) over this run
and the runs it is compared with, rendered (``blocks``) as Markdown and a self-contained HTML page."""

from __future__ import annotations

from pathlib import Path

from rlvr.config import Params
from rlvr.errors import ConfigError
from rlvr.files import atomic_write_text, read_json, write_json
from rlvr.metrics import AVERAGE, metric_name
from rlvr.runs import RunResult
from rlvr.stages.report.blocks import Items, Table, html_page, markdown
from rlvr.stages.report.document import TITLE, document
from rlvr.stages.report.tables import load_reference

SUMMARY_FILE = "summary.json"  # the findings and the main table, for other views (Prefect artifacts)


def summary_tables(report_dir: str | Path) -> tuple[list[str], list[str], list[list[str]]]:
    """The findings and the main table (header, rows) of the report in ``report_dir``."""
    summary = read_json(Path(report_dir) / SUMMARY_FILE)
    return summary["findings"], summary["main_table"]["header"], summary["main_table"]["rows"]


def run_report(runs: list[RunResult], out_dir: str | Path, mode: str, step: int | None = None) -> Path:
    """The report's files in ``out_dir``: ``report.md``, ``report.html``, the PNGs and ``by_step.json`` (the
    first run's training and held-out average accuracy by step, for DVC plots). Returns the Markdown path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    blocks = document(runs, mode, step, out_dir, load_reference())
    current = runs[0]
    rows = [
        {
            "step": s,
            "train_accuracy": current.train_accuracy.get(s),
            "heldout_average_accuracy": current.value(s, AVERAGE, metric_name("accuracy", mode)),
        }
        for s in sorted(current.evals)
    ]
    write_json(out_dir / "by_step.json", rows)
    findings = next(block.items for block in blocks if isinstance(block, Items))
    header, table = next((block.header, block.rows) for block in blocks if isinstance(block, Table))
    write_json(out_dir / SUMMARY_FILE, {"findings": findings, "main_table": {"header": header, "rows": table}})
    atomic_write_text(out_dir / "report.html", html_page(blocks, out_dir, TITLE))
    atomic_write_text(out_dir / "report.md", markdown(blocks))
    return out_dir / "report.md"


def run(params: Params, parent_id: str | None = None) -> Path:
    """The report stage: this run (from its outputs) and the pipeline runs of ``report.compare_experiments``
    (from MLflow) into ``paths.report_dir``; the summary of this run also goes to its pipeline (parent) run."""
    from mlflow.tracking import MlflowClient

    from rlvr import tracking
    from rlvr.runs import VIEW_METRICS, chart_series, from_mlflow, from_outputs, summary

    config, paths = params.report, params.paths
    with tracking.stage_run("report", params, parent_id) as active:
        this = from_outputs(params, paths.train_dir, paths.eval_dir, paths.selection)
        runs = [this]
        parent = active.data.tags.get("mlflow.parentRunId") if active else None
        if config.compare_experiments:
            client = MlflowClient()
            experiments = [client.get_experiment_by_name(name) for name in config.compare_experiments]
            missing = [n for n, e in zip(config.compare_experiments, experiments, strict=True) if e is None]
            if missing:
                raise ConfigError(f"report.compare_experiments: no MLflow experiment named {missing}")
            ids = [e.experiment_id for e in experiments]
            runs += from_mlflow(client, ids, config.compare_filter, exclude={parent} if parent else set())
        path = run_report(runs, paths.report_dir, config.headline_mode, config.step)
        tracking.log_artifact(paths.report_dir, "report")
        if parent:  # the pipeline run holds the report too: it is the row a user opens in the runs table
            tracking.log_artifact(paths.report_dir, "report", run_id=parent)
            _datasets_of_cached_data_stage(paths.data_manifest, parent)
            params_summary, metrics_summary = summary(params, this)
            tracking.log_params(params_summary, run_id=parent)
            tracking.log_metrics(metrics_summary, run_id=parent)
            for step, values in chart_series(this, config.headline_mode).items():
                tracking.log_metrics(values, step, run_id=parent)
            shown = [key for key in VIEW_METRICS if key in metrics_summary]
            tracking.share_runs_view(parent, sorted(params_summary), shown)
            tracking.share_charts_view(parent, params.data.suite_names, config.headline_mode)
        return path


def _datasets_of_cached_data_stage(manifest: str | Path, parent: str) -> None:
    """The pipeline run's Dataset column where the data stage did not run in it (its outputs were up to date)."""
    from mlflow.tracking import MlflowClient

    from rlvr import tracking

    if Path(manifest).exists() and not MlflowClient().get_run(parent).inputs.dataset_inputs:
        tracking.log_datasets(read_json(manifest), "data", run_id=parent)
