"""Benchmark: how long ``--help`` takes for every command of the project, against the interpreter's own start.

    python scripts/bench_help.py [--repeats 5] [--out FILE]

Each command runs ``--repeats`` times in a fresh interpreter (``python -m <module> --help``), one after the
other; the baseline, measured in the same run and interleaved with the commands, is ``python -c pass``. Prints,
and writes as JSON, per command: the median wall time, its ratio to the baseline's median, and the slowest run.
A command whose ``--help`` fails is an error.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = [f"pipelines.{stage}" for stage in ("model", "data", "history", "select", "train", "evaluate", "report")]
COMMANDS += ["pipelines.code", "pipelines.matrix", "flows.experiment", "flows.cross_family", "flows.serve"]
COMMANDS += ["rlvr.config"]


def wall(argv: list[str]) -> float:
    """Seconds ``argv`` takes to run; its failure is an error naming it."""
    start = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True)
    took = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"error: {' '.join(argv)} exited {result.returncode}: {result.stderr.strip()[-500:]}")
    return took


def main() -> None:
    cli = argparse.ArgumentParser(prog="python scripts/bench_help.py", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    cli.add_argument("--repeats", type=int, default=5, help="runs per command (default: %(default)s)")
    cli.add_argument("--out", type=Path, help="also write the result as JSON here")
    args = cli.parse_args()
    baseline: list[float] = []
    times: dict[str, list[float]] = {module: [] for module in COMMANDS}
    for _ in range(args.repeats):
        for module in COMMANDS:
            baseline.append(wall([sys.executable, "-c", "pass"]))
            times[module].append(wall([sys.executable, "-m", module, "--help"]))
    base = statistics.median(baseline)
    rows = [
        {"command": f"python -m {module} --help", "median_s": statistics.median(runs), "max_s": max(runs),
         "ratio_to_baseline": statistics.median(runs) / base}
        for module, runs in times.items()
    ]  # fmt: skip
    print(f"baseline (python -c pass): median {base:.3f} s over {len(baseline)} runs")
    print(f"{'command':<48} {'median s':>9} {'max s':>7} {'x baseline':>11}")
    for row in rows:
        print(f"{row['command']:<48} {row['median_s']:>9.2f} {row['max_s']:>7.2f} {row['ratio_to_baseline']:>11.1f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        result = {"repeats": args.repeats, "baseline_median_s": base, "commands": rows}
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
