"""Evaluate the base model (as step 0) and every checkpoint on the held-out set, greedy and batched."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm import tqdm

from rlvr.config import EvaluateConfig, InputError, ModelConfig
from rlvr.data import read_json, read_rows, write_json, write_rows
from rlvr.grpo import load_policy, to_messages
from rlvr.rewards import GRADING_MODES, grade, last_boxed

logger = logging.getLogger(__name__)

_CHECKPOINT = re.compile(r"checkpoint-(\d+)$")


def checkpoints(train_dir: str | Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every complete checkpoint under ``train_dir``, by step."""
    found = []
    for path in Path(train_dir).glob("checkpoint-*"):
        match = _CHECKPOINT.search(path.name)
        if match and (path / "config.json").is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def generate(model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int) -> list[str]:
    """Greedy completions of ``prompts``, batched with left padding, shortest prompts batched together."""
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    completions: list[str] = [""] * len(prompts)
    model.eval()
    for start in tqdm(range(0, len(order), batch_size), desc="generate", unit="batch", leave=False):
        batch = order[start : start + batch_size]
        encoded = tokenizer([prompts[i] for i in batch], return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            output = model.generate(
                **encoded.to(model.device),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
        new_tokens = output[:, encoded["input_ids"].shape[1] :]
        for i, text in zip(batch, tokenizer.batch_decode(new_tokens, skip_special_tokens=True), strict=True):
            completions[i] = text
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


def evaluate_model(model_dir, rows, prompt, config: EvaluateConfig) -> tuple[dict[str, float], list[dict]]:
    """Metrics and samples of the model in ``model_dir`` on ``rows``."""
    model, tokenizer = load_policy(model_dir)
    if torch.cuda.is_available():
        model = model.cuda()
    prompts = [
        tokenizer.apply_chat_template(to_messages(r["problem"], prompt), add_generation_prompt=True, tokenize=False)
        for r in rows
    ]
    completions = generate(model, tokenizer, prompts, config.max_new_tokens, config.batch_size)
    return score(rows, completions, tokenizer)


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
