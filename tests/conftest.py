"""Shared fixtures: the repository root, the reference data folder, offline Hub."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("RLVR_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture
def shared_data() -> Path:
    """The reference data folder beside the checkout; tests using it skip where it is absent (fail under CI)."""
    return require("data")


def run_module(cwd: Path, module: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``python -m module args`` in ``cwd`` with this checkout importable; output captured."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


@pytest.fixture(scope="session")
def embedded_model(tmp_path_factory) -> Path:
    """The embedded model as a transformers directory (converted once per test session)."""
    from rlvr.model import prepare_model

    return prepare_model("embedded", tmp_path_factory.mktemp("embedded") / "model")


@pytest.fixture(scope="session")
def tiny_model(embedded_model, tmp_path_factory) -> Path:
    """The embedded model cut to its first 2 layers: real tokenizer and embeddings, fast steps, small checkpoints."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(embedded_model)
    model.model.layers = model.model.layers[:2]
    model.config.num_hidden_layers = 2
    model.config.layer_types = (getattr(model.config, "layer_types", None) or [])[:2] or None
    out = tmp_path_factory.mktemp("tiny") / "model"
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(embedded_model).save_pretrained(out)
    return out


def require(relative: str) -> Path:
    """A file of the reference folder beside the checkout (``data/...`` or ``docs/...``). Where it is absent the
    test skips, except under ``CI=true``, where a missing file fails the test rather than hiding it."""
    path = SHARED_DATA.parent / relative
    if not path.exists():
        message = f"reference file not found: {path}"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI=true: skips are not allowed)")
        pytest.skip(message)
    return path
