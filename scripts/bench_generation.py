"""Benchmark: the transformers backend against the previous one (``model.generate`` on length-sorted batches,
every row computed until its batch's longest answer ends), same prompts, same model, same run.

    python scripts/bench_generation.py [--params params.yaml] [--problems 64] [--out FILE]

The workload is the evaluation of the params file's benchmarks (greedy, its ``max_new_tokens`` and
``batch_size``, one generation call per benchmark) with the embedded model. Prints, and writes as JSON, the
generated tokens per second of each and their ratio, and how many completions are identical (greedy: all).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from rlvr.backends import TransformersBackend
from rlvr.config import load_params
from rlvr.generator import SUITES, suite
from rlvr.metrics import Protocol
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
    return [samples[0] for samples in backend.generate(prompts, Protocol(), max_new_tokens, 0)]


def main() -> None:
    cli = argparse.ArgumentParser(prog="python scripts/bench_generation.py", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    cli.add_argument("--params", default="params.yaml", help="the evaluation settings (default: %(default)s)")
    cli.add_argument("--problems", type=int, default=64, help="problems per benchmark (default: %(default)s)")
    cli.add_argument("--out", type=Path, help="also write the result as JSON here")
    args = cli.parse_args()
    params = load_params(args.params)
    config, names = params.evaluate, [n for n in params.data.benchmark_names if n in SUITES] or list(SUITES)
    seconds, tokens, same, total = {"previous": 0.0, "now": 0.0}, {"previous": 0, "now": 0}, 0, 0
    with tempfile.TemporaryDirectory() as work:
        backend = TransformersBackend(prepare_model("embedded", Path(work) / "model"), config.batch_size, config.stop)
        template = get_template(params.model.template)
        for name in names:
            prompts = [
                template.render(r["problem"], params.model, backend.tokenizer) for r in suite(name, args.problems, 0)
            ]
            runs = {"previous": previous_generate, "now": current_generate}
            outputs = {}
            for label, run in runs.items():
                start = time.perf_counter()
                outputs[label] = run(backend, prompts, config.max_new_tokens)
                seconds[label] += time.perf_counter() - start
                tokens[label] += sum(len(backend.tokenizer(t)["input_ids"]) for t in outputs[label])
            same += sum(a == b for a, b in zip(outputs["previous"], outputs["now"], strict=True))
            total += len(prompts)
    speed = {label: tokens[label] / seconds[label] for label in seconds}
    result = {
        "benchmarks": names,
        "problems_each": args.problems,
        "max_new_tokens": config.max_new_tokens,
        "batch_size": config.batch_size,
        **{f"{label}_tokens_per_s": round(value, 1) for label, value in speed.items()},
        **{f"{label}_seconds": round(value, 1) for label, value in seconds.items()},
        "ratio": round(speed["now"] / speed["previous"], 2),
        "identical_completions": f"{same} of {total}",
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
