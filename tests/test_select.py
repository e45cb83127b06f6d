import json

import numpy as np
import pandas as pd
import pytest
from conftest import run_module

from rlvr.errors import InputError
from rlvr.files import read_rows, write_rows
from rlvr.selection import METHODS, parse_ranks, rank, select

HISTORY = {
    "a": [0.0, 0.0, 0.0],  # never solved: std 0
    "b": [0.0, 0.5, 1.0],  # learned gradually: second
    "c": [1.0, 1.0, 1.0],  # always solved: std 0
    "d": [0.0, 1.0, 1.0],  # learned at once: highest std
    "e": [0.25, 0.5, 0.25],
}
POOL = [{"id": k, "problem": f"problem {k}", "answer": str(i), "source": "t"} for i, k in enumerate(HISTORY)]


def test_rank_by_historical_variance_with_ties_in_history_order():
    assert [example_id for example_id, _ in rank(HISTORY)] == ["d", "b", "e", "a", "c"]
    reordered = {key: HISTORY[key] for key in ("c", "e", "b", "a", "d")}
    assert [example_id for example_id, _ in rank(reordered)] == ["d", "b", "e", "c", "a"]  # a, c tie: file order


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
    assert [k for k, _ in ranking] == sorted(expected, key=lambda k: -expected[k])  # stable: ties in file order
    # by hand: common epochs 2, pool means (0.4375, 0.8125)
    assert METHODS["lim"](history, 0)["b"] == pytest.approx(1 - (0.0625**2 + 0.3125**2) / (0.5625**2 + 0.1875**2))


def test_random_is_seeded_and_ignores_the_history():
    first = [k for k, _ in rank(HISTORY, "random", seed=1)]
    assert first == [k for k, _ in rank(HISTORY, "random", seed=1)]
    assert first == [k for k, _ in rank({k: [] for k in HISTORY}, "random", seed=1)]
    assert {tuple(k for k, _ in rank(HISTORY, "random", seed=s)) for s in range(5)} != {tuple(first)}


def test_pass_rate_prefers_rates_nearest_one_half_and_empty_histories_rank_last():
    history = {"d": [], "c": [0.875, 0.0], "b": [0.125], "a": [0.5], "e": [0.0]}
    assert [k for k, _ in rank(history, "pass_rate")] == ["a", "c", "b", "e", "d"]  # c and b tie: file order
    assert [k for k, _ in rank(history, "std")][-1] == "d"


def test_examples_without_gold_answer_keep_their_rank_but_cannot_be_selected():
    pool = [*POOL[:-1], {**POOL[-1], "answer": ""}]  # "e" (rank 3) has no gold answer
    rows, table = select(HISTORY, pool, "std", "1,2,4", 3)
    assert [r["id"] for r in rows] == ["d", "b", "a"]
    assert [(t["rank"], t["id"], t["trainable"]) for t in table][2] == (3, "e", False)
    with pytest.raises(ValueError, match="rank 3 is example e, which has no gold answer"):
        select(HISTORY, pool, "std", "1-3", 3)
    # the data stage leaves such rows out of the pool file and names them in its manifest
    rows, table = select(HISTORY, POOL[:-1], "std", "4", 1, excluded=["e"])
    assert [r["id"] for r in rows] == ["a"] and table[2]["id"] == "e"


def test_official_ranking_on_a_hand_made_history_with_ties_and_an_empty_gold():
    """Ranks as the official script gives them: numpy std, unrounded, stable sort (ties in file order)."""
    history = {
        "7": [0.0, 0.5, 1.0],  # std 0.408
        "3": [0.125, 0.875],  # std 0.375 ...
        "265": [0.25, 1.0],  # ... the same: after 3 (file order), and without a gold answer
        "9": [0.875, 0.125],  # ... the same again: after 265
        "1": [1.0, 1.0, 1.0],  # std 0, tied with 4 and 2 below, in this order
        "4": [0.5],
        "2": [0.0, 0.0],
        "8": [],  # empty: last
    }
    pool = [{"id": k, "problem": f"p{k}", "answer": str(k), "source": "t"} for k in history if k != "265"]
    ranking = rank(history)
    assert [k for k, _ in ranking] == ["7", "3", "265", "9", "1", "4", "2", "8"]
    assert [score for _, score in ranking[:4]] == [float(np.std(history[k])) for k in ("7", "3", "265", "9")]
    rows, _ = select(history, pool, "std", "1,4,7", 3, excluded=["265"])
    assert [r["id"] for r in rows] == ["7", "9", "2"]
    with pytest.raises(ValueError, match="rank 3 is example 265, which has no gold answer: it cannot be trained on"):
        select(history, pool, "std", "3", 1, excluded=["265"])


def _official_style_history(pool_ids: list[str]) -> dict:
    rng = np.random.default_rng(0)
    return {i: [int(x) / 8 for x in rng.integers(0, 9, size=int(rng.integers(1, 8)))] for i in pool_ids}


def _official_ranking(history: dict) -> list[str]:
    """The official script's order, written out literally: numpy std, stable sort by descending score."""
    scores = [(key, float(np.std(values))) for key, values in history.items()]
    return [key for key, _ in sorted(scores, key=lambda item: item[1], reverse=True)]


def test_must_show_ranks_1_13_1207_1208_1209_of_dsr_sub_from_an_official_format_history(tmp_path, shared_data):
    """Every rank 1..1209 is the official one (265, without gold, keeps its place); the lowest ranks can be
    trained on; asking for 265's rank is a one-line error naming it."""
    pool_path = shared_data / "pools" / "dsr_sub.parquet"
    pool = {row["id"]: row for row in read_rows(pool_path)}  # 1,209 rows, 265's answer empty
    history = _official_style_history(list(pool))  # every index, 1-7 epochs, many ties
    (tmp_path / "acc_step_500.json").write_text(json.dumps(history))
    official = _official_ranking(history)
    _, table = select(history, list(pool.values()), "std", "1", 1)
    assert [t["id"] for t in table] == official and len(official) == 1209
    ranks = [1, 13, 1207, 1208, 1209]
    expected = [official[r - 1] for r in ranks if official[r - 1] != "265"]
    args = ["--history", "acc_step_500.json", "--pool", str(pool_path), "--method", "std"]
    chosen = ",".join(str(r) for r in ranks if official[r - 1] != "265")
    result = run_module(tmp_path, "pipelines.select", *args, "--ranks", chosen, "--repeat", "1", "--out", "x.jsonl")
    assert result.returncode == 0, result.stderr
    rows = read_rows(tmp_path / "x.jsonl")
    assert [r["id"] for r in rows] == expected and all(r["answer"] == pool[r["id"]]["answer"] for r in rows)
    print("ranks", chosen, "->", [(r["id"], r["answer"]) for r in rows])
    rank_265 = official.index("265") + 1
    refused = run_module(tmp_path, "pipelines.select", *args, "--ranks", str(rank_265), "--out", "y.jsonl")
    assert refused.returncode == 2 and not (tmp_path / "y.jsonl").exists()
    message = f"rank {rank_265} is example 265, which has no gold answer: it cannot be trained on"
    assert refused.stderr.strip() == f"error: {message}"
