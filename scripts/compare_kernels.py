"""Whether the evaluation's samples depend on the x86 CPU: the same evaluation under each CPU's kernels.

    python scripts/compare_kernels.py [--params params.yaml] [--problems N] [--workers N] [--out FILE]

The workload is the evaluate stage's for one model (``rlvr.stages.evaluate.Evaluation.evaluate``): the base embedded
model on the params file's generated suites (validation split, ``--problems`` each), in the params' precision,
token budget, batch and loop stop. It runs three times, each in a fresh process with its own kernel settings:

- ``project``: as the project runs here (importing ``rlvr`` pins PyTorch's and MKL's AVX2 code paths;
  ``rlvr.machine``);
- ``avx2_only``: as a CPU with AVX2 and nothing wider runs it: PyTorch, MKL and oneDNN limited to AVX2
  (``ATEN_CPU_CAPABILITY``, ``MKL_ENABLE_INSTRUCTIONS``, ``ONEDNN_MAX_CPU_ISA``), the project's pin kept;
- ``native``: this CPU's own kernels (PyTorch's widest vectorisation, MKL's own dispatch), the pin lifted.

Prints, and writes as JSON, how many samples of ``avx2_only`` and ``native`` equal ``project``'s, the tokens and
wall time of each run, the kernels each ran with, and a hash of the logits of one prompt (whether the kernels
compute the same bits at all). On a CPU without AVX-512 the three runs compute alike; on one
with it, ``native`` shows what the pin prevents.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

AVX2_ONLY = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def native_capability() -> str:
    """The vectorisation PyTorch picks on this CPU when nothing pins it (asked of a process without ``rlvr``)."""
    env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
    code = "import torch; print(torch.backends.cpu.get_cpu_capability().lower())"
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


def generate(params_file: str, problems: int, workers: int | None, work: Path, out: Path) -> None:
    """Evaluate the base embedded model into ``out`` (run in the process whose kernels are compared)."""
    from bench_generation import validation_suites  # this folder's benchmark: the same workload

    from rlvr.config import load_params
    from rlvr.machine import description
    from rlvr.stages.evaluate import Evaluation

    params = load_params(params_file)
    params.evaluate.workers = workers or params.evaluate.workers  # the samples do not depend on it
    benchmarks = validation_suites(params, problems, work)
    logits = hashlib.sha256(first_logits(work / "model", benchmarks[0], params).numpy().tobytes()).hexdigest()
    started = time.perf_counter()
    Evaluation(params.evaluate, params.model, benchmarks, out).evaluate([(0, work / "model")])
    seconds = round(time.perf_counter() - started, 1)
    (out / "run.json").write_text(
        json.dumps(
            {"seconds": seconds, "computed_on": description(params.evaluate.dtype), "logits_sha256": logits[:16]}
        )
    )


def first_logits(model_dir: Path, benchmark, params):
    """The next-token logits of the first problem's prompt, all positions, in the params' precision: whether two
    kernel settings compute the same bits (a sample changes only where a near tie flips)."""
    import torch

    from rlvr.backends import compute_dtype
    from rlvr.files import read_rows
    from rlvr.models import load_policy
    from rlvr.templates import get_template

    model, tokenizer = load_policy(model_dir)
    model = model.to(dtype=getattr(torch, compute_dtype(params.evaluate.dtype)))
    problem = read_rows(benchmark.path)[0]["problem"]
    prompt = get_template(params.model.template).render(problem, params.model, tokenizer)
    with torch.inference_mode():
        return model(**tokenizer(prompt, return_tensors="pt", add_special_tokens=False)).logits.float()


def samples(out: Path) -> list[dict]:
    from rlvr.files import read_records

    return [row for path in sorted((out / "samples").rglob("*.jsonl")) for row in read_records(path)]


def compare(params_file: str, problems: int, workers: int | None = None) -> dict:
    """Run the three kernel settings and compare their samples with the project's."""
    from rlvr.models import prepare_model

    settings = {
        "project": {},
        "avx2_only": AVX2_ONLY,
        "native": {"ATEN_CPU_CAPABILITY": native_capability(), "MKL_CBWR": "AUTO"},
    }
    result: dict = {"params": params_file, "problems_each": problems}
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        prepare_model("embedded", work / "model")
        runs = {}
        for name, env in settings.items():
            out = work / name
            command = [sys.executable, __file__, "--params", params_file, "--problems", str(problems)]
            command += ["--workers", str(workers)] if workers else []
            subprocess.run([*command, "--generate", str(work), str(out)], env=os.environ | env, check=True)
            runs[name] = samples(out)
            result[name] = json.loads((out / "run.json").read_text())
            result[name]["tokens"] = sum(row["length"] for row in runs[name])
        for name in ("avx2_only", "native"):
            same = sum(a["completion"] == b["completion"] for a, b in zip(runs["project"], runs[name], strict=True))
            result[name]["identical_to_project"] = same
            result[name]["samples"] = len(runs["project"])
    return result


def main() -> None:
    cli = argparse.ArgumentParser(prog="python scripts/compare_kernels.py", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    cli.add_argument("--params", default="params.yaml", help="the evaluation settings (default: %(default)s)")
    cli.add_argument("--problems", type=int, default=128, help="problems per suite (default: %(default)s)")
    cli.add_argument("--workers", type=int, help="generating processes (default: the params' evaluate.workers)")
    cli.add_argument("--out", type=Path, help="also write the result as JSON here")
    cli.add_argument("--generate", nargs=2, type=Path, metavar=("WORK", "OUT"), help=argparse.SUPPRESS)
    args = cli.parse_args()
    if args.generate:
        generate(args.params, args.problems, args.workers, *args.generate)
        return
    result = compare(args.params, args.problems, args.workers)
    print(json.dumps(result, indent=2))
    if args.out:
        from rlvr.files import write_json

        write_json(args.out, result)


if __name__ == "__main__":
    main()
