"""The model stage: ``model.source`` (an embedded GGUF, a Hub id or a local directory) into ``paths.model_dir``, a
transformers directory (``rlvr.models``)."""

from __future__ import annotations

from pathlib import Path

from rlvr.models import prepare_model


def run(params, parent_id: str | None = None) -> Path:
    """The model stage: ``model.source`` into ``paths.model_dir``."""
    from rlvr import tracking

    with tracking.stage_run("model", params, parent_id):
        return prepare_model(params.model.source, params.paths.model_dir)
