"""Task runners for fanning checkpoint evaluation out: threads in this process, or a Dask cluster.

``threads`` evaluates one model at a time unless ``workers`` says otherwise: loading transformers models in
several threads at once is not safe (measured: "Cannot copy out of meta tensor"), and one GPU holds one model.

``dask`` with an ``address`` uses a running Dask scheduler, whose workers may sit on other GPUs and nodes
(start one worker per GPU, ``--nthreads 1``, so that each evaluates one checkpoint at a time); without one, a
local cluster of ``workers`` processes.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from rlvr.config import Params, parse_overrides
from rlvr.errors import ConfigError, InputError

TASK_RUNNERS = ("threads", "dask")


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


def flow_cli(
    prog: str, description: str, input_option: str, default: str, check: Callable[..., Any]
) -> argparse.ArgumentParser:
    """A flow's command line: its input file, ``--set`` overrides and the fan-out options."""
    cli = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    cli.add_argument(input_option, default=default, help="input file (default: %(default)s)")
    cli.add_argument(
        "--set",
        dest="assignments",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a params value (repeatable), e.g. --set train.learning_rate=3e-5; read as YAML",
    )
    cli.add_argument(
        "--task-runner",
        choices=TASK_RUNNERS,
        default="threads",
        help="where checkpoints are evaluated (default: threads)",
    )
    cli.add_argument("--dask-address", help="a running Dask scheduler (default: a local cluster)")
    cli.set_defaults(check=check)
    return cli


def parse_flow_args(cli: argparse.ArgumentParser, input_name: str) -> argparse.Namespace:
    """Parsed arguments, the input file and overrides checked first: a bad one exits with one line naming it,
    status 2. ``args.overrides`` holds the ``--set`` values as nested sections."""
    args = cli.parse_args()
    try:
        args.overrides = parse_overrides(args.assignments)
        args.check(getattr(args, input_name), args.overrides)
    except (ConfigError, InputError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    return args


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
