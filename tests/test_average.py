"""The benchmark average: the plain mean over every evaluated benchmark, the held-out test set included once
(under its benchmark's name), and every table and finding naming what it averages. Each benchmark gets its own
accuracy here and the averages are computed by hand, so leaving one benchmark out cannot pass."""

from pathlib import Path

import pytest
from conftest import ROOT

from rlvr.config import load_params
from rlvr.grading import GRADING_MODES
from rlvr.runs import RunResult, evals_from_rows
from rlvr.stages.evaluate import step_row, suite
from rlvr.stages.report.tables import accuracy_table, finding, load_reference, paper_table

EMBEDDED = ["arith1", "units", "word1", "arith2", "word2"]
PAPER_SIX = ["math500", "aime24", "amc23", "minerva_math", "olympiadbench", "aime25"]
ACCURACY = {"arith1": 0.10, "units": 0.20, "word1": 0.35, "arith2": 0.05, "word2": 0.60,
            "math500": 0.40, "aime24": 0.0625, "amc23": 0.25, "minerva_math": 0.125, "olympiadbench": 0.20,
            "aime25": 0.05, "gsm8k": 0.90}  # fmt: skip


def _metrics(accuracy: float, half: float = 0.05) -> dict:
    """One benchmark's metrics as the evaluate stage writes them (the same accuracy in every grading mode)."""
    metrics = {"num_problems": 100, "cut_share": 0.0, "boxed_share": 0.5}
    for mode in GRADING_MODES:
        metrics |= {f"accuracy_{mode}": accuracy, f"accuracy_{mode}_low": max(0.0, accuracy - half),
                    f"accuracy_{mode}_high": accuracy + half}  # fmt: skip
    return metrics


@pytest.mark.parametrize(
    ("params_file", "names", "by_hand"),
    [
        ("params.yaml", EMBEDDED, (0.10 + 0.20 + 0.35 + 0.05 + 0.60) / 5),  # 0.26, arith1 (the test set) in it
        ("configs/paper/qwen25_math_1.5b_pi1.yaml", PAPER_SIX, (0.40 + 0.0625 + 0.25 + 0.125 + 0.20 + 0.05) / 6),
    ],
)
def test_the_average_is_over_every_benchmark_with_the_test_set_once(params_file, names, by_hand):
    params = load_params(ROOT / params_file)
    benchmarks = suite(params)
    assert [b.name for b in benchmarks] == names  # the test set (arith1, math500) once, under its own name
    assert benchmarks[0].dataset == params.data.test and benchmarks[0].path == Path(params.paths.test)
    row = step_row(10, {name: _metrics(ACCURACY[name]) for name in names})
    for mode in GRADING_MODES:
        assert row[f"average.accuracy_{mode}"] == pytest.approx(by_hand)
    half = (0.05**2 * len(names)) ** 0.5 / len(names)  # independent halves in quadrature, over the count
    assert row["average.accuracy_official_high"] - row["average.accuracy_official"] == pytest.approx(half)
    assert row[f"{names[0]}.accuracy_official"] == ACCURACY[names[0]] and "test.accuracy_official" not in row


def test_a_generated_test_set_is_named_test_and_counted_in_the_average():
    params = load_params(ROOT / "configs" / "smoke.yaml")  # data.test: generator; benchmarks arith1, word1
    assert [b.name for b in suite(params)] == ["test", "arith1", "word1"]
    row = step_row(1, {"test": _metrics(0.9), "arith1": _metrics(0.1), "word1": _metrics(0.35)})
    assert row["average.accuracy_strict"] == pytest.approx((0.9 + 0.1 + 0.35) / 3)


def _run(names: list[str]) -> RunResult:
    rows = [step_row(step, {name: _metrics(ACCURACY[name] + 0.1 * step / 10) for name in names}) for step in (0, 10)]
    return RunResult("qwen · 124", "Qwen/Qwen2.5-Math-1.5B", "124", "accuracy", setting="{pi_1}",
                     evals=evals_from_rows(rows), train_accuracy={5: 1.0})  # fmt: skip


def test_the_findings_and_tables_name_what_the_average_averages():
    run = _run(EMBEDDED)
    line = finding(run, "official")
    assert "average of 5 (arith1, units, word1, arith2, word2) 26.0 ± 2.2 → 36.0 ± 2.2 at step 10" in line
    header, rows = accuracy_table([run], "official", lambda r: r.best_step("official"))
    assert header[-1] == "average of 5" and rows[1][-1] == "36.0 ± 2.2"


def test_the_paper_comparison_averages_the_papers_six_benchmarks_whatever_else_ran():
    run = _run([*PAPER_SIX, "gsm8k"])  # a seventh benchmark: in the run's own average, not in the paper's
    assert run.value(0, "average", "accuracy_official") == pytest.approx(
        (sum(ACCURACY[n] for n in PAPER_SIX) + 0.9) / 7
    )
    _, rows = paper_table([run], load_reference())
    average = next(row for row in rows if row[1] == "base" and row[2].startswith("average of 6"))
    six = sum(ACCURACY[n] for n in PAPER_SIX) / 6  # 18.1, against the paper's 17.6
    assert average == ["qwen · 124", "base", "average of 6 (" + ", ".join(PAPER_SIX) + ")", f"{100 * six:.1f}",
                       "17.6", f"{100 * six - 17.6:+.1f}"]  # fmt: skip
    best = next(row for row in rows if row[1] == "{pi_1}" and row[2].startswith("average of 6"))
    assert best[3] == f"{100 * (six + 0.1):.1f}" and best[4] == "35.0"
