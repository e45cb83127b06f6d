"""The report's tables and findings: pure functions of run results, accuracy in percent with the 95% interval
shown as ± half-width, gains over the base model with the p-value of the paired test."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml

from rlvr.grading import GRADING_MODES as MODES
from rlvr.runs import RunResult

ALPHA = 0.05  # significance level of the paired tests
PAPER_MODE = "official"  # the paper's numbers come from its evaluation harness
Rows = tuple[list[str], list[list[str]]]


def load_reference() -> list[dict]:
    """The paper's reference numbers (``rlvr/resources/paper_reference.yaml``)."""
    text = resources.files("rlvr").joinpath("resources/paper_reference.yaml").read_text()
    return yaml.safe_load(text)["runs"]


def reference_for(model: str, setting: str | None, algorithm: str, reference: list[dict]) -> dict | None:
    """The paper's numbers for this model, training set and algorithm, if the paper reports them."""
    matches = (
        entry["values"]
        for entry in reference
        if entry["model"] == model and entry["setting"] == setting and entry["algorithm"] == algorithm
    )
    return next(matches, None)


def pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def with_interval(accuracy: tuple[float, float, float] | None) -> str:
    """``25.0 ± 7.5``: the accuracy and the half-width of its 95% interval, in percent."""
    if accuracy is None:
        return "–"
    value, low, high = accuracy
    return f"{100 * value:.1f} ± {100 * (high - low) / 2:.1f}"


def p_text(p_value: float) -> str:
    return "< 0.001" if p_value < 0.001 else f"{p_value:.3f}"


def columns(runs: list[RunResult]) -> list[str]:
    return list(dict.fromkeys(b for run in runs for b in run.benchmarks))


def accuracy_table(runs: list[RunResult], mode: str, step_of) -> Rows:
    """Rows: each model's base (step 0), then each run at ``step_of(run)``; columns: benchmarks and average."""
    names = columns(runs)
    header = ["run", "step", *names, "average"]
    rows, based = [], set()
    for run in runs:
        if run.model not in based and 0 in run.evals:
            based.add(run.model)
            rows.append([f"base · {Path(run.model).name}", "0", *_cells(run, 0, names, mode)])
    for run in runs:
        step = step_of(run)
        label = run.name + (" (partial)" if run.partial else "")
        rows.append([label, "–" if step is None else str(step), *_cells(run, step, names, mode)])
    return header, rows


def _cells(run: RunResult, step: int | None, names: list[str], mode: str) -> list[str]:
    return [with_interval(run.accuracy(step, name, mode)) for name in [*names, "average"]]


def gains_table(runs: list[RunResult], mode: str) -> Rows:
    """Each run's best checkpoint against its base model, per benchmark: the gain in points and the p-value of
    the paired test on the same problems (exact McNemar, or a paired bootstrap with several samples)."""
    header = ["run", "step", "benchmark", "base", "checkpoint", "gain (points)", "p-value", f"significant at {ALPHA}"]
    rows = []
    for run in runs:
        step = run.best_step(mode)
        for name in run.benchmarks:
            paired = run.paired(step, name, mode)
            if paired is None:
                continue
            gain, p_value = paired
            base, after = run.accuracy(0, name, mode), run.accuracy(step, name, mode)
            significant = "yes" if p_value < ALPHA else "no"
            row = [run.name, str(step), name, with_interval(base), with_interval(after)]
            rows.append([*row, f"{100 * gain:+.1f}", p_text(p_value), significant])
    return header, rows


def modes_table(runs: list[RunResult], mode: str) -> Rows:
    """The benchmark average of each model's base and each run's best checkpoint (chosen under ``mode``) in
    every grading mode, side by side."""
    header = ["run", "step", *(f"{m}{' (headline)' if m == mode else ''}" for m in MODES)]
    rows, based = [], set()
    for run in runs:
        if run.model not in based and 0 in run.evals:
            based.add(run.model)
            rows.append(
                [f"base · {Path(run.model).name}", "0", *(with_interval(run.accuracy(0, "average", m)) for m in MODES)]
            )
    for run in runs:
        step = run.best_step(mode)
        cells = [with_interval(run.accuracy(step, "average", m)) for m in MODES]
        rows.append([run.name, "–" if step is None else str(step), *cells])
    return header, rows


def paper_table(runs: list[RunResult], reference: list[dict], mode: str = PAPER_MODE) -> Rows:
    """Measured minus the paper's number, in percentage points, for runs (and their base) matching a paper setting,
    graded like the paper (``official``) at the best checkpoint under that grading."""
    header = ["run", "setting", "benchmark", "measured", "paper", "difference (points)"]
    rows = []
    for run in runs:
        for setting, step in (("base", 0), (run.setting, run.best_step(mode))):
            paper = reference_for(run.model, setting, run.algorithm, reference)
            if paper is None or step is None or step not in run.evals:
                continue
            for bench, number in paper.items():
                measured = run.value(step, bench, f"accuracy_{mode}")
                if measured is not None:
                    difference = f"{100 * measured - number:+.1f}"
                    rows.append([run.name, setting, bench, pct(measured), f"{number:.1f}", difference])
    return header, rows


def finding(run: RunResult, mode: str) -> str:
    """One run's findings line: average base -> best with intervals, which benchmark gains are significant at
    ``ALPHA``, which losses are (named only where there are some), which changes are not, and the saturation of
    the training example."""
    best = run.best_step(mode)
    base, top = run.accuracy(0, "average", mode), run.accuracy(best, "average", mode)
    change = (
        "no checkpoint evaluated"
        if top is None or base is None
        else f"{with_interval(base)} → {with_interval(top)} at step {best}"
    )
    significant, losses, not_significant = [], [], []
    for name in run.benchmarks:
        if (paired := run.paired(best, name, mode)) is not None:
            gain, p_value = paired
            text = f"{name} {100 * gain:+.1f} (p {p_text(p_value)})"
            if p_value >= ALPHA:
                not_significant.append(text)
            else:
                (significant if gain > 0 else losses).append(text)
    tests = ""
    if significant or losses or not_significant:
        lost = f"losses significant at {ALPHA}: {', '.join(losses)}; " if losses else ""
        tests = (
            f" Gains significant at {ALPHA}: {', '.join(significant) or 'none'}; {lost}"
            f"not significant: {', '.join(not_significant) or 'none'}."
        )
    saturated, gain = run.post_saturation(mode)
    sat = (
        "never reached 100% training accuracy"
        if saturated is None
        else (
            f"100% training accuracy at step {saturated}"
            + ("" if gain is None else f", held-out average {100 * gain:+.1f} points after it")
        )
    )
    return f"{run.name} (examples {run.examples}, reward {run.reward or '?'}): average {change}; {sat}.{tests}"
