"""The report's tables and findings: pure functions of run results, accuracy in percent with the 95% interval
shown as ± half-width, gains over the base model with the p-value of the paired test."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml

from rlvr.grading import GRADING_MODES as MODES
from rlvr.metrics import ALPHA, AVERAGE, metric_name
from rlvr.runs import RunResult

PAPER_MODE = "official"  # the paper's numbers come from its evaluation harness
PAPER_BENCHMARKS = ("math500", "aime24", "amc23", "minerva_math", "olympiadbench", "aime25")  # its average's six
CUT_WARNING = 0.10  # a base cut share above this on a benchmark: its gain is confounded with the budget
Rows = tuple[list[str], list[list[str]]]


def load_reference() -> list[dict]:
    """The paper's reference numbers (``rlvr/resources/paper_reference.yaml``)."""
    text = resources.files("rlvr").joinpath("resources/paper_reference.yaml").read_text()
    return yaml.safe_load(text)["runs"]


def reference_for(model: str, setting: str | None, algorithm: str, reference: list[dict]) -> dict | None:
    """The paper's numbers for this model, training set and algorithm, if the paper reports them (the base model's
    whatever the algorithm: it is not trained)."""
    matches = (
        entry["values"]
        for entry in reference
        if entry["model"] == model
        and entry["setting"] == setting
        and (setting == "base" or entry["algorithm"] == algorithm)
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


def average_of(names: list[str]) -> str:
    """What an average averages: ``average of 5 (arith1, units, word1, arith2, word2)``."""
    return f"average of {len(names)} ({', '.join(names)})"


def average_header(runs: list[RunResult]) -> str:
    """The average column's name: ``average of N`` where every run averages the same benchmarks."""
    sets = {tuple(run.benchmarks) for run in runs if run.benchmarks}
    return f"average of {len(next(iter(sets)))}" if len(sets) == 1 else "average (each run's benchmarks)"


def averages_text(runs: list[RunResult]) -> str:
    """Which benchmarks each run's average is over, said once where every run has the same."""
    sets = list(dict.fromkeys(tuple(run.benchmarks) for run in runs if run.benchmarks))
    if len(sets) == 1:
        return f"The average: {average_of(list(sets[0]))}."
    return "The averages: " + "; ".join(f"{run.name}: {average_of(run.benchmarks)}" for run in runs) + "."


def provenance_text(runs: list[RunResult]) -> str:
    """What computed each run's results (CPU with the flags that matter and its kernels, or GPU; precision) and
    the code's commit, said once where every run has the same."""

    def of(run: RunResult) -> str:
        machines = "; ".join(run.computed_on) or "not recorded (results of an older version)"
        return f"computed on {machines}, code at commit {run.commit or 'unknown'}"

    said = list(dict.fromkeys(of(run) for run in runs))
    if len(said) == 1:
        return f"Results {said[0]}."
    return "Results: " + "; ".join(f"{run.name}: {of(run)}" for run in runs) + "."


def accuracy_table(runs: list[RunResult], mode: str, step_of) -> Rows:
    """Rows: each model's base (step 0), then each run at ``step_of(run)``; columns: benchmarks and average."""
    names = columns(runs)
    header = ["run", "step", *names, average_header(runs)]
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
    return [with_interval(run.accuracy(step, name, mode)) for name in [*names, AVERAGE]]


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
    header = ["run", "step", *(f"{average_header(runs)}, {m}{' (headline)' if m == mode else ''}" for m in MODES)]
    rows, based = [], set()
    for run in runs:
        if run.model not in based and 0 in run.evals:
            based.add(run.model)
            rows.append(
                [f"base · {Path(run.model).name}", "0", *(with_interval(run.accuracy(0, AVERAGE, m)) for m in MODES)]
            )
    for run in runs:
        step = run.best_step(mode)
        cells = [with_interval(run.accuracy(step, AVERAGE, m)) for m in MODES]
        rows.append([run.name, "–" if step is None else str(step), *cells])
    return header, rows


def cut_table(runs: list[RunResult], mode: str) -> Rows:
    """Per run and benchmark, the share of completions the token budget cut (no end token, no stop string) for
    the base model and the best checkpoint: where the base's is high, much of a gain can be learning to stop."""
    header = ["run", "budget (tokens)", "benchmark", "base cut share (%)", "best step", "cut share at best (%)"]
    rows = []
    for run in runs:
        best = run.best_step(mode)
        budget = "–" if run.max_new_tokens is None else str(run.max_new_tokens)
        for name in run.benchmarks:
            base = run.value(0, name, "cut_share")
            if base is None:
                continue
            after = run.value(best, name, "cut_share") if best is not None else None
            rows.append([run.name, budget, name, pct(base), "–" if best is None else str(best), pct(after)])
    return header, rows


def paper_average(run: RunResult, step: int, mode: str = PAPER_MODE) -> float | None:
    """The run's average over the paper's six benchmarks at ``step`` (None unless it evaluated all six)."""
    values = [run.value(step, name, metric_name("accuracy", mode)) for name in PAPER_BENCHMARKS]
    return None if None in values else sum(values) / len(values)


def paper_table(runs: list[RunResult], reference: list[dict], mode: str = PAPER_MODE) -> Rows:
    """Measured minus the paper's number, in percentage points, for runs (and their base) matching a paper setting,
    graded like the paper (``official``) at the best checkpoint under that grading. The paper's average is over
    its six benchmarks, so the run's is too, whatever else the run evaluated."""
    header = ["run", "setting", "benchmark", "measured", "paper", "difference (points)"]
    rows = []
    for run in runs:
        for setting, step in (("base", 0), (run.setting, run.best_step(mode))):
            paper = reference_for(run.reference_model or run.model, setting, run.algorithm, reference)
            if paper is None or step is None or step not in run.evals:
                continue
            for bench, number in paper.items():
                if bench == AVERAGE:
                    measured, bench = paper_average(run, step, mode), average_of(list(PAPER_BENCHMARKS))
                else:
                    measured = run.value(step, bench, metric_name("accuracy", mode))
                if measured is not None:
                    difference = f"{100 * measured - number:+.1f}"
                    rows.append([run.name, setting, bench, pct(measured), f"{number:.1f}", difference])
    return header, rows


def saturation_text(run: RunResult, mode: str) -> str:
    """When the training example saturated (100%, and at least 90% for good) and the held-out average's gain
    after it, to the best checkpoint and to the last evaluated step."""
    post = run.post_saturation(mode)
    if post.step is None:
        return "never reached 100% training accuracy"
    held = "" if post.stays_from is None else f", at least 90% from step {post.stays_from} on"
    text = f"100% training accuracy at step {post.step}{held}"
    gains = [
        f"{100 * gain:+.1f} points to the {what} (step {step})"
        for what, step, gain in (
            ("best", post.best_step, post.gain_to_best),
            ("last", post.last_step, post.gain_to_last),
        )
        if gain is not None
    ]
    if gains:
        text += f"; held-out average after it (from step {post.from_step}): {', '.join(gains)}"
    return text


def finding(run: RunResult, mode: str) -> str:
    """One run's findings line: what the average averages, base -> best with intervals, which benchmark gains are
    significant at ``ALPHA``, which losses are (named only where there are some), which changes are not, the
    saturation of the training example, and where the base model's answers were often cut by the token budget."""
    best = run.best_step(mode)
    base, top = run.accuracy(0, AVERAGE, mode), run.accuracy(best, AVERAGE, mode)
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
    cut = [
        f"{name} {pct(share)}%"
        for name in run.benchmarks
        if (share := run.value(0, name, "cut_share")) is not None and share > CUT_WARNING
    ]
    budget = "" if run.max_new_tokens is None else f" ({run.max_new_tokens} tokens)"
    warning = (
        f" Base answers cut by the token budget{budget} on more than {CUT_WARNING:.0%}: {', '.join(cut)}; "
        "gain confounded with the generation budget."
        if cut
        else ""
    )
    names = average_of(run.benchmarks)
    sat = saturation_text(run, mode)
    return f"{run.name} (examples {run.examples}, reward {run.reward or '?'}): {names} {change}; {sat}.{tests}{warning}"
