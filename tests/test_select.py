import json

import pandas as pd
import pytest
from conftest import run_module

from rlvr.config import InputError
from rlvr.data import read_rows, write_rows
from rlvr.select import parse_ranks, rank, select

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
    assert [t["id"] for t in table] == ["d", "b", "e", "a", "c"]
    assert table[0]["score"] == pytest.approx(0.471405, abs=1e-6)
    assert table[0]["epochs"] == 3


def test_select_rejects_unknown_ids_and_too_high_ranks():
    with pytest.raises(InputError, match="1 history ids"):
        select({**HISTORY, "zz": [0.0]}, POOL, "std", "1", 1)
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
