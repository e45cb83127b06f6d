"""Benchmark: the transformers backend against the previous one (``model.generate`` on length-sorted batches,
every row computed until its batch's longest answer ends, float32), same prompts, same model, same run.

    python scripts/bench_generation.py [--params params.yaml] [--problems N] [--out FILE]

The workload is the evaluation of the params file's benchmarks (greedy, its ``max_new_tokens`` and
``batch_size``, one generation call per benchmark) with the embedded model, generated three ways: ``previous``,
``now_float32`` (the backend in float32: its shared prompt beginnings and pruning of finished sequences alone)
and ``now`` (the backend in the params' ``evaluate.dtype``, ``auto`` resolved on this machine). Prints, and
writes as JSON, the generated tokens per second of each, their ratios to ``previous``, how many completions are
identical to ``previous``'s, and each one's accuracy (official grading) with its 95% interval: what a lower
precision costs, if anything.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from rlvr.backends import TransformersBackend, compute_dtype
from rlvr.config import load_params
from rlvr.evaluate import grade_sample
from rlvr.generator import SUITES, suite
from rlvr.metrics import Protocol, wilson_interval
from rlvr.model import prepare_model
from rlvr.templates import get_template


def previous_generate(backend: TransformersBackend, prompts: list[str], max_new_tokens: int) -> list[str]:
    """The previous backend's greedy generation: batches of similar prompt length, ``model.generate``."""
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    texts = [""] * len(prompts)
    for start in range(0, len(order), backend.batch_size):
        batch = order[start : start + backend.batch_size]
        encoded = backend.tokenizer([prompts[i] for i in batch], return_tensors="pt", padding=True,
                                    add_special_tokens=False)  # fmt: skip
        options = {"pad_token_id": backend.tokenizer.pad_token_id, "eos_token_id": backend.stop_ids}
        with torch.inference_mode():
            output = backend.model.generate(**encoded, max_new_tokens=max_new_tokens, do_sample=False, **options)
        decoded = backend.tokenizer.batch_decode(output[:, encoded["input_ids"].shape[1] :], skip_special_tokens=True)
        for i, text in zip(batch, decoded, strict=True):
            texts[i] = text
    return texts


def current_generate(backend: TransformersBackend, prompts: list[str], max_new_tokens: int) -> list[str]:
    return [samples[0].text for samples in backend.generate(prompts, Protocol(), max_new_tokens, 0)]


def main() -> None:
    cli = argparse.ArgumentParser(prog="python scripts/bench_generation.py", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    cli.add_argument("--params", default="params.yaml", help="the evaluation settings (default: %(default)s)")
    cli.add_argument("--problems", type=int, help="problems per benchmark (default: the params' data.suite_size)")
    cli.add_argument("--out", type=Path, help="also write the result as JSON here")
    args = cli.parse_args()
    params = load_params(args.params)
    config, names = params.evaluate, [n for n in params.data.benchmark_names if n in SUITES] or list(SUITES)
    dtype, problems = compute_dtype(config.dtype), args.problems or params.data.suite_size
    labels = ("previous", "now_float32", "now")
    seconds, tokens, same, correct = ({label: 0 for label in labels} for _ in range(4))
    total = 0
    with tempfile.TemporaryDirectory() as work:
        model_dir = prepare_model("embedded", Path(work) / "model")
        float32 = TransformersBackend(model_dir, config.batch_size, config.stop, "float32")
        now = TransformersBackend(model_dir, config.batch_size, config.stop, dtype)
        backends = {"previous": float32, "now_float32": float32, "now": now}
        runs = {"previous": previous_generate, "now_float32": current_generate, "now": current_generate}
        template = get_template(params.model.template)
        tokenizer = now.tokenizer
        for name in names:
            rows = suite(name, problems, 0)
            prompts = [template.render(r["problem"], params.model, tokenizer) for r in rows]
            outputs = {}
            for label in labels:
                start = time.perf_counter()
                outputs[label] = runs[label](backends[label], prompts, config.max_new_tokens)
                seconds[label] += time.perf_counter() - start
                tokens[label] += sum(len(tokenizer(t)["input_ids"]) for t in outputs[label])
                same[label] += sum(a == b for a, b in zip(outputs["previous"], outputs[label], strict=True))
                for text, row in zip(outputs[label], rows, strict=True):
                    correct[label] += grade_sample(text, row["answer"], template, name)["correct_official"]
            total += len(prompts)
    speed = {label: tokens[label] / seconds[label] for label in labels}
    result = {
        "benchmarks": names,
        "problems_each": problems,
        "max_new_tokens": config.max_new_tokens,
        "batch_size": config.batch_size,
        "now_dtype": dtype,
        **{f"{label}_tokens_per_s": round(speed[label], 1) for label in labels},
        **{f"{label}_seconds": round(seconds[label], 1) for label in labels},
        **{f"ratio_{label}": round(speed[label] / speed["previous"], 2) for label in labels[1:]},
        **{f"identical_to_previous_{label}": f"{same[label]} of {total}" for label in labels[1:]},
        **{f"accuracy_{label}": _accuracy(correct[label], total) for label in labels},
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


def _accuracy(correct: int, total: int) -> str:
    low, high = wilson_interval(correct, total)
    return f"{100 * correct / total:.1f}% [{100 * low:.1f}, {100 * high:.1f}] ({correct} of {total})"


if __name__ == "__main__":
    main()
