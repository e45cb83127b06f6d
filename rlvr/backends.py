"""Generation backends behind one interface: ``generate(prompts, protocol, max_new_tokens, seed)``.

- ``transformers``: CPU or GPU, batched with left padding, prompts of similar length batched together.
- ``vllm``: GPU only, tensor parallel; a thin adapter (vLLM is imported only when it is used).
Both return, per prompt, ``num_samples`` completion texts. Heavy libraries are imported inside, so this
module is cheap to import (the config validates backend names against it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlvr.metrics import Protocol

BACKENDS = ("transformers", "vllm")


def stop_token_ids(tokenizer, generation_config, stop: list[str]) -> list[int]:
    """Token ids generation ends at: the model's end-of-text/-turn ids (tokenizer and generation config) and every
    stop string that is one token of the vocabulary (for Qwen: ``<|im_end|>`` 151645, ``<|endoftext|>`` 151643)."""
    ids = [tokenizer.eos_token_id, getattr(generation_config, "eos_token_id", None)]
    vocabulary = tokenizer.get_vocab()
    ids += [vocabulary.get(text) for text in stop]
    flat = [i for entry in ids for i in (entry if isinstance(entry, list | tuple) else [entry])]
    return sorted({int(i) for i in flat if i is not None})


def _generation_config(model_dir: str | Path):
    """The model directory's generation config (its end-of-text ids), or None where it has none."""
    from transformers import GenerationConfig

    try:
        return GenerationConfig.from_pretrained(model_dir)
    except OSError:
        return None


def cut_at_stop(text: str, stop: list[str]) -> str:
    """``text`` up to the first of the ``stop`` strings (generation stops after it; the text ends before it)."""
    for string in stop:
        text = text.split(string, 1)[0]
    return text


class TransformersBackend:
    """``model.generate`` in batches of ``batch_size`` sequences, shortest prompts first, stopping at ``stop``."""

    def __init__(self, model_dir: str | Path, batch_size: int, stop: list[str] = ()) -> None:
        import torch

        from rlvr.model import load_policy

        self.model, self.tokenizer = load_policy(model_dir)
        if torch.cuda.is_available():
            self.model = self.model.to("cuda", dtype=torch.bfloat16)
        self.batch_size = batch_size
        self.stop = list(stop)
        self.stop_ids = stop_token_ids(self.tokenizer, self.model.generation_config, self.stop)

    def generate(self, prompts: list[str], protocol: Protocol, max_new_tokens: int, seed: int) -> list[list[str]]:
        import torch
        from tqdm import tqdm

        torch.manual_seed(seed)
        n = protocol.num_samples
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        completions: list[list[str]] = [[] for _ in prompts]
        per_batch = max(1, self.batch_size // n)
        sampling: dict[str, Any] = (
            {"do_sample": True, "temperature": protocol.temperature, "top_p": protocol.top_p}
            if protocol.temperature > 0
            else {"do_sample": False}
        )
        self.model.eval()
        for start in tqdm(range(0, len(order), per_batch), desc="generate", unit="batch", leave=False):
            batch = order[start : start + per_batch]
            encoded = self.tokenizer(
                [prompts[i] for i in batch], return_tensors="pt", padding=True, add_special_tokens=False
            )
            with torch.inference_mode():
                output = self.model.generate(
                    **encoded.to(self.model.device),
                    max_new_tokens=max_new_tokens,
                    num_return_sequences=n,
                    pad_token_id=self.tokenizer.pad_token_id,
                    eos_token_id=self.stop_ids,
                    stop_strings=self.stop or None,
                    tokenizer=self.tokenizer,
                    **sampling,
                )
            generated = output[:, encoded["input_ids"].shape[1] :]
            decoded = self.tokenizer.batch_decode(generated, skip_special_tokens=True)
            texts = [cut_at_stop(text, self.stop) for text in decoded]
            for position, i in enumerate(batch):
                completions[i] = texts[position * n : (position + 1) * n]
        return completions


def vllm_sampling_kwargs(
    protocol: Protocol, max_new_tokens: int, seed: int, stop: list[str] = (), stop_ids: list[int] = ()
) -> dict[str, Any]:
    """Arguments of ``vllm.SamplingParams`` for a protocol (greedy is temperature 0 in vLLM), with the stop
    strings and token ids of the official evaluation."""
    return {
        "n": protocol.num_samples,
        "temperature": protocol.temperature,
        "top_p": protocol.top_p if protocol.temperature > 0 else 1.0,
        "max_tokens": max_new_tokens,
        "seed": seed,
        "stop": list(stop),
        "stop_token_ids": list(stop_ids),
    }


class VllmBackend:
    """vLLM offline generation; ``tensor_parallel_size`` GPUs per model."""

    def __init__(
        self, model_dir: str | Path, tensor_parallel_size: int, gpu_memory_utilization: float, stop: list[str] = ()
    ) -> None:
        try:
            from vllm import LLM
        except ImportError as error:
            raise ValueError("evaluate.backend 'vllm' needs vLLM installed (GPU machines): pip install vllm") from error
        self.llm = LLM(
            model=str(model_dir),
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
        )
        self.tokenizer = self.llm.get_tokenizer()
        self.stop = list(stop)
        self.stop_ids = stop_token_ids(self.tokenizer, _generation_config(model_dir), self.stop)

    def generate(self, prompts: list[str], protocol: Protocol, max_new_tokens: int, seed: int) -> list[list[str]]:
        from vllm import SamplingParams, TokensPrompt

        params = SamplingParams(**vllm_sampling_kwargs(protocol, max_new_tokens, seed, self.stop, self.stop_ids))
        # token ids, not text: the rendered prompt already holds its special tokens
        inputs = [TokensPrompt(prompt_token_ids=self.tokenizer.encode(p, add_special_tokens=False)) for p in prompts]
        outputs = self.llm.generate(inputs, params, use_tqdm=True)
        return [[candidate.text for candidate in output.outputs] for output in outputs]

    def close(self) -> None:
        """Free the GPU before the next checkpoint's engine starts."""
        import gc

        del self.llm
        gc.collect()
        try:
            import torch

            torch.cuda.empty_cache()
        except ImportError:
            pass


def make_backend(name: str, model_dir: str | Path, config) -> TransformersBackend | VllmBackend:
    """The backend ``name`` for the model in ``model_dir``; ``config`` is the :class:`EvaluateConfig`. A
    ``module:Class`` name builds ``Class(model_dir, config)``: a backend of your own with the same interface
    (``tokenizer``, ``generate``)."""
    if ":" in name:
        import importlib

        module, _, attribute = name.partition(":")
        try:
            return getattr(importlib.import_module(module), attribute)(model_dir, config)
        except (ImportError, AttributeError) as error:
            raise ValueError(f"evaluate.backend {name!r}: cannot import ({error})") from error
    if name == "vllm":
        return VllmBackend(model_dir, config.tensor_parallel_size, config.gpu_memory_utilization, config.stop)
    if name == "transformers":
        return TransformersBackend(model_dir, config.batch_size, config.stop)
    raise ValueError(f"unknown backend {name!r}; choose one of {BACKENDS}")
