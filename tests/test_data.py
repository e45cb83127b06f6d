"""Datasets: files, the catalogue (gold answers from each source's own field), the generated suites, the data
stage (pool, test set, benchmarks of the registry or the user's own, manifest)."""

import ast
import itertools
import json
import operator
import re

import pytest

from rlvr.config import BenchmarkFile, DataConfig, Paths, parse_params
from rlvr.datasets import BENCHMARKS, REGISTRY, load, load_own
from rlvr.errors import ConfigError, InputError
from rlvr.files import read_json, read_rows, write_rows
from rlvr.generator import SUITES, generate, suite
from rlvr.rewards import accuracy_reward
from rlvr.stages.data import materialise

EXPECTED_ROWS = {
    "math500": 500,
    "aime24": 30,
    "aime25": 30,
    "amc23": 40,
    "minerva_math": 272,
    "olympiadbench": 675,
    "gsm8k": 1319,
}


def _paths(tmp_path) -> Paths:
    return Paths(pool=str(tmp_path / "p.jsonl"), test=str(tmp_path / "t.jsonl"), benchmarks_dir=str(tmp_path / "b"),
                 data_manifest=str(tmp_path / "m.json"))  # fmt: skip


def test_round_trip_jsonl_and_parquet(tmp_path):
    rows = [{"id": "1", "problem": "1+1?", "answer": "2", "source": "t"}]
    for name in ("a.jsonl", "a.parquet"):
        write_rows(tmp_path / name, rows)
        assert read_rows(tmp_path / name) == rows


def test_missing_and_malformed_files_are_named(tmp_path):
    with pytest.raises(InputError, match="nothere.jsonl"):
        read_rows(tmp_path / "nothere.jsonl")
    (tmp_path / "bad.jsonl").write_text('{"problem": "x", "answer": "1"}\n{oops\n')
    with pytest.raises(InputError, match="bad.jsonl:2"):
        read_rows(tmp_path / "bad.jsonl")
    (tmp_path / "noanswer.jsonl").write_text('{"problem": "x"}\n')
    with pytest.raises(InputError, match="row 0"):
        read_rows(tmp_path / "noanswer.jsonl")


def test_generator_stage_writes_disjoint_files_and_a_manifest(tmp_path):
    manifest = materialise(DataConfig(pool_size=4, test_size=6), _paths(tmp_path))
    assert (manifest["pool"]["rows"], manifest["test"]["rows"]) == (4, 6)
    assert manifest["test"]["missing_answer"] == 0 and len(manifest["test"]["sha256"]) == 64
    assert read_json(tmp_path / "m.json") == manifest
    assert len(read_rows(tmp_path / "t.jsonl")) == 6
    assert (tmp_path / "b").is_dir()


def test_data_config_names_the_bad_field():
    with pytest.raises(ConfigError, match="data.pool_file is required"):
        parse_params({"data": {"pool": "file", "test_size": 4}})
    with pytest.raises(ConfigError, match="data.test: Input should be"):
        parse_params({"data": {"test": "math5000"}})
    with pytest.raises(ConfigError, match="data.benchmarks.0: Input should be"):
        parse_params({"data": {"benchmarks": ["dsr_sub"]}})
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
    assert "\\boxed" not in first["minerva_math"]["answer"]  # last \boxed{} of the solution
    assert "$" not in first["olympiadbench"]["answer"]  # final_answer[0], $ stripped
    assert first["math500"]["subject"] and first["math500"]["level"]


def test_dsr_sub_problems_give_the_official_training_prompts_byte_for_byte(shared_data):
    """The paper's training prompt is the problem, a space and the step-by-step instruction: built from our rows
    it equals every official prompt, the 39 whose problem ends in a newline or space included."""
    import pandas as pd

    from rlvr.config import ModelConfig
    from rlvr.templates import get_template

    official = pd.read_parquet(shared_data / "pools" / "dsr_sub.parquet")
    rows = read_rows(shared_data / "pools" / "dsr_sub.parquet")
    template = get_template("paper-train")
    built = [template.messages(row["problem"], ModelConfig()) for row in rows]
    assert built == [list(prompt) for prompt in official["prompt"]]
    assert sum(row["problem"] != row["problem"].strip() for row in rows) == 39


def test_dsr_sub_pool_ids_are_the_verl_index(shared_data):
    loaded = load("dsr_sub", local_dir=shared_data)
    # one DSR-sub row (index 265) has an empty ground truth: counted and named, not silently dropped
    assert len(loaded.rows) == 1208 and loaded.missing_answer == 1 and loaded.excluded_ids == ["265"]
    assert [row["id"] for row in loaded.rows[:3]] == ["0", "1", "2"]


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
    raw = {"id": "q1", "question": "Which is a gas?", "choices": {"label": ["A", "B"], "text": ["ice", "steam"]},
           "answerKey": "B"}  # fmt: skip
    path.write_text(json.dumps(raw) + "\n")
    (row,) = load("arc_challenge", file=path).rows
    assert row["answer"] == "B" and row["problem"] == "Which is a gas?\nA. ice\nB. steam"


def test_unknown_dataset_and_offline_hub_give_one_clear_error(tmp_path, monkeypatch):
    with pytest.raises(InputError, match="unknown dataset 'mathh500'"):
        load("mathh500")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError, match="math500: cannot load HuggingFaceH4/MATH-500 from the Hub"):
        load("math500", local_dir=tmp_path)  # no local copy there


def test_data_stage_materialises_registry_pool_test_and_benchmarks(tmp_path, shared_data):
    config = DataConfig(pool="dsr_sub", test="math500", benchmarks=["aime24", "amc23"], local_dir=str(shared_data),
                        pool_size=50)  # fmt: skip
    manifest = materialise(config, _paths(tmp_path))
    assert {k: v["rows"] for k, v in manifest.items()} == {"pool": 50, "test": 500, "aime24": 30, "amc23": 40}
    assert manifest["pool"]["dataset"] == "dsr_sub" and manifest["test"]["origin"].endswith("math500.jsonl")
    assert len(read_rows(tmp_path / "b" / "aime24.jsonl")) == 30


def test_benchmarks_of_the_users_own_follow_the_registrys_rules(tmp_path):
    own = tmp_path / "mine.jsonl"
    own.write_text('{"id": "a", "question": "2+2?", "answer": "4"}\n{"id": "b", "problem": "3+3?", "answer": ""}\n')
    config = DataConfig(pool_size=4, test_size=4, benchmarks=["arith1", {"name": "mine", "file": str(own)}])
    manifest = materialise(config, _paths(tmp_path))
    assert manifest["mine"]["rows"] == 1 and manifest["mine"]["missing_answer"] == 1
    assert manifest["mine"]["excluded_ids"] == ["b"] and manifest["arith1"]["rows"] == 128
    assert read_rows(tmp_path / "b" / "mine.jsonl")[0]["problem"] == "2+2?"
    with pytest.raises(ConfigError, match="data.benchmarks: a name appears twice"):
        parse_params({"data": {"benchmarks": ["arith1", {"name": "arith1", "file": "x.jsonl"}]}})
    (tmp_path / "nofield.jsonl").write_text('{"question": "x"}\n')
    with pytest.raises(InputError, match="nofield.jsonl row 0: no field 'answer' \\(its fields: question\\)"):
        materialise(
            DataConfig(pool_size=2, test_size=2, benchmarks=[{"name": "bad", "file": str(tmp_path / "nofield.jsonl")}]),
            _paths(tmp_path),
        )


def _jsonl(path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def test_a_users_own_files_in_public_harness_schemas_are_described_not_guessed(tmp_path):
    """Files written by hand in the schemas of public evaluation sets: each refused, in one line naming the file, the
    row and the setting that reads it, until the entry says which fields make the problem and the answer and how to
    clean it; then the rows read as the harness means them."""
    # SVAMP: capitalised fields, the problem in Body + Question, float answers
    svamp = _jsonl(tmp_path / "svamp.jsonl", [
        {"ID": "chal-1", "Body": "Jack had 8 pens and Mary had 5 pens.", "Question": "How many pens do they have?",
         "Equation": "( 8.0 + 5.0 )", "Answer": 13.0, "Type": "Addition"}])  # fmt: skip
    # GSM8K: the answer field holds the worked solution, "#### 72" last
    solution = "In May she sold 48/2 = <<48/2=24>>24 clips.\nAltogether 48+24 = <<48+24=72>>72 clips.\n#### 72"
    gsm8k = _jsonl(tmp_path / "gsm8k.jsonl", [
        {"question": "Natalia sold 48 clips in April and half as many in May. How many did she sell?",
         "answer": solution}])  # fmt: skip
    asdiv = _jsonl(tmp_path / "asdiv.jsonl", [  # ASDiv: body + question, the answer with its unit
        {"id": "nluds-0001", "body": "Seven red apples and two green apples are in the basket.",
         "question": "How many apples are in the basket?", "answer": "9 (apples)"}])  # fmt: skip
    bigbench = _jsonl(tmp_path / "bigbench.jsonl", [{"input": "What is 12 times 12?", "target": "144"}])
    refused = {
        svamp: "row 0: no field 'question' (its fields: ID, Body, Question, Equation, Answer, Type): say which make "
        "the problem and which holds the answer",
        gsm8k: f"row 0: the answer {solution[:60]!r} is a worked solution ending in #### ANSWER: say clean: "
        "[after_hashes] (or format: gsm8k)",
        asdiv: "asdiv.jsonl: rows hold a 'body' field the problem leaves out (problem: ['question']); to include it, "
        "say problem: [body, question]",
        bigbench: "row 0: no field 'question' (its fields: input, target)",
    }
    for file, line in refused.items():
        with pytest.raises(InputError) as error:
            load_own(BenchmarkFile(name="mine", file=file), "mine")
        assert str(error.value).startswith(file) and line in str(error.value), str(error.value)
    with pytest.raises(
        InputError, match="the answer '9 \\(apples\\)' is a number with a unit in parentheses: say clean"
    ):
        load_own(BenchmarkFile(name="mine", file=asdiv, problem=["body", "question"]), "mine")
    described = {
        "svamp": (dict(file=svamp, problem=["Body", "Question"], answer="Answer", clean=["integer_float"]),
                  "Jack had 8 pens and Mary had 5 pens. How many pens do they have?", "13"),
        "gsm8k": (dict(file=gsm8k, format="gsm8k"), "Natalia sold 48 clips in April and half as many in May. How many "
                  "did she sell?", "72"),
        "gsm8k-rule": (dict(file=gsm8k, clean=["after_hashes"]), None, "72"),
        "asdiv": (dict(file=asdiv, problem=["body", "question"], clean=["drop_unit"]),
                  "Seven red apples and two green apples are in the basket. How many apples are in the basket?", "9"),
        "bigbench": (dict(file=bigbench, problem="input", answer="target"), "What is 12 times 12?", "144"),
    }  # fmt: skip
    for name, (entry, problem, answer) in described.items():
        [row] = load_own(BenchmarkFile(name=name, **entry), name).rows
        assert row["answer"] == answer and (problem is None or row["problem"] == problem), (name, row)
    # the same description through the params and the data stage, for a benchmark and for the pool
    config = DataConfig(pool="file", pool_file={"file": asdiv, "problem": ["body", "question"], "clean": ["drop_unit"]},
                        test_size=4, benchmarks=[{"name": "svamp", **described["svamp"][0]}])  # fmt: skip
    manifest = materialise(config, _paths(tmp_path))
    assert manifest["svamp"]["rows"] == 1 and read_rows(tmp_path / "b" / "svamp.jsonl")[0]["answer"] == "13"
    assert read_rows(tmp_path / "p.jsonl")[0]["answer"] == "9"
    with pytest.raises(ConfigError, match="format borrows a registry dataset's fields and rules"):
        parse_params({"data": {"benchmarks": [{"name": "g", "file": gsm8k, "format": "gsm8k", "answer": "answer"}]}})


def test_every_catalogue_entry_has_a_source_and_the_config_accepts_exactly_its_benchmarks():
    from typing import get_args

    from rlvr.config import BenchmarkName

    assert set(EXPECTED_ROWS) | {"arc_easy", "arc_challenge"} | set(SUITES) == set(BENCHMARKS)
    assert set(get_args(BenchmarkName)) == set(BENCHMARKS)
    assert all((spec.hub and spec.local) or spec.generated for spec in REGISTRY.values())


# --- the generator: pool and test set, and the held-out suites -----------------------------------------------

_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.FloorDiv: operator.floordiv}


def _evaluate(expression: str) -> int:
    """The value of an arithmetic expression, computed independently of the generator."""

    def walk(node: ast.AST) -> int:
        if isinstance(node, ast.Constant):
            return node.value
        assert isinstance(node, ast.BinOp), ast.dump(node)
        return _OPERATORS[type(node.op)](walk(node.left), walk(node.right))

    return walk(ast.parse(expression, mode="eval").body)


def test_pool_and_test_are_deterministic_disjoint_with_unique_ids():
    assert generate(20, 30, seed=3) == generate(20, 30, seed=3)
    assert generate(20, 30, seed=3) != generate(20, 30, seed=4)
    pool, test = generate(50, 200, seed=0)
    assert not {r["problem"] for r in pool} & {r["problem"] for r in test}
    ids = [r["id"] for r in pool + test]
    assert len(ids) == len(set(ids))
    with pytest.raises(ValueError, match="pool_size"):
        generate(-1, 5, seed=0)


@pytest.mark.parametrize("name", SUITES)
def test_each_suite_is_deterministic_sized_and_its_answers_recompute(name):
    rows = suite(name, 128, seed=1)
    assert rows == suite(name, 128, seed=1) and rows != suite(name, 128, seed=2)
    assert len(rows) == 128 and len({r["problem"] for r in rows}) == 128
    for row in rows:
        assert int(row["answer"]) == _evaluate(row["expression"]) >= 0
        # the expression's numbers are the problem's (a conversion factor may be implied by the units)
        numbers = set(re.findall(r"\d+", row["problem"]))
        assert set(re.findall(r"\d+", row["expression"])) - numbers <= {"100", "60", "1000", "12", "24", "7", "3"}
        assert accuracy_reward([f"\\boxed{{{row['answer']}}}"], [row["answer"]]) == [1.0]


def test_suites_are_disjoint_from_each_other_from_the_pool_and_validation_from_test():
    pool, test = generate(64, 512, seed=0)
    texts = {name: {r["problem"] for r in suite(name, 300, seed=1)} for name in SUITES}
    training = {r["problem"] for r in pool + test}
    for a, b in itertools.combinations(texts, 2):
        assert not texts[a] & texts[b], (a, b)
    assert not training & set().union(*texts.values())
    for name in SUITES:
        validation = {r["problem"] for r in suite(name, 128, seed=1, split="validation")}
        assert not validation & {r["problem"] for r in suite(name, 300, seed=7)}, name
