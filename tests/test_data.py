import pytest

from rlvr.config import DataConfig, InputError
from rlvr.data import read_json, read_rows, write_rows
from rlvr.registry import run_data


def test_round_trip_jsonl_and_parquet(tmp_path):
    rows = [{"id": "1", "problem": "1+1?", "answer": "2", "source": "t"}]
    for name in ("a.jsonl", "a.parquet"):
        write_rows(tmp_path / name, rows)
        assert read_rows(tmp_path / name) == rows


def test_generator_stage_writes_disjoint_files_and_a_manifest(tmp_path):
    config = DataConfig(pool_size=4, test_size=6)
    manifest = run_data(config, tmp_path / "p.jsonl", tmp_path / "t.jsonl", tmp_path / "b", tmp_path / "m.json")
    assert (manifest["pool"]["rows"], manifest["test"]["rows"]) == (4, 6)
    assert manifest["test"]["missing_answer"] == 0 and len(manifest["test"]["sha256"]) == 64
    assert read_json(tmp_path / "m.json") == manifest
    assert len(read_rows(tmp_path / "t.jsonl")) == 6
    assert (tmp_path / "b").is_dir()


def test_missing_and_malformed_files_are_named(tmp_path):
    with pytest.raises(InputError, match="nothere.jsonl"):
        read_rows(tmp_path / "nothere.jsonl")
    (tmp_path / "bad.jsonl").write_text('{"problem": "x", "answer": "1"}\n{oops\n')
    with pytest.raises(InputError, match="bad.jsonl:2"):
        read_rows(tmp_path / "bad.jsonl")
    (tmp_path / "noanswer.jsonl").write_text('{"problem": "x"}\n')
    with pytest.raises(InputError, match="row 0"):
        read_rows(tmp_path / "noanswer.jsonl")


def test_data_config_names_the_bad_field():
    with pytest.raises(ValueError, match="data.pool_file"):
        DataConfig(pool="file", test_size=4)
    with pytest.raises(ValueError, match="data.test: unknown dataset 'math5000'"):
        DataConfig(pool_size=4, test="math5000")
    with pytest.raises(ValueError, match="data.benchmarks: unknown benchmark"):
        DataConfig(pool_size=4, test_size=4, benchmarks=["dsr_sub"])
    assert DataConfig(test="math500").pool_size == 16  # the generator's default


def test_math500_jsonl(shared_data):
    rows = read_rows(shared_data / "benchmarks" / "math500.jsonl")
    assert len(rows) == 500 and all(r["answer"] for r in rows)
    assert rows[0]["id"] == "test/precalculus/807.json" and "subject" in rows[0]


def test_verl_parquet_pool(shared_data):
    rows = read_rows(shared_data / "pools" / "dsr_sub.parquet")
    assert len(rows) == 1209 and len({r["id"] for r in rows}) == 1209
    assert rows[0]["id"] == "0" and rows[0]["answer"] == "\\frac{3}{7}"
    assert "output the final answer" not in rows[0]["problem"]
