import json

import numpy as np
import pandas as pd
import pytest
from conftest import run_module

from rlvr.config import InputError
from rlvr.data import read_rows, write_rows
from rlvr.select import METHODS, parse_ranks, rank, select

HISTORY = {
    "a": [0.0, 0.0, 0.0],  # never solved: std 0
    "b": [0.0, 0.5, 1.0],  # learned gradually: second
    "c": [1.0, 1.0, 1.0],  # always solved: std 0
    "d": [0.0, 1.0, 1.0],  # learned at once: highest std
    "e": [0.25, 0.5, 0.25],
}
POOL = [{"id": k, "problem": f"problem {k}", "answer": str(i), "source": "t"} for i, k in enumerate(HISTORY)]


def test_rank_by_historical_variance_with_ties_broken_by_id():
    assert [example_id for example_id, _ in rank(HISTORY)] == ["d", "b", "e", "a", "c"]


@pytest.mark.parametrize(
    ("text", "ranks"), [("1", [1]), ("1,13", [1, 13]), ("1-4", [1, 2, 3, 4]), ("1-2,5", [1, 2, 5])]
)
def test_parse_ranks(text, ranks):
    assert parse_ranks(text) == ranks


@pytest.mark.parametrize("text", ["0", "x", "", "3-x"])
def test_parse_ranks_rejects_bad_input(text):
    with pytest.raises(ValueError, match="ranks"):
        parse_ranks(text)


def test_select_repeats_ranks_in_order_to_the_batch_size():
    rows, table = select(HISTORY, POOL, "std", "1,3", 5)
    assert [r["id"] for r in rows] == ["d", "e", "d", "e", "d"]
    rows, _ = select(HISTORY, POOL, "std", "1-3", 1)  # at least one row per selected example
    assert [r["id"] for r in rows] == ["d", "b", "e"]
    assert [t["id"] for t in table] == ["d", "b", "e", "a", "c"]
    assert table[0]["score"] == pytest.approx(0.471405, abs=1e-6)
    assert table[0]["epochs"] == 3


def test_select_rejects_unknown_ids_and_too_high_ranks():
    with pytest.raises(InputError, match=r"h.json: 2 of 7 history ids are not in the pool, e.g. \['yy', 'zz'\]"):
        select({**HISTORY, "zz": [0.0], "yy": [1.0]}, POOL, "std", "1", 1, origin="h.json")
    with pytest.raises(InputError, match="id 'a' is not a list of accuracies"):
        select({**HISTORY, "a": [1.5]}, POOL, "std", "1", 1)
    with pytest.raises(ValueError, match="rank 9"):
        select(HISTORY, POOL, "std", "9", 9)


def test_cli_fixed_interface_on_a_normalised_pool(tmp_path):
    (tmp_path / "h.json").write_text(json.dumps(HISTORY))
    write_rows(tmp_path / "pool.jsonl", POOL)
    result = run_module(
        tmp_path,
        "pipelines.select",
        "--history",
        "h.json",
        "--pool",
        "pool.jsonl",
        "--method",
        "std",
        "--ranks",
        "1,2",
        "--repeat",
        "4",
        "--out",
        "x.parquet",
    )
    assert result.returncode == 0, result.stderr
    assert list(pd.read_parquet(tmp_path / "x.parquet")["id"]) == ["d", "b", "d", "b"]


def test_cli_on_the_verl_pool(tmp_path, shared_data):
    pool = shared_data / "pools" / "dsr_sub.parquet"
    history = {"0": [0.0, 0.125, 1.0], "5": [0.5, 0.5, 0.5], "7": [0.0, 0.0, 0.25]}
    (tmp_path / "h.json").write_text(json.dumps(history))
    result = run_module(
        tmp_path,
        "pipelines.select",
        "--history",
        "h.json",
        "--pool",
        str(pool),
        "--method",
        "std",
        "--ranks",
        "1,3",
        "--repeat",
        "3",
        "--out",
        "x.jsonl",
    )
    assert result.returncode == 0, result.stderr
    rows = read_rows(tmp_path / "x.jsonl")
    assert [r["id"] for r in rows] == ["0", "5", "0"]
    assert rows[0]["answer"] == "\\frac{3}{7}" and "monkey" in rows[0]["problem"]


def _official_lim(data: dict) -> dict:
    """The official code's lim score, written out literally as an independent reference."""
    min_length = min(len(v) for v in data.values() if v)
    means = [sum(v[i] for v in data.values()) / len(data) for i in range(min_length)]
    denominator = sum((1 - m) ** 2 for m in means)
    return {k: 1 - sum((v[i] - means[i]) ** 2 for i in range(min_length)) / denominator for k, v in data.items()}


def test_lim_matches_the_official_formula_on_unequal_lengths():
    history = {"a": [0.0, 1.0], "b": [0.5, 0.5], "c": [1.0, 1.0, 1.0], "d": [0.25, 0.75, 0.0, 0.5]}
    expected = _official_lim(history)
    ranking = rank(history, "lim")
    assert dict(ranking) == pytest.approx(expected)
    assert [k for k, _ in ranking] == sorted(expected, key=lambda k: (-round(expected[k], 12), k))
    # by hand: common epochs 2, pool means (0.4375, 0.8125)
    assert METHODS["lim"](history, 0)["b"] == pytest.approx(1 - (0.0625**2 + 0.3125**2) / (0.5625**2 + 0.1875**2))


def test_random_is_seeded_and_ignores_the_history():
    first = [k for k, _ in rank(HISTORY, "random", seed=1)]
    assert first == [k for k, _ in rank(HISTORY, "random", seed=1)]
    assert first == [k for k, _ in rank({k: [] for k in HISTORY}, "random", seed=1)]
    assert {tuple(k for k, _ in rank(HISTORY, "random", seed=s)) for s in range(5)} != {tuple(first)}


def test_pass_rate_prefers_rates_nearest_one_half_and_empty_histories_rank_last():
    history = {"d": [], "c": [0.875, 0.0], "b": [0.125], "a": [0.5], "e": [0.0]}
    assert [k for k, _ in rank(history, "pass_rate")] == ["a", "b", "c", "e", "d"]
    assert [k for k, _ in rank(history, "std")][-1] == "d"


def test_pool_rows_without_gold_answer_cannot_be_selected():
    pool = [*POOL[:-1], {**POOL[-1], "answer": ""}]  # "e" has no gold answer
    rows, table = select(HISTORY, pool, "std", "1-4", 4)
    assert "e" not in {r["id"] for r in rows} | {t["id"] for t in table}


def _official_style_history(pool_ids: list[str]) -> dict:
    rng = np.random.default_rng(0)
    return {i: [int(x) / 8 for x in rng.integers(0, 9, size=int(rng.integers(1, 8)))] for i in pool_ids}


def test_must_show_cli_on_dsr_sub_with_an_official_format_history(tmp_path, shared_data):
    pool_path = shared_data / "pools" / "dsr_sub.parquet"
    pool = {row["id"]: row for row in read_rows(pool_path)}
    history = _official_style_history(list(pool))  # every index, histories of unequal length
    (tmp_path / "acc_step_500.json").write_text(json.dumps(history))
    args = ["--history", "acc_step_500.json", "--pool", str(pool_path), "--method", "std", "--ranks", "1,2,13"]
    result = run_module(tmp_path, "pipelines.select", *args, "--repeat", "1", "--out", "x.jsonl")
    assert result.returncode == 0, result.stderr
    # reference ranking as the official code computes it (numpy std), the empty-answer row excluded
    scored = sorted((-round(float(np.std(v)), 12), int(k)) for k, v in history.items() if pool[k]["answer"])
    expected = [str(scored[0][1]), str(scored[1][1]), str(scored[12][1])]
    rows = read_rows(tmp_path / "x.jsonl")
    assert [r["id"] for r in rows] == expected
    assert [r["answer"] for r in rows] == [pool[i]["answer"] for i in expected] and all(r["answer"] for r in rows)
