"""Cross-family flows over a matrix file (``rlvr.matrix``): the whole matrix, and its (nightly) evaluation; their
command line is ``python -m flows.cross_family``.

Each cell runs as a subflow with its own MLflow parent run, nested under the matrix's run; a model's first
stages are shared by its cells through their cache keys. One report covers every cell.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from mlflow.tracking import MlflowClient
from prefect import flow, task
from prefect.runtime import flow_run

from flows.artifacts import publish_report
from flows.cli import FanOut
from flows.experiment_flow import evaluation_round, run_stages
from rlvr import tracking
from rlvr.config import Overrides, override_values
from rlvr.matrix import Cell, Matrix, load_matrix, write_report
from rlvr.training.checkpoints import RUN_FILE

logger = logging.getLogger(__name__)


def _matrix_run(matrix: Matrix, source: str):
    """The MLflow run grouping the cells' runs (not itself a pipeline run)."""
    tags = {"rlvr.matrix": str(matrix.path)}
    key = f"prefect-{flow_run.id}"
    return tracking.parent_run(matrix.cells[0].params.mlflow, key, source, tags=tags, pipeline=False)


def _cell_tags(cell: Cell, matrix_run_id: str) -> dict[str, str]:
    return {"mlflow.parentRunId": matrix_run_id, "rlvr.cell": cell.name}


@flow(name="experiment-cell", flow_run_name="{model}-{variant}")
def experiment_cell(
    matrix_path: str,
    model: str,
    variant: str,
    matrix_run_id: str,
    fan_out: FanOut | None = None,
    overrides: Overrides | None = None,
) -> str:
    """One cell of the matrix: every stage, under a pipeline run nested in the matrix's run."""
    cell = load_matrix(matrix_path, override_values(overrides)).cell(model, variant)
    tags = _cell_tags(cell, matrix_run_id)
    with tracking.parent_run(cell.params.mlflow, f"prefect-{flow_run.id}", "prefect", tags=tags) as parent_id:
        return run_stages(cell.params, parent_id, fan_out or FanOut())


@task(name="cross-family-report")
def cross_family_report(
    matrix_path: str, matrix_run_id: str, overrides: dict | None = None, seconds: dict[str, float] | None = None
) -> str | None:
    """One report over every cell evaluated so far (and the findings report, where the matrix has findings),
    logged to the matrix's MLflow run and published as artifacts of the flow run; ``seconds``: each cell's wall
    time in this run."""
    matrix = load_matrix(matrix_path, overrides)
    path = write_report(matrix, seconds)
    if path is not None:
        client = MlflowClient()
        client.log_artifacts(matrix_run_id, matrix.report_dir, "report")
        for name, value in (seconds or {}).items():
            client.log_metric(matrix_run_id, f"cell_minutes.{name.replace('/', '.')}", value / 60)
        report_paths = matrix.cells[0].params.paths.model_copy(update={"report_dir": matrix.report_dir})
        publish_report(matrix.cells[0].params.model_copy(update={"paths": report_paths}), matrix_run_id, "matrix-")
    return str(path) if path else None


@flow(name="cross-family")
def cross_family(
    matrix_path: str = "configs/matrix/smoke.yaml", fan_out: FanOut | None = None, overrides: Overrides | None = None
) -> str | None:
    """Every cell of the matrix (models x example sets x algorithms), then the cross-family report;
    ``overrides`` apply to every cell."""
    values = override_values(overrides)
    matrix = load_matrix(matrix_path, values)
    with _matrix_run(matrix, "prefect-matrix") as matrix_run_id:
        seconds = {}
        for cell in matrix.cells:
            start = time.monotonic()
            experiment_cell(matrix_path, cell.model, cell.variant, matrix_run_id, fan_out, values)
            seconds[cell.name] = time.monotonic() - start
            logger.info("cell %s: %.1f min", cell.name, seconds[cell.name] / 60)
        return cross_family_report(matrix_path, matrix_run_id, values, seconds)


@flow(name="cross-family-evaluation")
def cross_family_evaluation(
    matrix_path: str = "configs/matrix/smoke.yaml", fan_out: FanOut | None = None, overrides: Overrides | None = None
) -> str | None:
    """Evaluate the new checkpoints of every cell whose training has started (finished or still running), then
    the cross-family report: what the nightly deployment runs."""
    values = override_values(overrides)
    matrix = load_matrix(matrix_path, values)
    with _matrix_run(matrix, "prefect-evaluation") as matrix_run_id:
        for cell in matrix.cells:
            if not (Path(cell.params.paths.train_dir) / RUN_FILE).is_file():
                logger.info("%s: no training started, skipped", cell.name)
                continue
            tags = _cell_tags(cell, matrix_run_id)
            key = f"prefect-{flow_run.id}-{cell.name}"
            with tracking.parent_run(cell.params.mlflow, key, "prefect-evaluation", tags=tags, pipeline=False) as run:
                evaluation_round(cell.params, run, fan_out or FanOut())
        return cross_family_report(matrix_path, matrix_run_id, values)
