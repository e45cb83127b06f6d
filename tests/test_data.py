import pytest

from rlvr.config import DataConfig, InputError
from rlvr.data import read_rows, run_data, write_rows


def test_round_trip_jsonl_and_parquet(tmp_path):
    rows = [{"id": "1", "problem": "1+1?", "answer": "2", "source": "t"}]
    for name in ("a.jsonl", "a.parquet"):
        write_rows(tmp_path / name, rows)
        assert read_rows(tmp_path / name) == rows


def test_generator_stage_writes_disjoint_files(tmp_path):
    sizes = run_data(DataConfig(pool_size=4, test_size=6), tmp_path / "p.jsonl", tmp_path / "t.jsonl")
    assert sizes == {"pool_size": 4, "test_size": 6}
    assert len(read_rows(tmp_path / "t.jsonl")) == 6


def test_missing_and_malformed_files_are_named(tmp_path):
    with pytest.raises(InputError, match="nothere.jsonl"):
        read_rows(tmp_path / "nothere.jsonl")
    (tmp_path / "bad.jsonl").write_text('{"problem": "x", "answer": "1"}\n{oops\n')
    with pytest.raises(InputError, match="bad.jsonl:2"):
        read_rows(tmp_path / "bad.jsonl")
    (tmp_path / "noanswer.jsonl").write_text('{"problem": "x"}\n')
    with pytest.raises(InputError, match="row 0"):
        read_rows(tmp_path / "noanswer.jsonl")


def test_file_source_needs_both_files():
    with pytest.raises(ValueError, match="pool_file"):
        DataConfig(source="file", pool_file="x.jsonl")


def test_math500_jsonl(shared_data):
    rows = read_rows(shared_data / "benchmarks" / "math500.jsonl")
    assert len(rows) == 500 and all(r["answer"] for r in rows)
    assert rows[0]["id"] == "test/precalculus/807.json" and "subject" in rows[0]


def test_verl_parquet_pool(shared_data):
    rows = read_rows(shared_data / "pools" / "dsr_sub.parquet")
    assert len(rows) == 1209 and len({r["id"] for r in rows}) == 1209
    assert rows[0]["id"] == "0" and rows[0]["answer"] == "\\frac{3}{7}"
    assert "output the final answer" not in rows[0]["problem"]
