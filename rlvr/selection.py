"""Example selection: score pool examples from their history, rank them, keep some ranks, repeat the rows.

Methods (``METHODS``), each scoring a whole history ``{id: [acc_epoch_0, ...]}``; higher ranks first:
- ``std``: historical variance score (the paper's): ``numpy.std`` (population, ddof 0) of the example's
  accuracies over all of its epochs, whatever their number, unrounded, as the official code computes it.
- ``random``: a seeded uniform draw per example, the history ignored.
- ``lim``: alignment with the pool's mean accuracy curve,
  ``1 - sum_i (acc_i - mean_i)^2 / sum_i (1 - mean_i)^2`` over the epochs all non-empty histories share
  (the official code truncates every history to the shortest non-empty one, and so does this).
- ``pass_rate``: a pass rate nearest 0.5 is best: ``-|acc_0 - 0.5|`` on the first epoch (the base model's
  pass rate; the history stage's ``pass_rate`` source gives exactly that without any training).
An empty history scores NaN and ranks last. Ties keep the history file's order (a stable sort by descending
score, the official script's), so every rank equals the official one. Examples without a gold answer (DSR-sub's
265) keep their rank but cannot be selected for training.
"""

from __future__ import annotations

import logging
import math
import random
import statistics
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from rlvr.config import parse_ranks
from rlvr.errors import ConfigError, InputError
from rlvr.files import atomic_write_text, read_json, read_rows, write_rows

__all__ = ["METHODS", "parse_ranks", "rank", "run_select", "select"]

logger = logging.getLogger(__name__)

History = dict[str, list[float]]


def std_scores(history: History, seed: int = 0) -> dict[str, float]:
    return {key: float(np.std(values)) if values else math.nan for key, values in history.items()}


def random_scores(history: History, seed: int = 0) -> dict[str, float]:
    generator = random.Random(seed)
    return {key: generator.random() for key in sorted(history, key=id_order)}


def lim_scores(history: History, seed: int = 0) -> dict[str, float]:
    lengths = [len(values) for values in history.values() if values]
    if not lengths:
        raise InputError("lim needs at least one non-empty history")
    common = min(lengths)
    mean = [statistics.fmean(values[i] for values in history.values() if values) for i in range(common)]
    scale = sum((1 - m) ** 2 for m in mean)
    if scale == 0:
        raise InputError("lim is undefined when the pool's mean accuracy is 1 in every epoch")
    return {
        key: 1 - sum((values[i] - mean[i]) ** 2 for i in range(common)) / scale if values else math.nan
        for key, values in history.items()
    }


def pass_rate_scores(history: History, seed: int = 0) -> dict[str, float]:
    return {key: -abs(values[0] - 0.5) if values else math.nan for key, values in history.items()}


METHODS: dict[str, Callable[[History, int], dict[str, float]]] = {
    "std": std_scores,
    "random": random_scores,
    "lim": lim_scores,
    "pass_rate": pass_rate_scores,
}


def validate_history(history: object, pool_ids: set[str], origin: str, excluded: Iterable[str] = ()) -> History:
    """``history`` with string ids and float values (file order kept), or an error naming ``origin`` and what is
    wrong. Ids in ``excluded`` (pool rows left out for lack of a gold answer) may be absent from the pool: they
    keep their place in the ranking but cannot be selected."""
    if not isinstance(history, dict):
        raise InputError(f"{origin}: a history is a JSON object {{id: [acc_epoch_0, ...]}}")
    result: History = {}
    for key, values in history.items():
        if not isinstance(values, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1 for v in values
        ):
            raise InputError(f"{origin}: history of id {key!r} is not a list of accuracies in [0, 1]")
        result[str(key)] = [float(v) for v in values]
    unknown = sorted(set(result) - pool_ids - set(excluded))
    if unknown:
        raise InputError(
            f"{origin}: {len(unknown)} of {len(result)} history ids are not in the pool, e.g. {unknown[:5]}"
        )
    return result


def id_order(example_id: str) -> tuple:
    """Sort key of an id: numeric ids (verl indices) by value, before other ids in string order."""
    return (0, int(example_id), "") if example_id.isdigit() else (1, 0, example_id)


def rank(history: History, method: str = "std", seed: int = 0) -> list[tuple[str, float]]:
    """``(id, score)`` by descending score, NaN last; ties keep the history's order (a stable sort)."""
    if method not in METHODS:
        raise ConfigError(f"unknown selection method {method!r}; choose one of {sorted(METHODS)}")
    scores = METHODS[method](history, seed)
    return sorted(((key, scores[key]) for key in history), key=lambda item: (math.isnan(item[1]), -item[1]))


def repeat_rows(chosen: list[dict], repeat: int) -> list[dict]:
    """The chosen rows cycled to ``repeat`` rows (the batch size), at least one of each."""
    return [dict(chosen[i % len(chosen)]) for i in range(max(repeat, len(chosen)))]


def select(
    history: History,
    pool: list[dict],
    method: str,
    ranks: str,
    repeat: int,
    seed: int = 0,
    origin: str = "history",
    excluded: Iterable[str] = (),
) -> tuple[list[dict], list[dict]]:
    """The selected rows (the pool rows of ``ranks``, in rank order, repeated) and the ranking table.

    Examples without a gold answer (pool rows with an empty answer, and the ids in ``excluded``) are ranked but
    asking for their rank is an error naming them.
    """
    by_id = {row["id"]: row for row in pool if str(row["answer"]).strip()}
    excluded = {row["id"] for row in pool if row["id"] not in by_id} | set(excluded)
    history = validate_history(history, set(by_id), origin, excluded)
    ranking = rank(history, method, seed)
    wanted = parse_ranks(ranks, last=len(ranking))
    if max(wanted) > len(ranking):
        raise ConfigError(f"rank {max(wanted)} asked for, but {origin} ranks only {len(ranking)} examples")
    for r in wanted:
        if ranking[r - 1][0] not in by_id:
            example = ranking[r - 1][0]
            raise ConfigError(f"rank {r} is example {example}, which has no gold answer: it cannot be trained on")
    rows = repeat_rows([by_id[ranking[r - 1][0]] for r in wanted], repeat)
    missing = {"answer": "", "problem": ""}
    table = [
        {
            "rank": position,
            "id": example_id,
            "score": value,
            "mean_accuracy": statistics.fmean(history[example_id]) if history[example_id] else math.nan,
            "epochs": len(history[example_id]),
            "answer": by_id.get(example_id, missing)["answer"],
            "problem": by_id.get(example_id, missing)["problem"][:100].replace("\n", " "),
            "trainable": example_id in by_id,
        }
        for position, (example_id, value) in enumerate(ranking, 1)
    ]
    return rows, table


def run_select(
    history_path: str | Path,
    pool_path: str | Path,
    method: str,
    ranks: str,
    repeat: int,
    out_path: str | Path,
    ranking_path: str | Path | None = None,
    seed: int = 0,
    excluded: Iterable[str] = (),
) -> list[dict]:
    """The select stage: write the selected rows (jsonl or parquet) and, optionally, the ranking table (csv)."""
    history, pool = read_json(history_path), read_rows(pool_path)
    rows, table = select(history, pool, method, ranks, repeat, seed, str(history_path), excluded)
    write_rows(out_path, rows)
    if ranking_path is not None:
        import pandas as pd

        atomic_write_text(ranking_path, pd.DataFrame(table).to_csv(index=False))
    return rows
