import re

import pytest
from conftest import require

from rlvr.report import accuracy_table, load_reference, paper_table, post_saturation, reference_for
from rlvr.runs import RunResult, evals_from_rows, paper_setting

ORDER = ["math500", "aime24", "amc23", "minerva_math", "olympiadbench", "aime25", "average"]


def test_reference_numbers_match_the_paper_text():
    paper = require("docs/PAPER.md").read_text()
    reference = load_reference()
    lines = re.findall(r"^- (base|DSR-sub|\{pi_1\}|\{pi_13\}|\{pi_1, pi_13\}) ([\d. /]+)$", paper, re.M)
    assert len(lines) == 5
    for setting, numbers in lines:
        values = reference_for(
            "Qwen/Qwen2.5-Math-1.5B", "dsr_sub" if setting == "DSR-sub" else setting, "grpo", reference
        )
        assert [values[k] for k in ORDER] == [float(x) for x in numbers.split(" / ")]


def _run(name, model="Qwen/Qwen2.5-Math-1.5B", setting="{pi_1}", math500=(0.36, 0.70, 0.72), train=None):
    rows = [
        {"step": s, **{f"{b}.accuracy_{mode}": v for b in ("test", "average") for mode in ("strict", "official")}}
        for s, v in zip((0, 20, 40), math500, strict=True)
    ]
    evals = evals_from_rows(rows, test_dataset="math500")
    return RunResult(name, model, "446", "accuracy", setting=setting, evals=evals, train_accuracy=train or {})


def test_tables_use_best_checkpoint_and_base_rows():
    runs = [_run("a"), _run("b", math500=(0.36, 0.74, 0.71))]
    header, rows = accuracy_table(runs, "strict", lambda r: r.best_step("strict"))
    assert header == ["run", "step", "math500", "average"]
    assert rows == [
        ["base · Qwen2.5-Math-1.5B", "0", "36.0", "36.0"],
        ["a", "40", "72.0", "72.0"],
        ["b", "20", "74.0", "74.0"],
    ]
    _, rows = accuracy_table(runs, "strict", lambda r: 99 if 99 in r.evals else None)
    assert rows[1] == ["a", "–", "–", "–"]  # the chosen step was not evaluated: shown, not a crash


def test_difference_from_the_paper_only_where_a_setting_matches():
    runs = [_run("a"), _run("embedded", model="embedded", setting=None)]
    _, rows = paper_table(runs, load_reference())  # graded like the paper: official
    assert ["a", "base", "math500", "36.0", "36.0", "+0.0"] in rows
    assert ["a", "{pi_1}", "math500", "72.0", "72.8", "-0.8"] in rows
    assert all(row[0] == "a" for row in rows)
    assert paper_setting("dsr_sub", "std", "1,13", "accuracy") == "{pi_1, pi_13}"
    assert paper_setting("dsr_sub", "std", "1", "accuracy_deepscaler") == "{pi_1}"
    assert paper_setting("generator", "std", "1", "accuracy") is None


def test_post_saturation_gain():
    run = _run("a", train={10: 0.5, 20: 1.0, 30: 1.0})
    assert post_saturation(run, "strict") == (20, pytest.approx(0.72 - 0.70))
    assert post_saturation(_run("b", train={10: 0.5}), "strict") == (None, None)
