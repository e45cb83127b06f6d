"""The pipeline's stages, in order: the one definition that the DVC entry points (``pipelines/``), the Prefect
tasks (``tasks/``), the cross-family matrix and MLflow tracking derive from.

Each stage is a module of this package, ``rlvr.stages.<name>``, with ``run(params, parent_id=None)``: it reads and
writes only the paths in ``params.paths`` and tracks itself in a nested MLflow run under the pipeline's parent run
(``parent_id``). Stage modules are imported when a stage runs, so one stage's process loads only that stage's code.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Stage:
    """A pipeline stage: its name, the ``params.paths`` keys it writes, and whether it is shared by the cells of a
    matrix that have the same model (``per_model``)."""

    name: str
    writes: tuple[str, ...]
    per_model: bool = False
    downloads: bool = False  # may fetch from the Hub: retried by the Prefect task
    reads_training: bool = False  # its result also depends on the checkpoints written so far

    @property
    def module(self) -> str:
        """Its module, ``rlvr.stages.<name>``."""
        return f"{__name__}.{self.name}"


STAGES = (
    Stage("model", ("model_dir",), per_model=True, downloads=True),
    Stage("data", ("pool", "test", "benchmarks_dir", "data_manifest"), per_model=True, downloads=True),
    Stage("history", ("history", "history_work"), per_model=True),
    Stage("select", ("selection", "ranking")),
    Stage("train", ("train_dir",)),
    Stage("evaluate", ("eval_dir", "eval_store"), reads_training=True),
    Stage("report", ("report_dir",), reads_training=True),
)
BY_NAME = {stage.name: stage for stage in STAGES}
NAMES = tuple(BY_NAME)
LAST = STAGES[-1].name


def run(name: str, params, parent_id: str | None = None) -> Any:
    """Run stage ``name`` (``<module>.run(params, parent_id)``)."""
    return importlib.import_module(BY_NAME[name].module).run(params, parent_id)
