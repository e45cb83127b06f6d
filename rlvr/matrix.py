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
      ppo: {overlay: ppo_preset.yaml}  # the train settings a preset overlay writes itself (not its base's)
    report: {headline_mode: strict}  # the cross-family report (report section)
    mlflow: {experiment: families}   # optional: one MLflow store and experiment for every cell

Instead of ``example_sets`` x ``algorithms``, a matrix may name its cells one by one (``cells``: named overrides of
the sections a cell owns: select, train, evaluate, report), for comparisons that are not a product, such as
the findings matrix's claims (one reward, one loss, one example changed at a time)::

    cells:
      top-variance: {}
      format-reward: {train: {reward: format}}

A model may change some of its cells further (``cells`` inside the model: the same sections as the matrix's cells),
for a setting that differs by model, such as how long a slower model trains::

    models:
      gemma: {model: {source: embedded:gemma3-270m}, cells: {top-variance: {train: {max_steps: 18}}}}

A model's stages up to the history (model, data, history) depend on the model's overrides only, so its cells
share them: their outputs lie in ``<root>/<model>/``, the rest in ``<root>/<model>/<variant>/`` (the variant is
``<examples>-<algorithm>``, or the cell's name), and the cross-family report in ``<root>-report``. A model's
overrides apply before a cell's, its own overrides of a cell after. Each cell tracks in its params' MLflow
experiment unless the matrix's ``mlflow`` section sets one for all.
"""

from __future__ import annotations

import itertools
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from rlvr.config import (
    REPLACED,
    Params,
    Paths,
    ReportConfig,
    describe,
    merge,
    parse_params,
    read_params_file,
    read_params_values,
)
from rlvr.errors import ConfigError, InputError
from rlvr.files import EvalDir, read_json, write_json
from rlvr.stages import STAGES
from rlvr.stages.report.findings import BASE, CellOutputs, FindingsConfig, write_findings

logger = logging.getLogger(__name__)

CELL_SECTIONS = ("select", "train", "evaluate", "report")  # the sections of the stages a cell runs on its own
AXES = {"models": None, "example_sets": ("select",), "algorithms": ("train",), "cells": CELL_SECTIONS}
NOT_OVERRIDABLE = ("paths", "mlflow")
# a model's outputs, shared by its cells: its first stages' and the evaluation results by key (its base model's)
MODEL_PATHS = (*(key for stage in STAGES if stage.per_model for key in stage.writes), "eval_store")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Cell:
    """One experiment of the matrix: a model and a variant (``<examples>-<algorithm>``, or a named cell's name)."""

    model: str
    variant: str
    params: Params

    @property
    def name(self) -> str:
        return f"{self.model}/{self.variant}"


def variant_name(examples: str, algorithm: str | None = None) -> str:
    """The variant of an example set and an algorithm (``<examples>-<algorithm>``), or a named cell's (``examples``
    alone, ``algorithm`` None)."""
    return examples if algorithm is None else f"{examples}-{algorithm}"


@dataclass(frozen=True)
class Matrix:
    path: Path
    root: str
    cells: list[Cell]
    report: ReportConfig
    findings: FindingsConfig | None = None

    @property
    def report_dir(self) -> str:
        """Beside the root, not in it: the DVC report stage depends on the whole root."""
        return f"{self.root}-report"

    def cell(self, model: str, examples: str, algorithm: str | None = None) -> Cell:
        """The cell of ``model`` and an example set and algorithm, or of ``model`` and a named cell."""
        variant = variant_name(examples, algorithm)
        for cell in self.cells:
            if (cell.model, cell.variant) == (model, variant):
                return cell
        raise ConfigError(f"{self.path}: no cell {model}/{variant}")


def _axis(spec: dict, axis: str, where: Path | str) -> dict[str, dict]:
    if axis in ("example_sets", "algorithms") and "cells" in spec:
        if axis in spec:
            raise ConfigError(f"{where}: {axis} and cells exclude each other: name the cells, or the axes")
        return {}
    if axis == "cells" and "cells" not in spec:
        return {}
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
            if (axis == "models" and section in ("base", "cells")) or (axis != "models" and section == "overlay"):
                continue
            if section in NOT_OVERRIDABLE or (allowed is not None and section not in allowed):
                may = ", ".join(allowed) if allowed else f"any section but {', '.join(NOT_OVERRIDABLE)}"
                raise ConfigError(f"{where}: {axis}.{name}.{section}: {axis} may set {may}")
    return {str(name): override or {} for name, override in entries.items()}


def _overlaid(entry: dict, axis: str, folder: Path, where: str) -> dict:
    """An axis entry with ``overlay: FILE``: the settings that params file (a preset overlay) writes itself in the
    sections this axis may set, then the entry's own; so a matrix takes a preset's difference without restating it."""
    if "overlay" not in entry:
        return entry
    entry = dict(entry)
    own = read_params_file(folder / entry.pop("overlay"), f"{where}.overlay: params file")
    return merge({section: own[section] for section in AXES[axis] if section in own}, entry, REPLACED)


def cell_paths(root: str, model: str, variant: str, base: dict) -> dict[str, str]:
    """The cell's ``paths`` section: the model's shared outputs under ``<root>/<model>``, the rest per cell."""
    paths = {}
    for key, value in base.items():
        folder = f"{root}/{model}" if key in MODEL_PATHS else f"{root}/{model}/{variant}"
        relative = Path(value).relative_to("outputs") if value.startswith("outputs/") else Path(value).name
        paths[key] = f"{folder}/{relative}"
    return paths


def load_matrix(path: str | Path, overrides: dict | None = None) -> Matrix:
    """Read and validate a matrix file; every cell's params are checked like a params file. ``overrides``
    (nested params sections, e.g. from ``--set``) apply to every cell."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"matrix file not found: {path}")
    spec = yaml.safe_load(path.read_text()) or {}
    unknown = set(spec) - {"base", "root", "report", "mlflow", "findings", *AXES}
    if unknown:
        raise ConfigError(f"{path}: unknown matrix key: {sorted(unknown)[0]}")
    if "base" not in spec:
        raise ConfigError(f"{path}: base (the params file every cell starts from) is missing")
    base = read_params_values(path.parent / spec["base"], f"{path}: base")
    root = str(spec.get("root", "outputs/matrix")).rstrip("/")
    axes = {axis: _axis(spec, axis, path) for axis in AXES}
    for axis in ("example_sets", "algorithms", "cells"):
        axes[axis] = {name: _overlaid(e, axis, path.parent, f"{path}: {axis}.{name}") for name, e in axes[axis].items()}
    if axes["cells"]:  # named cells: each one's overrides, one after the model's
        variants = [(name, [override]) for name, override in axes["cells"].items()]
    else:
        product = itertools.product(axes["example_sets"].items(), axes["algorithms"].items())
        variants = [(variant_name(examples, algorithm), [e, a]) for (examples, e), (algorithm, a) in product]
    own = {model: _model_cells(m, f"{path}: models.{model}", variants) for model, m in axes["models"].items()}
    cells = []
    for (model, m), (variant, layers) in itertools.product(axes["models"].items(), variants):
        m = {key: value for key, value in m.items() if key != "cells"}
        where = f"{path}: models.{model}.base"
        values = merge(read_params_values(path.parent / m.pop("base"), where) if "base" in m else base, m)
        for layer in [*layers, own[model].get(variant, {})]:
            values = merge(values, layer, replace=REPLACED)
        values = merge(values, overrides or {})
        values["mlflow"] = merge(values.get("mlflow") or {}, spec.get("mlflow") or {})
        values["paths"] = cell_paths(root, model, variant, {**Paths().model_dump(), **base.get("paths", {})})
        try:
            params = parse_params(values)
        except ConfigError as error:
            raise ConfigError(f"{path}: cell {model}/{variant}: {error}") from error
        cells.append(Cell(model, variant, params))
    try:
        report = parse_params({"report": merge(base.get("report") or {}, spec.get("report") or {})}).report
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from error
    return Matrix(path, root, cells, report, _findings(spec, path, [cell.variant for cell in cells]))


def _model_cells(model: dict, where: str, variants: list[tuple[str, list]]) -> dict[str, dict]:
    """A model's own overrides of some of its cells (``cells`` in the model), checked like the matrix's cells."""
    entries = _axis(model, "cells", where)
    names = [name for name, _ in variants]
    for name in entries:
        if name not in names:
            raise ConfigError(f"{where}.cells.{name}: no cell named {name!r} (cells: {', '.join(names)})")
    return entries


def _findings(spec: dict, path: Path, variants: list[str]) -> FindingsConfig | None:
    """The matrix's ``findings`` section, checked: every cell it names is a cell of the matrix."""
    if "findings" not in spec:
        return None
    try:
        findings = FindingsConfig.model_validate(spec["findings"])
    except ValidationError as error:
        raise ConfigError(f"{path}: findings.{describe(error)}") from None
    named = [(f"claims.{i}.cell", c.cell) for i, c in enumerate(findings.claims)]
    named += [(f"claims.{i}.against", c.against) for i, c in enumerate(findings.claims) if c.against != BASE]
    named += [("ablation", name) for name in findings.ablation]
    known = ", ".join(dict.fromkeys(variants))
    for key, name in named:
        if name not in variants:
            raise ConfigError(f"{path}: findings.{key}: no cell named {name!r} (cells: {known})")
    return findings


def write_report(matrix: Matrix, seconds: dict[str, float] | None = None) -> Path | None:
    """One report over every cell evaluated so far (a training still running is marked partial), and where the
    matrix has a ``findings`` section, the findings report beside it, with each cell's settings and wall time
    (``seconds`` of this run, see :func:`record_seconds`); None if no cell has been evaluated."""
    from rlvr.runs import from_outputs
    from rlvr.stages.report import run_report

    runs = []
    for cell in matrix.cells:
        paths = cell.params.paths
        if EvalDir(paths.eval_dir).by_step.is_file() and Path(paths.selection).is_file():
            runs.append(from_outputs(cell.params, paths.train_dir, paths.eval_dir, paths.selection, name=cell.name))
    if not runs:
        logger.warning("no cell of %s has been evaluated yet: no report", matrix.path)
        return None
    path = run_report(runs, matrix.report_dir, matrix.report.headline_mode, matrix.report.step)
    if matrix.findings is not None:
        notes = cell_notes(matrix, record_seconds(matrix, seconds or {}))
        write_findings(findings_outputs(matrix), matrix.findings, matrix.report_dir, notes)
    return path


TIMINGS_FILE = "cell_seconds.json"  # beside the report: each cell's wall time in the run that computed it


def record_seconds(matrix: Matrix, seconds: dict[str, float]) -> dict[str, float]:
    """Each cell's wall time in the run that computed its results, kept in the report folder: a cell whose inputs
    up to its evaluation (the evaluate stage's key) are those of the stored time keeps that time (a rerun that found
    it cached took seconds); returns the times of every cell timed so far."""
    from rlvr.lineage import stage_keys

    path = Path(matrix.report_dir) / TIMINGS_FILE
    stored = read_json(path) if path.is_file() else {}
    for cell in matrix.cells:
        key = stage_keys(cell.params)["evaluate"]
        if cell.name in seconds and stored.get(cell.name, {}).get("key") != key:
            stored[cell.name] = {"key": key, "seconds": seconds[cell.name]}
    write_json(path, stored)
    return {name: entry["seconds"] for name, entry in stored.items()}


def findings_outputs(matrix: Matrix) -> dict[str, dict[str, CellOutputs]]:
    """Per model, per cell, where the cell's evaluation and training are."""
    models: dict[str, dict[str, CellOutputs]] = {}
    for cell in matrix.cells:
        paths = cell.params.paths
        outputs = CellOutputs(
            Path(paths.eval_dir), Path(paths.train_dir), cell.params.data.suite_names, cell.params.train.algorithm
        )
        models.setdefault(cell.model, {})[cell.variant] = outputs
    return models


def cell_notes(matrix: Matrix, seconds: dict[str, float] | None = None) -> list[str]:
    """One line per cell: what it trains (selection, example, algorithm, reward, loss terms, steps) and, where
    measured, its wall time in this run (a cell whose stages were all cached takes seconds)."""
    from rlvr.files import read_rows

    notes = []
    for cell in matrix.cells:
        params, train = cell.params, cell.params.train
        selection = Path(params.paths.selection)
        chosen = ",".join(dict.fromkeys(r["id"] for r in read_rows(selection))) if selection.is_file() else "?"
        line = (
            f"{cell.name}: {params.select.method} rank {params.select.ranks} (example {chosen}), {train.algorithm}, "
            f"reward {','.join(train.rewards)}, lr {train.learning_rate:g}, entropy_coef {train.entropy_coef:g}, "
            f"{train.num_generations} rollouts x {train.max_completion_length} tokens, {train.max_steps} steps"
        )
        if seconds and cell.name in seconds:
            line += f"; wall time {seconds[cell.name] / 60:.1f} min"
        notes.append(line)
    if seconds:
        notes.append(f"all cells: {sum(seconds.values()) / 60:.1f} min (the model's shared stages in its first cell)")
    return notes
