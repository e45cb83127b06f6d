"""Benchmark: the evaluation backends on the embedded default's evaluation workload, in one run, same prompts.

    python scripts/bench_generation.py [--params params.yaml] [--problems N] [--backends transformers,vllm]
                                       [--out FILE]

The workload is what the evaluate stage does for one model: the base embedded model on the params file's
generated suites (``data.suite_size`` problems each, validation split, greedy, the params' ``max_new_tokens``,
``batch_size``, ``loop_stop`` and ``evaluate.dtype``), generated and graded by the stage's own code
(``rlvr.stages.evaluate.Evaluation.evaluate``): the transformers backend on its single-threaded workers, vLLM's
CPU build in this process. Prints, and writes as JSON, per backend: the wall time of generation and grading, an engine's
start measured alone (the stage starts one per checkpoint), generated tokens per second without and with that start
and their ratios to the first backend's, the share of the machine's matrix peak the generation reaches (the model's
FLOPs a token, 2 x its multiplied parameters, against matrix products measured in the same run on every core, one
single-threaded process each, in the same precision), how many completions are identical to the first backend's,
the headline accuracy with its 95% interval, and the share of answers the token budget cut.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

from rlvr.backends import compute_dtype
from rlvr.config import load_params
from rlvr.files import EvalDir, read_records, write_json, write_rows
from rlvr.generator import SUITES, suite
from rlvr.metrics import wilson_interval
from rlvr.models import prepare_model
from rlvr.stages.evaluate import Benchmark, Evaluation, load_backend


def _gemm_rate(dtype: str, seconds: float) -> float:
    """GFLOP/s of 1024 x 1024 x 1024 matrix products in ``dtype`` on one thread, over ``seconds``."""
    import torch

    torch.set_num_threads(1)
    a, b = (torch.randn(1024, 1024, dtype=getattr(torch, dtype)) for _ in range(2))
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        torch.mm(a, b)
        done += 1
    return done * 2 * 1024**3 / (time.perf_counter() - started) / 1e9


def matrix_peak(dtype: str, seconds: float = 5.0) -> float:
    """The machine's measured matrix peak in GFLOP/s: one single-threaded process per core, all at once."""
    import multiprocessing
    import os

    cores = len(os.sched_getaffinity(0))
    with multiprocessing.get_context("spawn").Pool(cores) as pool:
        return sum(pool.starmap(_gemm_rate, [(dtype, seconds)] * cores))


def flops_per_token(model_dir: Path) -> float:
    """2 x the parameters a token's forward pass multiplies (a tied embedding counted once, as the output layer;
    attention over the context not counted)."""
    from safetensors import safe_open

    config = json.loads((model_dir / "config.json").read_text())
    total = 0
    for path in model_dir.glob("*.safetensors"):
        with safe_open(str(path), "pt") as weights:
            total += sum(math.prod(weights.get_slice(name).get_shape()) for name in weights.keys())  # noqa: SIM118
    if not config.get("tie_word_embeddings", False):
        total -= config["vocab_size"] * config["hidden_size"]  # the input embedding is a lookup
    return 2.0 * total


def validation_suites(params, problems: int, work: Path) -> list[Benchmark]:
    """The params' generated suites (every generated suite where it names none), ``problems`` each from the
    validation split, written into ``work`` as the evaluation's benchmarks."""
    benchmarks = []
    for name in [n for n in params.data.benchmark_names if n in SUITES] or list(SUITES):
        write_rows(work / f"{name}.jsonl", suite(name, problems, params.data.suite_seed, "validation"))
        benchmarks.append(Benchmark(name, name, work / f"{name}.jsonl"))
    return benchmarks


def main() -> None:
    cli = argparse.ArgumentParser(prog="python scripts/bench_generation.py", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    cli.add_argument("--params", default="params.yaml", help="the evaluation settings (default: %(default)s)")
    cli.add_argument("--problems", type=int, help="problems per suite (default: the params' data.suite_size)")
    cli.add_argument("--backends", default="transformers,vllm", help="backends to run (default: %(default)s)")
    cli.add_argument("--out", type=Path, help="also write the result as JSON here")
    args = cli.parse_args()
    params = load_params(args.params)
    problems, mode = args.problems or params.data.suite_size, params.report.headline_mode
    backends = args.backends.split(",")
    result: dict = {"problems_each": problems, "max_new_tokens": params.evaluate.max_new_tokens,
                    "loop_stop": params.evaluate.loop_stop, "batch_size": params.evaluate.batch_size}  # fmt: skip
    samples: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        model_dir = prepare_model("embedded", work / "model")
        benchmarks = validation_suites(params, problems, work)
        result = {"suites": [b.name for b in benchmarks]} | result
        peak = matrix_peak(compute_dtype(params.evaluate.dtype))
        per_token = flops_per_token(model_dir)
        result |= {"matrix_peak_gflops": round(peak, 1), "gflop_per_token": round(per_token / 1e9, 3)}
        for backend in backends:
            config = params.evaluate.model_copy(update={"backend": backend})
            start_seconds = 0.0
            if backend == "vllm":  # the engine started on its own, then used by the stage's code below
                started = time.perf_counter()
                load_backend(model_dir, config)
                start_seconds = round(time.perf_counter() - started, 1)
            started = time.perf_counter()
            Evaluation(config, params.model, benchmarks, work / backend).evaluate([(0, model_dir)])
            seconds = time.perf_counter() - started
            layout = EvalDir(work / backend)
            samples[backend] = [r for b in benchmarks for r in read_records(layout.samples(0, b.name))]
            tokens = sum(r["length"] for r in samples[backend])
            correct = sum(bool(r[f"correct_{mode}"]) for r in samples[backend])
            low, high = wilson_interval(correct, len(samples[backend]))
            result[backend] = {
                "dtype": compute_dtype(config.dtype, backend),
                "seconds": round(seconds, 1),
                "engine_start_seconds": start_seconds,
                "tokens": tokens,
                "tokens_per_second": round(tokens / seconds, 1),
                "tokens_per_second_with_start": round(tokens / (seconds + start_seconds), 1),
                "share_of_matrix_peak": round(tokens * per_token / seconds / 1e9 / peak, 3),
                f"accuracy_{mode}": f"{100 * correct / len(samples[backend]):.1f}% [{100 * low:.1f}, {100 * high:.1f}]",
                "cut_share": round(sum(r["cut"] for r in samples[backend]) / len(samples[backend]), 3),
            }
    first = backends[0]
    for backend in backends[1:]:
        same = sum(a["completion"] == b["completion"] for a, b in zip(samples[first], samples[backend], strict=True))
        for speed in ("tokens_per_second", "tokens_per_second_with_start"):
            ratio = result[backend][speed] / result[first][speed]
            result[backend][speed.replace("tokens_per_second", "ratio_to_" + first)] = round(ratio, 2)
        result[backend]["identical_to_" + first] = f"{same} of {len(samples[first])}"
    print(json.dumps(result, indent=2))
    if args.out:
        write_json(args.out, result)


if __name__ == "__main__":
    main()
