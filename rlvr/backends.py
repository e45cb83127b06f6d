"""Generation backends behind one interface: ``generate(prompts, protocol, max_new_tokens, seed)``.

- ``transformers``: CPU or GPU, batched with left padding, prompts of similar length batched together.
- ``vllm``: GPU (tensor parallel) or vLLM's CPU build; a thin adapter (vLLM is imported only when it is used).
Both return, per prompt, ``num_samples`` :class:`Completion` (its text, and whether the token budget cut it).
Heavy libraries are imported inside, so this module is cheap to import (the config validates backend names
against it).
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlvr.config import MAX_PROMPT_TOKENS
from rlvr.errors import ConfigError
from rlvr.machine import attention_for, cpu_has_native_bf16
from rlvr.metrics import Protocol, loops

BACKENDS = ("transformers", "vllm")


FINISHES = ("stop", "length", "loop")  # an end token or stop string; the token budget; the loop stop


@dataclass(frozen=True)
class Completion:
    """One generated sample: its text (ending before a stop string), the tokens generated, and how it ended
    (``finish``): ``stop`` (an end-of-text token or a stop string), ``length`` (the token budget, so the answer may
    be unfinished: ``cut``) or ``loop`` (the loop stop, see :func:`loop_stop_point`)."""

    text: str
    tokens: int
    finish: str = "stop"

    @property
    def cut(self) -> bool:
        return self.finish == "length"


def as_completion(sample: Completion | str, tokenizer, max_new_tokens: int) -> Completion:
    """A backend's sample as a :class:`Completion`. A backend of one's own may return plain text: it counts as
    cut when it re-tokenizes to ``max_new_tokens`` tokens or more (the built-in backends know it exactly)."""
    if isinstance(sample, Completion):
        return sample
    tokens = len(tokenizer(sample, add_special_tokens=False)["input_ids"])
    return Completion(sample, tokens, "length" if tokens >= max_new_tokens else "stop")


LOOP_CHECK_EVERY = 16  # tokens between two looks for a loop
LOOP_WINDOW = 256  # the tokens looked at: enough for 4 repeats of the longest block ends_in_loop finds


def ends_looping(tokens: list[int], decode) -> bool:
    """The loop stop's rule, looked at when the generated ``tokens`` are a multiple of ``LOOP_CHECK_EVERY`` long and
    their text does not end inside a number (a cut "12" would be graded as "1"): their last ``LOOP_WINDOW`` decoded
    end in a loop (:func:`rlvr.metrics.loops`: numbers masked, so "Step 23: ... Step 24: ..." counts). One rule for
    both backends: transformers stops there, vLLM's output is cut there."""
    if len(tokens) % LOOP_CHECK_EVERY:
        return False
    text = decode(tokens[-LOOP_WINDOW:])
    return not text[-1:].isdigit() and loops(text)


def loop_stop_point(tokens: list[int], decode) -> int | None:
    """How many of ``tokens`` the loop stop keeps (None: it does not fire)."""
    ends = range(LOOP_CHECK_EVERY, len(tokens) + 1, LOOP_CHECK_EVERY)
    return next((end for end in ends if ends_looping(tokens[:end], decode)), None)


def stop_token_ids(tokenizer, generation_config, stop: list[str]) -> list[int]:
    """Token ids generation ends at: the model's end-of-text/-turn ids (tokenizer and generation config) and every
    stop string that is one special token (for Qwen: ``<|im_end|>`` 151645, ``<|endoftext|>`` 151643). Other stop
    strings are found in the text, as vLLM finds them (``=`` also ends ``" ="``)."""
    ids = [tokenizer.eos_token_id, getattr(generation_config, "eos_token_id", None)]
    special = special_tokens(tokenizer)
    ids += [special.get(text) for text in stop]
    flat = [i for entry in ids for i in (entry if isinstance(entry, list | tuple) else [entry])]
    return sorted({int(i) for i in flat if i is not None})


def special_tokens(tokenizer) -> dict[str, int]:
    """The tokenizer's special tokens (which decoding skips) by text."""
    return {token.content: i for i, token in tokenizer.added_tokens_decoder.items() if token.special}


def _generation_config(model_dir: str | Path):
    """The model directory's generation config (its end-of-text ids), or None where it has none."""
    from transformers import GenerationConfig

    try:
        return GenerationConfig.from_pretrained(model_dir)
    except OSError:
        return None


def compute_dtype(name: str, backend: str = "transformers") -> str:
    """The precision ``evaluate.dtype`` stands for with ``backend``: ``auto`` is bfloat16 where the hardware
    computes it natively (a CUDA GPU, a CPU with AVX512-BF16 or AMX; about 1.8x float32's speed on such a CPU),
    else float32; vLLM on a GPU keeps its own ``auto`` (the model's precision); a backend of one's own gets the
    name as it is."""
    import torch

    if name != "auto" or backend not in BACKENDS or (backend == "vllm" and torch.cuda.is_available()):
        return name
    return "bfloat16" if torch.cuda.is_available() or cpu_has_native_bf16() else "float32"


def cut_at_stop(text: str, stop: list[str]) -> str:
    """``text`` up to the first of the ``stop`` strings (generation stops after it; the text ends before it)."""
    for string in stop:
        text = text.split(string, 1)[0]
    return text


class TransformersBackend:
    """Batched generation with transformers, for CPU or one GPU, in ``dtype`` (see :func:`compute_dtype`).

    Sequences (a prompt's samples are sequences of their own) are generated in batches of ``batch_size``, prompts
    of similar length together (fewer padded positions); a sequence leaves its batch, and its key/value cache,
    as soon as it ends (an end-of-text/turn token or a ``stop`` string), so no work goes into finished ones.
    ``model.generate`` computes every row until the batch's longest answer ends; transformers' continuous
    batching does prune, but measured slower on CPU (55 vs 130 tokens/s, SmolLM2-135M, 2 cores).
    """

    def __init__(
        self,
        model_dir: str | Path,
        batch_size: int,
        stop: list[str] = (),
        dtype: str = "auto",
        loop_stop: bool = False,
    ) -> None:
        import torch

        from rlvr.models import load_policy

        self.model, self.tokenizer = load_policy(model_dir)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model = self.model.to(device, dtype=getattr(torch, compute_dtype(dtype)))
        self.model.eval()
        self.dtype = str(self.model.dtype).removeprefix("torch.")  # the precision that runs
        self.batch_size = batch_size
        self.stop = list(stop)
        self.stop_ids = stop_token_ids(self.tokenizer, self.model.generation_config, self.stop)
        special = special_tokens(self.tokenizer)
        self.text_stops = [text for text in self.stop if text not in special]  # the others are stop ids
        self.loop_stop = loop_stop

    def generate(
        self, prompts: list[str], protocol: Protocol, max_new_tokens: int, seed: int
    ) -> list[list[Completion]]:
        import torch

        generator = torch.Generator(device=self.model.device).manual_seed(seed)
        encoded = [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        sequences = sorted(
            ((i, sample) for i in range(len(prompts)) for sample in range(protocol.num_samples)),
            key=lambda item: (len(encoded[item[0]]), item),
        )
        with attention_for(self.model.dtype):  # bfloat16 under the portable kernels on an AMX CPU (rlvr.machine)
            outputs = self._decode([encoded[i] for i, _ in sequences], protocol, max_new_tokens, generator)
        texts = dict(zip(sequences, outputs, strict=True))
        return [[texts[(i, sample)] for sample in range(protocol.num_samples)] for i in range(len(prompts))]

    def _forward(self, tokens, attention, positions, cache):
        """The next-token logits of a batch (only the last position's: not a vocabulary-wide row per position)."""
        output = self.model(
            input_ids=tokens, attention_mask=attention, position_ids=positions, past_key_values=cache, logits_to_keep=1
        )
        return output.logits[:, -1, :]

    def _prefill(self, prompts: list[list[int]]) -> tuple:
        """Cache, attention mask, last positions and next-token logits of ``prompts``. Their common beginning (a
        chat template's system turn, or one prompt's samples) is computed once and shared; each prompt's rest is
        left-padded after it (padding masked, positions contiguous)."""
        import os

        import torch

        from rlvr.kvcache import growing_cache

        device, pad, cache = self.model.device, self.tokenizer.pad_token_id, growing_cache()
        shared = min(len(os.path.commonprefix(prompts)), min(map(len, prompts)) - 1)  # each keeps a token of its own
        if shared > 0:
            self.model(
                input_ids=torch.tensor([prompts[0][:shared]], device=device), past_key_values=cache, logits_to_keep=1
            )
            cache.batch_repeat_interleave(len(prompts))
        rests = [prompt[shared:] for prompt in prompts]
        width = max(map(len, rests))
        tokens = torch.tensor([[pad] * (width - len(r)) + r for r in rests], device=device)
        attention = torch.tensor([[1] * shared + [0] * (width - len(r)) + [1] * len(r) for r in rests], device=device)
        positions = (attention.cumsum(-1) - 1).clamp(min=0)[:, shared:]
        return cache, attention, positions[:, -1], self._forward(tokens, attention, positions, cache)

    def _decode(self, prompts: list[list[int]], protocol: Protocol, max_new_tokens: int, generator) -> list[Completion]:
        """Decode the prompts ``batch_size`` at a time with a key/value cache; a sequence that ends leaves the
        batch (and the cache) at once. Returns the completions, texts cut before a stop string. (Refilling the
        freed places with the next prompts measured no faster on CPU: the joined caches cost what the fuller batches
        save.)"""
        import torch
        from tqdm import tqdm
        from transformers.generation.logits_process import TemperatureLogitsWarper, TopPLogitsWarper

        device = self.model.device
        sampling = protocol.temperature > 0
        warpers = [TemperatureLogitsWarper(protocol.temperature), TopPLogitsWarper(protocol.top_p)] if sampling else []
        stop_ids = torch.tensor(self.stop_ids, device=device)
        generated: list[list[int]] = [[] for _ in prompts]
        finish = ["stop"] * len(prompts)  # or "length" (the budget reached), "loop" (the loop stop)
        decode = functools.partial(self.tokenizer.decode, skip_special_tokens=True)
        pending, batch, rows = 0, None, torch.empty(0, dtype=torch.long, device=device)
        progress = tqdm(total=len(prompts), desc="generate", unit="sequence", leave=False, mininterval=10)
        with torch.inference_mode():
            while pending < len(prompts) or len(rows):
                if batch is None:
                    batch = self._prefill(prompts[pending : pending + self.batch_size])
                    rows = torch.arange(pending, pending + len(batch[1]), device=device)
                    pending += len(rows)
                cache, attention, position, logits = batch
                if sampling:
                    scores = logits.float()
                    for warp in warpers:
                        scores = warp(None, scores)
                    tokens = torch.multinomial(scores.softmax(-1), 1, generator=generator).squeeze(1)
                else:
                    tokens = logits.argmax(-1)
                ended = torch.isin(tokens, stop_ids).tolist()
                for index, (row, token) in enumerate(zip(rows.tolist(), tokens.tolist(), strict=True)):
                    if ended[index]:
                        continue
                    generated[row].append(token)
                    if self.text_stops:  # a stop string that is not one token: look at the text's end
                        ended[index] = any(text in decode(generated[row][-16:]) for text in self.text_stops)
                    if not ended[index] and self.loop_stop and ends_looping(generated[row], decode):
                        ended[index], finish[row] = True, "loop"
                    if not ended[index] and len(generated[row]) >= max_new_tokens:
                        ended[index], finish[row] = True, "length"
                keep = ~torch.tensor(ended, device=device)
                progress.update(len(ended) - int(keep.sum()))
                if not bool(keep.all()):
                    cache.batch_select_indices(keep.nonzero().squeeze(1))
                    rows, tokens, attention, position = rows[keep], tokens[keep], attention[keep], position[keep]
                if not len(rows):
                    batch = None
                    continue
                attention = torch.cat([attention, attention.new_ones(len(rows), 1)], dim=1)
                position = position + 1
                batch = (
                    cache,
                    attention,
                    position,
                    self._forward(tokens[:, None], attention, position[:, None], cache),
                )
        progress.close()
        decoded = self.tokenizer.batch_decode(generated, skip_special_tokens=True)
        return [
            Completion(cut_at_stop(text, self.stop), len(tokens), end)
            for text, tokens, end in zip(decoded, generated, finish, strict=True)
        ]


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


def _ranges(cores: list[int]) -> str:
    """``[0, 1, 2, 5]`` as ``0-2,5`` (how vLLM's CPU build names cores)."""
    groups: list[list[int]] = []
    for core in sorted(cores):
        if groups and core == groups[-1][-1] + 1:
            groups[-1].append(core)
        else:
            groups.append([core])
    return ",".join(f"{g[0]}-{g[-1]}" if len(g) > 1 else str(g[0]) for g in groups)


def vllm_cpu_settings(model_dir: str | Path, max_tokens: int, sequences: int, dtype: str) -> dict[str, str]:
    """What vLLM's CPU build reads at engine start, for this job: its OpenMP threads bound to every core this
    process may use (by default it binds one and reserves the rest), no core reserved, the KV cache sized for
    ``sequences`` of ``max_tokens`` (by default it reserves half the memory), and the engine in this process (an
    engine of its own process took 29 s to start and 6 s to stop on the tiny test model, in this one 12 s, then 3 s
    for each next checkpoint's). Values the user set are kept."""
    import json
    import math

    config = json.loads((Path(model_dir) / "config.json").read_text())
    heads = config.get("num_key_value_heads") or config["num_attention_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    per_token = 2 * config["num_hidden_layers"] * heads * head_dim * (4 if dtype == "float32" else 2)
    gigabytes = math.ceil(1.25 * per_token * max_tokens * sequences / 2**30)
    available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    settings = {
        "VLLM_CPU_OMP_THREADS_BIND": _ranges(sorted(os.sched_getaffinity(0))),
        "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
        "VLLM_CPU_KVCACHE_SPACE": str(max(1, min(gigabytes, int(available // 2)))),
        "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    }
    return {key: os.environ.get(key, value) for key, value in settings.items()}


class VllmBackend:
    """vLLM offline generation: ``tensor_parallel_size`` GPUs per model, or vLLM's CPU build on a machine without
    one (:func:`vllm_cpu_settings`). ``sequences``: generated at once (None: vLLM's default, on a GPU; a CPU's KV
    cache is sized for the number given); ``max_new_tokens``: the longest answer."""

    def __init__(
        self,
        model_dir: str | Path,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.85,
        stop: list[str] = (),
        dtype: str = "auto",
        loop_stop: bool = False,
        seed: int = 0,
        max_new_tokens: int = 3072,
        sequences: int | None = None,
        enforce_eager: bool = False,
    ) -> None:
        try:
            import torch
            from vllm import LLM
        except ImportError as error:
            raise ConfigError(
                "evaluate.backend 'vllm' needs vLLM installed: make setup-vllm (its CPU build), pip install vllm (GPU)"
            ) from error
        config = json.loads((Path(model_dir) / "config.json").read_text())
        max_model_len = min(config.get("max_position_embeddings", 32768), MAX_PROMPT_TOKENS + max_new_tokens)
        options: dict[str, Any] = {} if sequences is None else {"max_num_seqs": sequences}  # None: vLLM's default
        if not torch.cuda.is_available():
            os.environ.update(vllm_cpu_settings(model_dir, max_model_len, sequences, dtype))
            # whole prompts only: a prompt prefilled in parts discards a sampled token, and vLLM then rewinds the
            # request's seeded generator, which a CPU generator cannot ("CPU Generator does not use offset")
            options |= {"enable_chunked_prefill": False, "max_num_batched_tokens": max(max_model_len, 4096)}
        else:
            options |= {"tensor_parallel_size": tensor_parallel_size, "gpu_memory_utilization": gpu_memory_utilization}
        self.llm = LLM(
            model=str(model_dir), dtype=dtype, seed=seed, max_model_len=max_model_len, enforce_eager=enforce_eager,
            **options,
        )  # fmt: skip
        self.dtype = str(self.llm.llm_engine.model_config.dtype).removeprefix("torch.")  # what "auto" resolved to
        self.tokenizer = self.llm.get_tokenizer()
        self.stop = list(stop)
        self.stop_ids = stop_token_ids(self.tokenizer, _generation_config(model_dir), self.stop)
        self.loop_stop = loop_stop

    def generate(
        self, prompts: list[str], protocol: Protocol, max_new_tokens: int, seed: int
    ) -> list[list[Completion]]:
        from vllm import SamplingParams, TokensPrompt

        params = SamplingParams(**vllm_sampling_kwargs(protocol, max_new_tokens, seed, self.stop, self.stop_ids))
        # token ids, not text: the rendered prompt already holds its special tokens
        inputs = [TokensPrompt(prompt_token_ids=self.tokenizer.encode(p, add_special_tokens=False)) for p in prompts]
        outputs = self.llm.generate(inputs, params, use_tqdm=True)
        return [[self._completion(sample) for sample in output.outputs] for output in outputs]

    def _completion(self, sample) -> Completion:
        """A vLLM sample (``finish_reason`` "length": the budget ended it; "stop": an end token or stop string),
        cut where the loop stop would have ended it (vLLM has no such stop of its own)."""
        tokens = list(sample.token_ids)
        if tokens and tokens[-1] in self.stop_ids:
            tokens.pop()  # vLLM counts the end token; the transformers backend, as the text, does not
        decode = functools.partial(self.tokenizer.decode, skip_special_tokens=True)
        if self.loop_stop and (end := loop_stop_point(tokens, decode)) is not None:
            return Completion(cut_at_stop(decode(tokens[:end]), self.stop), end, "loop")
        return Completion(sample.text, len(tokens), "length" if sample.finish_reason == "length" else "stop")

    def close(self) -> None:
        """Free the memory (GPU, or the CPU's KV cache) before the next checkpoint's engine starts. The engine is
        shut down first: an engine core in this process freezes what it allocates at start (``gc.freeze``: weights,
        KV cache) until its shutdown, so deleting it alone kept every checkpoint's engine (5.5 GB each, measured)."""
        import gc

        self.llm.llm_engine.engine_core.shutdown()
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
            raise ConfigError(f"evaluate.backend {name!r}: cannot import ({error})") from error
    if name == "vllm":
        import torch

        return VllmBackend(
            model_dir,
            config.tensor_parallel_size,
            config.gpu_memory_utilization,
            config.stop,
            compute_dtype(config.dtype, name),
            config.loop_stop,
            config.seed,
            config.max_new_tokens,
            config.max_num_seqs or (None if torch.cuda.is_available() else config.batch_size),
            config.enforce_eager,
        )
    if name == "transformers":
        return TransformersBackend(model_dir, config.batch_size, config.stop, config.dtype, config.loop_stop)
    raise ConfigError(f"unknown backend {name!r}; choose one of {BACKENDS}")
