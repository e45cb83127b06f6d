"""Evaluate the base model (as step 0) and every checkpoint on the held-out set, greedy and batched."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from rlvr.config import EvaluateConfig, InputError, ModelConfig
from rlvr.data import read_json, read_rows, write_json, write_rows
from rlvr.grpo import checkpoints, load_policy, to_messages
from rlvr.rewards import GRADING_MODES, grade, last_boxed

logger = logging.getLogger(__name__)


def generate(
    model,
    tokenizer,
    prompts: list[str],
    max_new_tokens: int,
    batch_size: int,
    num_samples: int = 1,
    temperature: float = 0.0,
) -> list[list[str]]:
    """``num_samples`` completions per prompt (greedy at temperature 0), batched with left padding.

    Prompts of similar length are batched together; ``batch_size`` counts generated sequences.
    """
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    completions: list[list[str]] = [[] for _ in prompts]
    per_batch = max(1, batch_size // num_samples)
    sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
    model.eval()
    for start in tqdm(range(0, len(order), per_batch), desc="generate", unit="batch", leave=False):
        batch = order[start : start + per_batch]
        encoded = tokenizer([prompts[i] for i in batch], return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            output = model.generate(
                **encoded.to(model.device),
                max_new_tokens=max_new_tokens,
                num_return_sequences=num_samples,
                pad_token_id=tokenizer.pad_token_id,
                **sampling,
            )
        texts = tokenizer.batch_decode(output[:, encoded["input_ids"].shape[1] :], skip_special_tokens=True)
        for position, i in enumerate(batch):
            completions[i] = texts[position * num_samples : (position + 1) * num_samples]
    return completions


def fingerprint(model_dir: Path, rows: list[dict], prompt: ModelConfig, config: EvaluateConfig) -> str:
    """Identifies one evaluation: the model's weight files, the problems, the prompt and the settings."""
    weights = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in model_dir.glob("*.safetensors"))
    payload = json.dumps([str(model_dir.resolve()), weights, rows, asdict(prompt), asdict(config)], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def score(rows: list[dict], completions: list[str], tokenizer) -> tuple[dict[str, float], list[dict]]:
    """Metrics of one model's completions, and the per-sample records behind them."""
    samples = []
    for row, completion in zip(rows, completions, strict=True):
        sample = {"id": row["id"], "answer": row["answer"], "completion": completion}
        sample["boxed"] = last_boxed(completion) is not None
        sample["length"] = len(tokenizer(completion, add_special_tokens=False)["input_ids"])
        for mode in GRADING_MODES:
            sample[f"correct_{mode}"] = grade(completion, row["answer"], mode)
        samples.append(sample)
    count = max(len(samples), 1)
    metrics = {f"accuracy_{mode}": sum(s[f"correct_{mode}"] for s in samples) / count for mode in GRADING_MODES}
    metrics["boxed_share"] = sum(s["boxed"] for s in samples) / count
    metrics["mean_response_length"] = sum(s["length"] for s in samples) / count
    metrics["num_problems"] = len(samples)
    return metrics, samples


def complete(
    model_dir,
    rows: list[dict],
    prompt: ModelConfig,
    max_new_tokens: int,
    batch_size: int,
    num_samples: int = 1,
    temperature: float = 0.0,
) -> tuple[list[list[str]], Any]:
    """Completions of the model in ``model_dir`` for each row's chat prompt, and its tokenizer."""
    model, tokenizer = load_policy(model_dir)
    if torch.cuda.is_available():
        model = model.cuda()
    prompts = [
        tokenizer.apply_chat_template(to_messages(r["problem"], prompt), add_generation_prompt=True, tokenize=False)
        for r in rows
    ]
    return generate(model, tokenizer, prompts, max_new_tokens, batch_size, num_samples, temperature), tokenizer


def evaluate_model(model_dir, rows, prompt, config: EvaluateConfig) -> tuple[dict[str, float], list[dict]]:
    """Metrics and samples of the model in ``model_dir`` on ``rows`` (greedy)."""
    completions, tokenizer = complete(model_dir, rows, prompt, config.max_new_tokens, config.batch_size)
    return score(rows, [samples[0] for samples in completions], tokenizer)


def run_evaluate(
    config: EvaluateConfig,
    base_model_dir: str | Path,
    train_dir: str | Path,
    test_path: str | Path,
    prompt: ModelConfig,
    out_dir: str | Path,
    on_result=None,
) -> list[dict]:
    """The evaluate stage: step 0 (base model) and every checkpoint; writes per-step metrics and samples.

    A model already evaluated in ``out_dir`` with the same weights, problems, prompt and settings is skipped.
    ``on_result(step, metrics)`` is called for each evaluated model (used for MLflow logging).
    """
    out_dir = Path(out_dir)
    rows = read_rows(test_path)[: config.limit]
    if not rows:
        raise InputError(f"test set is empty: {test_path}")
    models = [(0, Path(base_model_dir)), *checkpoints(train_dir)]
    if len(models) == 1:
        raise InputError(f"no checkpoint found under {train_dir}")
    results = []
    for step, model_dir in tqdm(models, desc="evaluate checkpoints", unit="model"):
        metrics_path = out_dir / "steps" / f"step-{step}.json"
        key = fingerprint(model_dir, rows, prompt, config)
        previous = read_json(metrics_path) if metrics_path.is_file() else {}
        if previous.get("fingerprint") == key:
            logger.info("step %d already evaluated, skipping", step)
            metrics = previous
        else:
            logger.info("evaluating step %d (%s) on %d problems", step, model_dir, len(rows))
            metrics, samples = evaluate_model(model_dir, rows, prompt, config)
            metrics = {"step": step, **metrics, "fingerprint": key}
            write_rows(out_dir / "samples" / f"step-{step}.jsonl", samples)
            write_json(metrics_path, metrics)
        if on_result is not None:
            on_result(step, metrics)
        results.append({k: v for k, v in metrics.items() if k != "fingerprint"})
    write_json(out_dir / "by_step.json", results)
    best = max(results[1:], key=lambda m: (m["accuracy_strict"], m["accuracy_lenient"], -m["step"]))
    write_json(out_dir / "metrics.json", {"base": results[0], "best": best, "num_checkpoints": len(results) - 1})
    return results
