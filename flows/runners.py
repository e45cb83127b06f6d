"""Task runners for fanning checkpoint evaluation out: threads in this process, or a Dask cluster.

``threads`` evaluates one model at a time unless ``workers`` says otherwise: loading transformers models in
several threads at once is not safe (measured: "Cannot copy out of meta tensor"), and one GPU holds one model.

``dask`` with an ``address`` uses a running Dask scheduler, whose workers may sit on other GPUs and nodes
(start one worker per GPU, ``--nthreads 1``, so that each evaluates one checkpoint at a time); without one, a
local cluster of ``workers`` processes.
"""

from __future__ import annotations

from pathlib import Path

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from flows.cli import TASK_RUNNERS
from rlvr.config import Params


def make_task_runner(kind: str = "threads", address: str | None = None, workers: int | None = None) -> TaskRunner:
    """The task runner named ``kind`` (see module docstring)."""
    if kind == "threads":
        return ThreadPoolTaskRunner(max_workers=workers or 1)
    if kind == "dask":
        from prefect_dask import DaskTaskRunner

        if address:
            return DaskTaskRunner(address=address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": workers or 1, "threads_per_worker": 1})
    raise ValueError(f"task_runner must be one of {', '.join(TASK_RUNNERS)}, got {kind!r}")


def publish_report(params: Params, parent_id: str | None, key_prefix: str = "") -> None:
    """The report as Prefect artifacts of the flow run: its findings and main table (Markdown), the main table
    (a table artifact), and links to the MLflow pipeline run and the HTML report."""
    from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

    from rlvr.report import summary_tables

    report_dir = Path(params.paths.report_dir)
    if not (report_dir / "report.md").is_file():
        return
    findings, header, rows = summary_tables(report_dir)
    key = f"{key_prefix}rlvr-report".lower().replace("_", "-").replace("/", "-").replace(".", "-")
    text = "## 1-shot RLVR report\n\n### Findings\n\n" + "\n".join(f"- {f}" for f in findings)
    text += "\n\n### Main table (best checkpoints)\n\n" + "| " + " | ".join(header) + " |\n|" + "---|" * len(header)
    text += "".join("\n| " + " | ".join(row) + " |" for row in rows)
    create_markdown_artifact(text, key=key, description="Findings and main table of the report")
    create_table_artifact(
        [dict(zip(header, row, strict=True)) for row in rows],
        key=f"{key}-table",
        description="Main table: accuracy (percent ± 95% half-width) at each run's best checkpoint",
    )
    if (findings := report_dir / "findings.md").is_file():  # a findings matrix: its claims with their verdicts
        text = findings.read_text().split("\n![")[0]  # the table; the figures are in findings.html
        create_markdown_artifact(text, key=f"{key}-findings", description="The paper's claims tested, with verdicts")
    html = (report_dir / "report.html").resolve()
    create_link_artifact(html.as_uri(), link_text="report.html", key=f"{key}-html", description="The full report")
    if parent_id:
        create_link_artifact(
            tracking_run_url(params, parent_id), link_text="MLflow pipeline run", key=f"{key}-mlflow",
            description="The pipeline run in MLflow (a local store: open it with `make mlflow-ui`)",
        )  # fmt: skip


def tracking_run_url(params: Params, run_id: str) -> str:
    """The MLflow UI address of a run: on its tracking server, or the local UI (``mlflow ui``) for a local store."""
    from mlflow.tracking import MlflowClient

    from rlvr.tracking import USER_TRACKING_URI

    uri = USER_TRACKING_URI or params.mlflow.tracking_uri
    base = uri.rstrip("/") if uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000"
    experiment = MlflowClient().get_run(run_id).info.experiment_id
    return f"{base}/#/experiments/{experiment}/runs/{run_id}"
