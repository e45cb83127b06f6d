"""Evaluation protocols and metrics: accuracy (avg@k) with its 95% interval, unbiased pass@k, maj@k,
response-shape shares, and the paired test of a checkpoint against the base model.

Intervals: Wilson's score interval for one sample per problem; a bootstrap over problems for k > 1 samples.
Paired test of two models on the same problems: exact McNemar on the per-problem outcomes (one sample each),
a paired bootstrap over problems for k > 1. Pure functions over graded samples, testable without a model.
"""

from __future__ import annotations

import math
import random
import re
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from math import comb

from rlvr.errors import ConfigError
from rlvr.grading import GRADING_MODES

AVERAGE = "average"  # the scope of the benchmark average's metrics, beside each benchmark's name


def scoped(scope: str, name: str) -> str:
    """A metric's name under a benchmark (or ``AVERAGE``): ``math500.accuracy_official``."""
    return f"{scope}.{name}"


def metric_name(kind: str, mode: str, bound: str = "", scope: str | None = None) -> str:
    """The one spelling of a graded metric's name: ``<kind>_<mode>`` (``accuracy_official``, ``gain_strict``,
    ``pass_at_8_official``), ``_low`` / ``_high`` added for a 95% interval's ``bound``, under ``scope`` where given
    (``average.accuracy_official_low``)."""
    name = f"{kind}_{mode}_{bound}" if bound else f"{kind}_{mode}"
    return scoped(scope, name) if scope else name


def accuracy_names(mode: str, scope: str | None = None) -> tuple[str, str, str]:
    """The names of an accuracy under ``mode`` and of its 95% interval's bounds (:func:`metric_name`)."""
    return tuple(metric_name("accuracy", mode, bound, scope) for bound in ("", "low", "high"))


Z_95 = 1.959963984540054  # the standard normal's 97.5% quantile
BOOTSTRAP_RESAMPLES = 2000
ALPHA = 0.05  # the significance level of the paired tests, in the report and the findings

REFLECTION_WORDS = ("rethink", "recheck", "recalculate")
# share metrics of a benchmark and the sample flag each counts: a final \boxed{} with content, the token budget
# reached (no end token, no stop string), the loop stop, a looping end, a self-reflection word
SHARES = {
    "boxed_share": "boxed",
    "cut_share": "cut",
    "loop_stop_share": "loop_stopped",
    "repetition_share": "repetition",
    "reflection_share": "reflection",
}
_REFLECTION = re.compile("|".join(REFLECTION_WORDS), re.IGNORECASE)


@dataclass(frozen=True)
class Protocol:
    """How a benchmark is sampled: ``num_samples`` per problem at ``temperature`` (0: greedy) and ``top_p``."""

    num_samples: int = 1
    temperature: float = 0.0
    top_p: float = 1.0

    def __post_init__(self) -> None:
        if self.num_samples < 1 or self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ConfigError(f"invalid protocol {self}")
        if self.num_samples > 1 and self.temperature == 0:
            raise ConfigError("several samples per problem need a temperature > 0")


# The paper's protocol: greedy for MATH500, Minerva Math and OlympiadBench; avg@8 at temperature 0.6 for
# AIME24, AIME25 and AMC23. Other benchmarks are greedy.
PAPER_PROTOCOLS = {name: Protocol(8, 0.6) for name in ("aime24", "aime25", "amc23")}


def protocol_for(dataset: str, overrides: dict) -> Protocol:
    """The protocol of ``dataset``: the paper's, with ``overrides[dataset]`` (a mapping, or the params'
    protocol section) applied on top, its unset fields left alone."""
    base = PAPER_PROTOCOLS.get(dataset, Protocol())
    override = overrides.get(dataset) or {}
    if not isinstance(override, dict):
        override = override.model_dump(exclude_none=True)
    values = {**base.__dict__, **{key: value for key, value in override.items() if value is not None}}
    return Protocol(int(values["num_samples"]), float(values["temperature"]), float(values["top_p"]))


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples of which ``c`` are correct (Chen et al. 2021)."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def majority_correct(answers: list[str | None], correct: list[bool]) -> bool:
    """Whether the most frequent extracted answer (ties: the first seen) is a correct one; no answer never wins."""
    votes = Counter(a.strip() for a in answers if a and a.strip())
    if not votes:
        return False
    top = max(votes.values())
    winner = next(a.strip() for a in answers if a and a.strip() and votes[a.strip()] == top)
    return any(ok for a, ok in zip(answers, correct, strict=True) if a and a.strip() == winner)


def ends_in_loop(text: str, min_repeats: int = 3, min_chars: int = 30, max_period: int = 200) -> bool:
    """True when ``text`` ends in one block repeated ``min_repeats``+ times over ``min_chars``+ characters."""
    text = text.rstrip()
    for period in range(1, min(max_period, len(text) // min_repeats) + 1):
        block = text[-period:]
        repeats = 1
        while text.endswith(block * (repeats + 1)):
            repeats += 1
        if repeats >= min_repeats and repeats * period >= min_chars:
            return True
    return False


LOOP_REPEATS, LOOP_CHARS = 4, 60  # the loop stop's rule: on the validation suites it changed no grade
_NUMBERS = re.compile(r"\d+")


def loops(text: str) -> bool:
    """True when ``text``, its numbers masked, ends in one block repeated ``LOOP_REPEATS``+ times over
    ``LOOP_CHARS``+ characters: a greedy loop that would run to the token budget, counters and all."""
    return ends_in_loop(_NUMBERS.sub("#", text), LOOP_REPEATS, LOOP_CHARS)


def self_reflects(text: str) -> bool:
    """True when ``text`` contains "rethink", "recheck" or "recalculate" (any case)."""
    return bool(_REFLECTION.search(text))


def summarise(samples: list[dict], modes: tuple[str, ...]) -> dict[str, float]:
    """Metrics of one benchmark from its per-sample records (``problem_index``, ``correct_<mode>``, ...).

    ``accuracy_<mode>`` is avg@k (mean over problems of the share of correct samples; plain accuracy when
    greedy); with k > 1 samples also ``pass_at_<k>_<mode>`` (unbiased pass@k) and ``maj_at_<k>_<mode>``
    (maj@k). Names avoid ``@``, which MLflow metric names do not allow.
    """
    by_problem: dict[int, list[dict]] = defaultdict(list)
    for sample in samples:
        by_problem[sample["problem_index"]].append(sample)
    groups = list(by_problem.values())
    k = min(len(group) for group in groups)
    metrics: dict[str, float] = {"num_problems": len(groups), "samples_per_problem": k}
    for mode in modes:
        flags = [[bool(s[f"correct_{mode}"]) for s in group] for group in groups]
        scores = [sum(f) / len(f) for f in flags]
        key, low, high = accuracy_names(mode)
        metrics[key] = statistics.fmean(scores)
        metrics[low], metrics[high] = accuracy_interval(scores)
        if k > 1:
            metrics[metric_name(f"pass_at_{k}", mode)] = statistics.fmean(pass_at_k(len(f), sum(f), k) for f in flags)
            metrics[metric_name(f"maj_at_{k}", mode)] = statistics.fmean(
                majority_correct([s[f"extracted_{mode}"] for s in group], f)
                for group, f in zip(groups, flags, strict=True)
            )
    for name, key in SHARES.items():
        metrics[name] = statistics.fmean(bool(s[key]) for s in samples)
    metrics["mean_response_length"] = statistics.fmean(s["length"] for s in samples)
    return metrics


def breakdown(samples: list[dict], field: str, modes: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Accuracy per value of a row field (MATH500's ``subject`` or ``level``), with the problem count."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for sample in samples:
        if sample.get(field) is not None:
            groups[str(sample[field])].append(sample)
    return {
        value: {
            "num_problems": len({s["problem_index"] for s in group}),
            **{
                metric_name("accuracy", mode): statistics.fmean(bool(s[f"correct_{mode}"]) for s in group)
                for mode in modes
            },
        }
        for value, group in sorted(groups.items())
    }


def best_row(rows: list[dict], mode: str) -> dict | None:
    """The best checkpoint's row (the paper's reported checkpoint): among steps > 0, the highest benchmark
    average (``average.accuracy_<mode>``), the earliest step on ties; None before any checkpoint. The one
    definition the evaluate stage, the model registry, the report and ``dvc exp show`` all use."""
    key = metric_name("accuracy", mode, scope=AVERAGE)
    candidates = [row for row in rows if row["step"] > 0 and row.get(key) is not None]
    return max(candidates, key=lambda row: (row[key], -row["step"]), default=None)


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson's score interval of a proportion (95% by default); (0, 1) without observations."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    low, high = max(0.0, centre - half), min(1.0, centre + half)
    return (0.0 if successes == 0 else low), (1.0 if successes == n else high)


def bootstrap_interval(scores: list[float], resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """The 2.5% and 97.5% percentiles of the mean over problems resampled with replacement."""
    rng = random.Random(seed)
    n = len(scores)
    means = sorted(sum(rng.choices(scores, k=n)) / n for _ in range(resamples))
    return means[int(0.025 * resamples)], means[int(0.975 * resamples) - 1]


def accuracy_interval(scores: list[float]) -> tuple[float, float]:
    """95% interval of an accuracy from per-problem scores: Wilson where each is 0 or 1, else a bootstrap."""
    if all(score in (0.0, 1.0) for score in scores):
        return wilson_interval(int(sum(scores)), len(scores))
    return bootstrap_interval(scores)


def mcnemar_exact(only_first: int, only_second: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pairs (right only before, right only after)."""
    n = only_first + only_second
    if n == 0:
        return 1.0
    tail = sum(comb(n, i) for i in range(min(only_first, only_second) + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired_bootstrap_p(
    before: list[float], after: list[float], resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0
) -> float:
    """Two-sided p-value of a mean paired difference (after - before) by bootstrapping the problems under the
    null (differences centred on 0)."""
    differences = [a - b for a, b in zip(after, before, strict=True)]
    n, observed = len(differences), statistics.fmean(differences)
    centred = [d - observed for d in differences]
    rng = random.Random(seed)
    extreme = sum(abs(sum(rng.choices(centred, k=n)) / n) >= abs(observed) - 1e-12 for _ in range(resamples))
    return (extreme + 1) / (resamples + 1)


def paired_test(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Gain and p-value of ``after`` over ``before`` (per-problem scores by problem id, the shared ids): exact
    McNemar where every score is 0 or 1, a paired bootstrap otherwise."""
    ids = [key for key in before if key in after]
    if not ids:
        return {}
    first, second = [before[i] for i in ids], [after[i] for i in ids]
    gain = statistics.fmean(second) - statistics.fmean(first)
    if all(score in (0.0, 1.0) for score in first + second):
        only_after = sum(b == 0.0 and a == 1.0 for b, a in zip(first, second, strict=True))
        only_before = sum(b == 1.0 and a == 0.0 for b, a in zip(first, second, strict=True))
        p_value = mcnemar_exact(only_before, only_after)
    else:
        p_value = paired_bootstrap_p(first, second)
    return {"gain": gain, "p_value": p_value}


def problem_scores(samples: list[dict], mode: str) -> dict[str, float]:
    """Per problem (by id), the share of its samples graded correct under ``mode``."""
    return problem_shares(samples, f"correct_{mode}")


def problem_shares(samples: list[dict], flag: str) -> dict[str, float]:
    """Per problem (by id), the share of its samples whose ``flag`` is true (``correct_<mode>``, ``boxed``, ...)."""
    flags: dict[str, list[bool]] = defaultdict(list)
    for sample in samples:
        flags[str(sample["id"])].append(bool(sample[flag]))
    return {key: sum(values) / len(values) for key, values in flags.items()}


def paired_difference_interval(before: dict[str, float], after: dict[str, float]) -> tuple[float, float]:
    """95% interval of the mean paired difference (after - before) over the shared problems: the normal one of the
    per-problem differences; (nan, nan) with fewer than two problems."""
    differences = [after[key] - before[key] for key in before if key in after]
    if len(differences) < 2:
        return math.nan, math.nan
    mean, half = statistics.fmean(differences), Z_95 * statistics.stdev(differences) / math.sqrt(len(differences))
    return mean - half, mean + half


def average_interval(metrics: list[dict], mode: str) -> tuple[float, float]:
    """95% interval of a benchmark average from each benchmark's interval (independent benchmarks, normal
    approximation: the half-widths combine in quadrature, divided by the number of benchmarks)."""
    key, low, high = accuracy_names(mode)
    mean = statistics.fmean(m[key] for m in metrics)
    half = math.sqrt(sum(((m[high] - m[low]) / 2) ** 2 for m in metrics)) / len(metrics)
    return max(0.0, mean - half), min(1.0, mean + half)


AVERAGED_SHAPES = (*SHARES, "mean_response_length")


def average_metrics(metrics: list[dict], modes: tuple[str, ...] = GRADING_MODES) -> dict:
    """The benchmark average of a step: the plain mean over ``metrics`` (one entry per evaluated benchmark, each
    counted once, whatever its size) of each grading mode's accuracy, with its interval
    (:func:`average_interval`), and of the response-shape shares and length."""
    average: dict[str, float] = {}
    for mode in modes:
        key, low, high = accuracy_names(mode)
        average[key] = statistics.fmean(m[key] for m in metrics)
        average[low], average[high] = average_interval(metrics, mode)
    for key in AVERAGED_SHAPES:
        if all(key in m for m in metrics):
            average[key] = statistics.fmean(m[key] for m in metrics)
    return average
