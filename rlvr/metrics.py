"""Evaluation protocols and metrics: accuracy (avg@k), unbiased pass@k, maj@k, response-shape shares.

Pure functions over graded samples, so they are testable without a model.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from math import comb

REFLECTION_WORDS = ("rethink", "recheck", "recalculate")
_REFLECTION = re.compile("|".join(REFLECTION_WORDS), re.IGNORECASE)


@dataclass(frozen=True)
class Protocol:
    """How a benchmark is sampled: ``num_samples`` per problem at ``temperature`` (0: greedy) and ``top_p``."""

    num_samples: int = 1
    temperature: float = 0.0
    top_p: float = 1.0

    def __post_init__(self) -> None:
        if self.num_samples < 1 or self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError(f"invalid protocol {self}")
        if self.num_samples > 1 and self.temperature == 0:
            raise ValueError("several samples per problem need a temperature > 0")


# The paper's protocol: greedy for MATH500, Minerva Math and OlympiadBench; avg@8 at temperature 0.6 for
# AIME24, AIME25 and AMC23. Other benchmarks are greedy.
PAPER_PROTOCOLS = {name: Protocol(8, 0.6) for name in ("aime24", "aime25", "amc23")}


def protocol_for(dataset: str, overrides: dict[str, dict]) -> Protocol:
    """The protocol of ``dataset``: the paper's, with ``overrides[dataset]`` applied on top."""
    base = PAPER_PROTOCOLS.get(dataset, Protocol())
    values = {**base.__dict__, **(overrides.get(dataset) or {})}
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
        metrics[f"accuracy_{mode}"] = statistics.fmean(sum(f) / len(f) for f in flags)
        if k > 1:
            metrics[f"pass_at_{k}_{mode}"] = statistics.fmean(pass_at_k(len(f), sum(f), k) for f in flags)
            metrics[f"maj_at_{k}_{mode}"] = statistics.fmean(
                majority_correct([s[f"extracted_{mode}"] for s in group], f)
                for group, f in zip(groups, flags, strict=True)
            )
    for name, key in (("boxed_share", "boxed"), ("repetition_share", "repetition"), ("reflection_share", "reflection")):
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
            **{f"accuracy_{mode}": statistics.fmean(bool(s[f"correct_{mode}"]) for s in group) for mode in modes},
        }
        for value, group in sorted(groups.items())
    }


def best_row(rows: list[dict], mode: str) -> dict | None:
    """The best checkpoint's row (the paper's reported checkpoint): among steps > 0, the highest benchmark
    average (``average.accuracy_<mode>``), the earliest step on ties; None before any checkpoint. The one
    definition the evaluate stage, the model registry, the report and ``dvc exp show`` all use."""
    key = f"average.accuracy_{mode}"
    candidates = [row for row in rows if row["step"] > 0 and row.get(key) is not None]
    return max(candidates, key=lambda row: (row[key], -row["step"]), default=None)
