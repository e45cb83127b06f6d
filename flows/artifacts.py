"""A flow run's report as Prefect artifacts: the findings and the main table, links to the HTML report and to
the MLflow run."""

from __future__ import annotations

from pathlib import Path

from rlvr.config import Params


def publish_report(params: Params, parent_id: str | None, key_prefix: str = "") -> None:
    """The report as Prefect artifacts of the flow run: its findings and main table (Markdown), the main table
    (a table artifact), and links to the MLflow pipeline run and the HTML report."""
    from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

    from rlvr.stages.report import summary_tables
    from rlvr.tracking import run_url

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
            run_url(params, parent_id), link_text="MLflow pipeline run", key=f"{key}-mlflow",
            description="The pipeline run in MLflow (a local store: open it with `make mlflow-ui`)",
        )  # fmt: skip
