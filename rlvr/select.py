"""Example selection: rank pool examples by a score of their training history, keep some ranks, repeat."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path

from rlvr.config import InputError
from rlvr.data import read_json, read_rows, write_rows


def std_score(accuracies: list[float]) -> float:
    """Historical variance score (the paper's): population std of the per-epoch accuracies."""
    return statistics.pstdev(accuracies) if accuracies else 0.0


METHODS: dict[str, Callable[[list[float]], float]] = {"std": std_score}


def parse_ranks(ranks: str) -> list[int]:
    """``"1"``, ``"1,13"`` or ``"1-16"`` (and mixes such as ``"1-3,13"``) as 1-based ranks, in order."""
    result: list[int] = []
    for part in str(ranks).split(","):
        part = part.strip()
        try:
            if "-" in part:
                low, high = (int(x) for x in part.split("-", 1))
                result.extend(range(low, high + 1))
            else:
                result.append(int(part))
        except ValueError as error:
            raise ValueError(f"ranks: cannot read {part!r} (use forms like 1, 1,13 or 1-16)") from error
    if not result or min(result) < 1:
        raise ValueError(f"ranks must be positive, got {ranks!r}")
    return result


def rank(history: dict[str, list[float]], method: str = "std") -> list[tuple[str, float]]:
    """``(id, score)`` by descending score; ties broken by id, stably."""
    if method not in METHODS:
        raise ValueError(f"unknown selection method {method!r}; choose one of {sorted(METHODS)}")
    score = METHODS[method]
    scored = [(str(example_id), score(list(values))) for example_id, values in history.items()]
    return sorted(scored, key=lambda item: (-item[1], item[0]))


def select(
    history: dict[str, list[float]], pool: list[dict], method: str, ranks: str, repeat: int
) -> tuple[list[dict], list[dict]]:
    """The selected rows (each rank's pool row, in rank order, the set repeated to ``repeat`` rows) and the ranking."""
    by_id = {row["id"]: row for row in pool}
    unknown = sorted(set(history) - set(by_id))
    if unknown:
        raise InputError(f"{len(unknown)} history ids are not in the pool, e.g. {unknown[:3]}")
    ranking = rank(history, method)
    wanted = parse_ranks(ranks)
    if max(wanted) > len(ranking):
        raise ValueError(f"rank {max(wanted)} asked for, but the history ranks only {len(ranking)} examples")
    chosen = [by_id[ranking[r - 1][0]] for r in wanted]
    if repeat < len(chosen):
        raise ValueError(f"repeat ({repeat}) must be at least the number of selected examples ({len(chosen)})")
    rows = [dict(chosen[i % len(chosen)]) for i in range(repeat)]
    table = [
        {
            "rank": position,
            "id": example_id,
            "score": value,
            "mean_accuracy": statistics.fmean(history[example_id]) if history[example_id] else 0.0,
            "epochs": len(history[example_id]),
            "problem": by_id[example_id]["problem"][:80],
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
) -> list[dict]:
    """The select stage: write the selected rows (jsonl or parquet) and, optionally, the ranking table (csv)."""
    history = {str(k): v for k, v in read_json(history_path).items()}
    rows, table = select(history, read_rows(pool_path), method, ranks, repeat)
    write_rows(out_path, rows)
    if ranking_path is not None:
        import pandas as pd

        Path(ranking_path).parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(table).to_csv(ranking_path, index=False)
    return rows
