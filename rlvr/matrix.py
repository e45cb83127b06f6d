"""The cross-family matrix: models x example sets x algorithms, each cell one experiment with its own params.

A matrix file names a base params file and, per axis, named overrides of it::

    base: ../smoke.yaml              # relative to the matrix file
    root: outputs/matrix             # where every cell writes
    models:                          # any params section but paths and mlflow, and
      smollm2: {model: {source: embedded}}   # base: a params file replacing the matrix's base for this model
    example_sets:                    # the select section only
      pi1: {select: {ranks: "1"}}
    algorithms:                      # the train section only
      grpo: {train: {algorithm: grpo}}
    report: {headline_mode: strict}  # the cross-family report (report section)
    mlflow: {experiment: families}   # optional: one MLflow store and experiment for every cell

A model's stages up to the history (model, data, history) depend on the model's overrides only, so its cells
share them: their outputs lie in ``<root>/<model>/``, the rest in ``<root>/<model>/<examples>-<algorithm>/``,
and the cross-family report in ``<root>-report``. Each cell tracks in its params' MLflow experiment unless the
matrix's ``mlflow`` section sets one for all.
"""

from __future__ import annotations

import itertools
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rlvr.config import Params, Paths, ReportConfig, merge, parse_params
from rlvr.errors import ConfigError, InputError
from rlvr.stages import STAGES

logger = logging.getLogger(__name__)

AXES = {"models": None, "example_sets": ("select",), "algorithms": ("train",)}  # sections each axis may set
NOT_OVERRIDABLE = ("paths", "mlflow")
REPLACED = ("trl",)  # an algorithm's TRL options replace the base's (they are the trainer's own)
MODEL_PATHS = tuple(key for stage in STAGES if stage.per_model for key in stage.writes)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Cell:
    """One experiment of the matrix."""

    model: str
    examples: str
    algorithm: str
    params: Params

    @property
    def name(self) -> str:
        return f"{self.model}/{self.examples}-{self.algorithm}"


@dataclass(frozen=True)
class Matrix:
    path: Path
    root: str
    cells: list[Cell]
    report: ReportConfig

    @property
    def report_dir(self) -> str:
        """Beside the root, not in it: the DVC report stage depends on the whole root."""
        return f"{self.root}-report"

    def cell(self, model: str, examples: str, algorithm: str) -> Cell:
        for cell in self.cells:
            if (cell.model, cell.examples, cell.algorithm) == (model, examples, algorithm):
                return cell
        raise ConfigError(f"{self.path}: no cell {model}/{examples}-{algorithm}")


def _axis(spec: dict, axis: str, where: Path) -> dict[str, dict]:
    entries = spec.get(axis) or {}
    if not isinstance(entries, dict) or not entries:
        raise ConfigError(f"{where}: {axis} must be a non-empty mapping of names to params overrides")
    allowed = AXES[axis]
    for name, override in entries.items():
        if not _NAME.match(str(name)):
            raise ConfigError(f"{where}: {axis}.{name}: names are letters, digits, '_', '.' and '-'")
        if not isinstance(override or {}, dict):
            raise ConfigError(f"{where}: {axis}.{name} must be a mapping of params sections")
        for section in override or {}:
            if axis == "models" and section == "base":
                continue
            if section in NOT_OVERRIDABLE or (allowed is not None and section not in allowed):
                may = ", ".join(allowed) if allowed else f"any section but {', '.join(NOT_OVERRIDABLE)}"
                raise ConfigError(f"{where}: {axis}.{name}.{section}: {axis} may set {may}")
    return {str(name): override or {} for name, override in entries.items()}


def cell_paths(root: str, model: str, examples: str, algorithm: str, base: dict) -> dict[str, str]:
    """The cell's ``paths`` section: the model's shared outputs under ``<root>/<model>``, the rest per cell."""
    paths = {}
    for key, value in base.items():
        folder = f"{root}/{model}" if key in MODEL_PATHS else f"{root}/{model}/{examples}-{algorithm}"
        relative = Path(value).relative_to("outputs") if value.startswith("outputs/") else Path(value).name
        paths[key] = f"{folder}/{relative}"
    return paths


def _params_file(path: Path, where: str) -> dict[str, Any]:
    if not path.is_file():
        raise InputError(f"{where}: params file not found: {path}")
    return yaml.safe_load(path.read_text()) or {}


def load_matrix(path: str | Path, overrides: dict | None = None) -> Matrix:
    """Read and validate a matrix file; every cell's params are checked like a params file. ``overrides``
    (nested params sections, e.g. from ``--set``) apply to every cell."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"matrix file not found: {path}")
    spec = yaml.safe_load(path.read_text()) or {}
    unknown = set(spec) - {"base", "root", "report", "mlflow", *AXES}
    if unknown:
        raise ConfigError(f"{path}: unknown matrix key: {sorted(unknown)[0]}")
    if "base" not in spec:
        raise ConfigError(f"{path}: base (the params file every cell starts from) is missing")
    base = _params_file(path.parent / spec["base"], f"{path}: base")
    root = str(spec.get("root", "outputs/matrix")).rstrip("/")
    axes = {axis: _axis(spec, axis, path) for axis in AXES}
    cells = []
    for (model, m), (examples, e), (algorithm, a) in itertools.product(*(axes[axis].items() for axis in AXES)):
        m = dict(m)
        model_base = _params_file(path.parent / m.pop("base"), f"{path}: models.{model}.base") if "base" in m else base
        values = merge(merge(merge(merge(model_base, m), e), a, replace=REPLACED), overrides or {})
        values["mlflow"] = merge(values.get("mlflow") or {}, spec.get("mlflow") or {})
        values["paths"] = cell_paths(
            root, model, examples, algorithm, {**Paths().model_dump(), **base.get("paths", {})}
        )
        try:
            params = parse_params(values)
        except ConfigError as error:
            raise ConfigError(f"{path}: cell {model}/{examples}-{algorithm}: {error}") from error
        cells.append(Cell(model, examples, algorithm, params))
    try:
        report = parse_params({"report": merge(base.get("report") or {}, spec.get("report") or {})}).report
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from error
    return Matrix(path, root, cells, report)


def write_report(matrix: Matrix) -> Path | None:
    """One report over every cell evaluated so far (a training still running is marked partial); None if none."""
    from rlvr.report import run_report
    from rlvr.runs import from_outputs

    runs = []
    for cell in matrix.cells:
        paths = cell.params.paths
        if (Path(paths.eval_dir) / "by_step.json").is_file() and Path(paths.selection).is_file():
            runs.append(from_outputs(cell.params, paths.train_dir, paths.eval_dir, paths.selection, name=cell.name))
    if not runs:
        logger.warning("no cell of %s has been evaluated yet: no report", matrix.path)
        return None
    return run_report(runs, matrix.report_dir, matrix.report.headline_mode, matrix.report.step)
