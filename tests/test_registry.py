import json

import pytest

from rlvr.config import DataConfig, InputError
from rlvr.data import read_json, read_rows
from rlvr.registry import BENCHMARKS, load, run_data

EXPECTED_ROWS = {
    "math500": 500,
    "aime24": 30,
    "aime25": 30,
    "amc23": 40,
    "minerva_math": 272,
    "olympiadbench": 675,
    "gsm8k": 1319,
}


@pytest.mark.parametrize(("name", "rows"), EXPECTED_ROWS.items())
def test_each_benchmark_loads_with_a_gold_answer_on_every_row(shared_data, name, rows):
    loaded = load(name, local_dir=shared_data)
    assert len(loaded.rows) == rows and loaded.missing_answer == 0
    assert all(row["answer"].strip() and row["problem"].strip() for row in loaded.rows)
    assert len({row["id"] for row in loaded.rows}) == rows
    assert loaded.origin.endswith(f"{name}.jsonl")


def test_gold_answers_come_from_each_benchmarks_own_field(shared_data):
    first = {name: load(name, local_dir=shared_data).rows[0] for name in EXPECTED_ROWS}
    assert first["gsm8k"]["answer"] == "18"  # the text after ####
    assert "####" not in first["gsm8k"]["answer"]
    assert "\\boxed" not in first["minerva_math"]["answer"]  # last \boxed{} of the solution
    assert "$" not in first["olympiadbench"]["answer"]  # final_answer[0], $ stripped
    assert first["math500"]["subject"] and first["math500"]["level"]


def test_dsr_sub_pool_ids_are_the_verl_index(shared_data):
    loaded = load("dsr_sub", local_dir=shared_data)
    # one DSR-sub row (index 265) has an empty ground truth: counted and named, not silently dropped
    assert len(loaded.rows) == 1208 and loaded.missing_answer == 1 and loaded.excluded_ids == ["265"]
    assert [row["id"] for row in loaded.rows[:3]] == ["0", "1", "2"]
    assert loaded.rows[0]["answer"] == "\\frac{3}{7}"


def test_rows_without_gold_answer_are_counted_not_hidden(tmp_path, caplog):
    path = tmp_path / "gsm.jsonl"
    rows = [{"question": "q1", "answer": "work\n#### 1,234"}, {"question": "q2", "answer": "no marker"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    loaded = load("gsm8k", file=path)
    assert [row["answer"] for row in loaded.rows] == ["1234"]
    assert loaded.missing_answer == 1
    assert "1 of 2 rows have no gold answer" in caplog.text


def test_arc_is_multiple_choice_with_a_letter_answer(tmp_path):
    path = tmp_path / "arc.jsonl"
    raw = {
        "id": "q1",
        "question": "Which is a gas?",
        "choices": {"label": ["A", "B"], "text": ["ice", "steam"]},
        "answerKey": "B",
    }
    path.write_text(json.dumps(raw) + "\n")
    (row,) = load("arc_challenge", file=path).rows
    assert row["answer"] == "B" and row["problem"] == "Which is a gas?\nA. ice\nB. steam"
    assert row["choices"]["label"] == ["A", "B"]


def test_unknown_dataset_and_offline_hub_give_one_clear_error(tmp_path, monkeypatch):
    with pytest.raises(InputError, match="unknown dataset 'mathh500'"):
        load("mathh500")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError, match="math500: cannot load HuggingFaceH4/MATH-500 from the Hub"):
        load("math500", local_dir=tmp_path)  # no local copy there


def test_data_stage_materialises_registry_pool_test_and_benchmarks(tmp_path, shared_data):
    config = DataConfig(
        pool="dsr_sub", test="math500", benchmarks=["aime24", "amc23"], local_dir=str(shared_data), pool_size=50
    )
    manifest = run_data(
        config, tmp_path / "pool.jsonl", tmp_path / "test.jsonl", tmp_path / "bench", tmp_path / "manifest.json"
    )
    assert {k: v["rows"] for k, v in manifest.items()} == {"pool": 50, "test": 500, "aime24": 30, "amc23": 40}
    assert manifest["pool"]["dataset"] == "dsr_sub" and manifest["test"]["origin"].endswith("math500.jsonl")
    assert len(read_rows(tmp_path / "bench" / "aime24.jsonl")) == 30
    assert read_json(tmp_path / "manifest.json") == manifest


def test_every_benchmark_has_a_local_file_and_hub_source():
    from rlvr.registry import REGISTRY

    assert set(EXPECTED_ROWS) | {"arc_easy", "arc_challenge"} == set(BENCHMARKS)
    assert all(REGISTRY[name].hub and REGISTRY[name].local for name in REGISTRY)
