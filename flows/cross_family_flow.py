"""Cross-family flows over a matrix file (``rlvr.matrix``): the whole matrix, and its (nightly) evaluation; their
command line is ``python -m flows.cross_family``.

Each cell runs as a subflow with its own MLflow parent run, nested under the matrix's run; a model's first
stages are shared by its cells through their cache keys. One report covers every cell.

``dispatch`` says where the cells run: ``in-process``, one after another in the matrix flow's process (the laptop
default), or ``work-pool``: each cell a flow run of the ``experiment-cell`` deployment (``prefect.yaml``), taken by
whichever worker of its pool is free, all at once; the matrix flow waits for them. Either way a cell that fails
(or whose worker dies: its run is marked crashed) is named, the report covers the cells that finished, and a rerun
skips the finished cells and resumes the others from their last checkpoint.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

from mlflow.tracking import MlflowClient
from prefect import flow, get_run_logger, task
from prefect.runtime import flow_run

from flows.artifacts import publish_report
from flows.cli import Dispatch, FanOut
from flows.experiment_flow import evaluation_round, run_stages
from rlvr import tracking
from rlvr.config import Overrides, override_values
from rlvr.matrix import Cell, Matrix, load_matrix, write_report
from rlvr.training.checkpoints import RUN_FILE
from tasks.stages import is_current

CELL_DEPLOYMENT = "experiment-cell/experiment-cell"  # <flow>/<deployment> in prefect.yaml
POLL_SECONDS = 5.0


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


class CellsFailed(RuntimeError):
    """Some cells of the matrix did not finish; the report covers the others."""


def _in_process(cells: list[Cell], matrix_path: str, matrix_run_id: str, fan_out, values) -> dict[str, tuple]:
    """Each cell as a subflow of this flow run, one after another: name -> (final state, seconds)."""
    ended = {}
    for cell in cells:
        start = time.monotonic()
        state = experiment_cell(
            matrix_path, cell.model, cell.variant, matrix_run_id, fan_out, values, return_state=True
        )
        ended[cell.name] = (state, time.monotonic() - start)
    return ended


def in_turn(cells: list[Cell]) -> list[Cell]:
    """``cells`` one model after another in turn (first cells of every model, then second ones, ...): workers take
    flow runs in the order they were sent, so the first ones start every model's shared stages at once."""
    by_model: dict[str, list[Cell]] = {}
    for cell in cells:
        by_model.setdefault(cell.model, []).append(cell)
    return [cell for turn in itertools.zip_longest(*by_model.values()) for cell in turn if cell is not None]


def _dispatched(cells: list[Cell], matrix_path: str, matrix_run_id: str, fan_out, values) -> dict[str, tuple]:
    """Each cell as a flow run of the cell deployment, all sent at once (:func:`in_turn`), then awaited: name ->
    (final state, seconds it ran on the worker)."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    submitted = {}
    for cell in in_turn(cells):
        parameters = {
            "matrix_path": matrix_path,
            "model": cell.model,
            "variant": cell.variant,
            "matrix_run_id": matrix_run_id,
            "fan_out": (fan_out or FanOut()).model_dump(),
            "overrides": values or None,
        }
        submitted[cell.name] = run_deployment(CELL_DEPLOYMENT, parameters=parameters, timeout=0).id
        get_run_logger().info("cell %s: flow run %s submitted to the work pool", cell.name, submitted[cell.name])
    ended, pending = {}, dict(submitted)
    with get_client(sync_client=True) as client:
        while pending:
            for name, run_id in list(pending.items()):
                run = client.read_flow_run(run_id)
                if run.state is not None and run.state.is_final():
                    ended[name] = (run.state, run.total_run_time.total_seconds())
                    get_run_logger().info("cell %s: %s (flow run %s)", name, run.state.name, run_id)
                    del pending[name]
            if pending:
                time.sleep(POLL_SECONDS)
    return ended


@flow(name="cross-family")
def cross_family(
    matrix_path: str = "configs/matrix/smoke.yaml",
    fan_out: FanOut | None = None,
    overrides: Overrides | None = None,
    dispatch: Dispatch = "in-process",
) -> str | None:
    """Every cell of the matrix (models x example sets x algorithms), then the cross-family report;
    ``overrides`` apply to every cell; ``dispatch``: where the cells run (see module docstring). Cells that
    finished before are skipped. Fails, naming the cells, where some did not finish (after the report)."""
    values = override_values(overrides)
    matrix = load_matrix(matrix_path, values)
    with _matrix_run(matrix, "prefect-matrix") as matrix_run_id:
        todo = []
        for cell in matrix.cells:
            if is_current(cell.params):
                get_run_logger().info("cell %s: finished before, skipped", cell.name)
            else:
                todo.append(cell)
        run_cells = _dispatched if dispatch == "work-pool" else _in_process
        ended = run_cells(todo, matrix_path, matrix_run_id, fan_out, values)
        seconds = {name: elapsed for name, (state, elapsed) in ended.items() if state.is_completed()}
        for name, elapsed in seconds.items():
            get_run_logger().info("cell %s: %.1f min", name, elapsed / 60)
        report = cross_family_report(matrix_path, matrix_run_id, values, seconds)
        if failed := {name: state for name, (state, _) in ended.items() if not state.is_completed()}:
            named = ", ".join(f"{name} ({state.name})" for name, state in failed.items())
            raise CellsFailed(f"{len(failed)} of {len(matrix.cells)} cells did not finish: {named}; report: {report}")
        return report


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
                get_run_logger().info("%s: no training started, skipped", cell.name)
                continue
            tags = _cell_tags(cell, matrix_run_id)
            key = f"prefect-{flow_run.id}-{cell.name}"
            with tracking.parent_run(cell.params.mlflow, key, "prefect-evaluation", tags=tags, pipeline=False) as run:
                evaluation_round(cell.params, run, fan_out or FanOut())
        return cross_family_report(matrix_path, matrix_run_id, values)
