"""Benchmark: batched transformers generation against one prompt at a time, same prompts, same run.

    python scripts/bench_generation.py [--problems 32] [--max-new-tokens 64] [--batch-size 32] [--out FILE]

Greedy generation with the embedded model on generated problems (the evaluation prompt of the embedded
default). Prints, and writes as JSON, generated tokens per second of each way and their ratio.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from rlvr.backends import TransformersBackend
from rlvr.config import ModelConfig
from rlvr.generator import generate as generate_problems
from rlvr.metrics import Protocol
from rlvr.model import prepare_model
from rlvr.templates import get_template


def tokens_per_second(backend: TransformersBackend, prompts: list[str], max_new_tokens: int) -> tuple[float, float]:
    """(generated tokens per second, seconds) of greedy generation of ``prompts`` with ``backend``."""
    start = time.perf_counter()
    completions = backend.generate(prompts, Protocol(), max_new_tokens, seed=0)
    seconds = time.perf_counter() - start
    tokens = sum(len(backend.tokenizer(c[0], add_special_tokens=False)["input_ids"]) for c in completions)
    return tokens / seconds, seconds


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--problems", type=int, default=32)
    cli.add_argument("--max-new-tokens", type=int, default=64)
    cli.add_argument("--batch-size", type=int, default=32)
    cli.add_argument("--out", type=Path, help="also write the result as JSON here")
    args = cli.parse_args()
    with tempfile.TemporaryDirectory() as work:
        model_dir = prepare_model("embedded", Path(work) / "model")
        backend = TransformersBackend(model_dir, args.batch_size)
        template, model = get_template("chat"), ModelConfig()
        problems, _ = generate_problems(args.problems, 0, seed=0)
        prompts = [template.render(p["problem"], model, backend.tokenizer) for p in problems]
        tokens_per_second(backend, prompts[:2], 4)  # warm-up
        backend.batch_size = 1
        single, single_seconds = tokens_per_second(backend, prompts, args.max_new_tokens)
        backend.batch_size = args.batch_size
        batched, batched_seconds = tokens_per_second(backend, prompts, args.max_new_tokens)
    result = {
        "problems": args.problems,
        "max_new_tokens": args.max_new_tokens,
        "batch_size": args.batch_size,
        "one_at_a_time_tokens_per_s": round(single, 1),
        "one_at_a_time_seconds": round(single_seconds, 1),
        "batched_tokens_per_s": round(batched, 1),
        "batched_seconds": round(batched_seconds, 1),
        "ratio": round(batched / single, 2),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
