"""Report tables, findings and figures from synthetic runs whose numbers are known."""

import re

import pytest
from conftest import require

from rlvr.runs import RunResult, evals_from_rows, paper_setting
from rlvr.stages.report import run_report
from rlvr.stages.report.tables import (
    accuracy_table,
    finding,
    gains_table,
    load_reference,
    modes_table,
    paper_table,
    provenance_text,
    reference_for,
)

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
    """A run with two benchmarks of different accuracies and their average computed by hand (so a table that
    showed one benchmark's value as the average would fail)."""
    gsm8k = (0.50, 0.52, 0.54)
    rows = [
        {
            "step": s,
            **{
                f"{b}.accuracy_{mode}": v
                for b, v in (("math500", m), ("gsm8k", g), ("average", (m + g) / 2))
                for mode in ("strict", "official")
            },
        }  # fmt: skip
        for s, m, g in zip((0, 20, 40), math500, gsm8k, strict=True)
    ]
    return RunResult(name, model, "446", "accuracy", setting=setting, evals=evals_from_rows(rows),
                     train_accuracy=train or {})  # fmt: skip


def test_tables_use_best_checkpoint_and_base_rows():
    runs = [_run("a"), _run("b", math500=(0.36, 0.74, 0.71))]
    header, rows = accuracy_table(runs, "strict", lambda r: r.best_step("strict"))
    assert header == ["run", "step", "math500", "gsm8k", "average of 2"]
    assert rows == [
        ["base · Qwen2.5-Math-1.5B", "0", "36.0 ± 0.0", "50.0 ± 0.0", "43.0 ± 0.0"],
        ["a", "40", "72.0 ± 0.0", "54.0 ± 0.0", "63.0 ± 0.0"],  # (72 + 54) / 2
        ["b", "20", "74.0 ± 0.0", "52.0 ± 0.0", "63.0 ± 0.0"],  # best by the average: 63.0 at 20 > 62.5 at 40
    ]
    _, rows = accuracy_table(runs, "strict", lambda r: 99 if 99 in r.evals else None)
    assert rows[1] == ["a", "–", "–", "–", "–"]  # the chosen step was not evaluated: shown, not a crash


def test_difference_from_the_paper_only_where_a_setting_matches():
    runs = [_run("a"), _run("embedded", model="embedded", setting=None)]
    _, rows = paper_table(runs, load_reference())  # graded like the paper: official
    assert ["a", "base", "math500", "36.0", "36.0", "+0.0"] in rows
    assert ["a", "{pi_1}", "math500", "72.0", "72.8", "-0.8"] in rows
    assert all(row[0] == "a" for row in rows)
    assert paper_setting("dsr_sub", "std", "1,13", "accuracy") == "{pi_1, pi_13}"
    assert paper_setting("dsr_sub", "std", "1", "accuracy_deepscaler") == "{pi_1}"
    assert paper_setting("generator", "std", "1", "accuracy") is None
    assert paper_setting("dsr_sub", "std", "1-1208", "accuracy_deepscaler", whole_pool=True) == "dsr_sub"


def test_post_saturation_gain_to_the_best_and_to_the_last_step():
    run = _run("a", train={10: 0.5, 20: 1.0, 30: 0.875, 40: 1.0})
    post = run.post_saturation("strict")
    assert (post.step, post.stays_from, post.from_step) == (20, 40, 20)  # 0.875 < 0.9 at 30: for good from 40 on
    assert (post.best_step, post.last_step) == (40, 40)
    assert post.gain_to_best == pytest.approx(0.63 - 0.61) and post.gain_to_last == pytest.approx(0.63 - 0.61)
    early = _run("b", math500=(0.36, 0.80, 0.70), train={10: 1.0, 20: 1.0})  # best (20) before the last (40)
    post = early.post_saturation("strict")
    assert post.from_step == 0 and post.best_step == 20 and post.last_step == 40
    assert post.gain_to_best == pytest.approx(0.66 - 0.43) and post.gain_to_last == pytest.approx(0.62 - 0.43)
    assert "100% training accuracy at step 10, at least 90% from step 10 on" in finding(early, "strict")
    assert "+23.0 points to the best (step 20), +19.0 points to the last (step 40)" in finding(early, "strict")
    assert _run("c", train={10: 0.5}).post_saturation("strict").step is None


def _measured_run(words_at_10: tuple[float, float] = (0.33, 0.62)) -> RunResult:
    """Two suites, base and two checkpoints: arith's gain at step 10 (the best) significant, words' not (or the
    ``words_at_10`` accuracy and p-value)."""
    rows = []
    for step, (arith, words, p_arith, p_words) in {
        0: (0.20, 0.30, None, None),
        10: (0.45, words_at_10[0], 0.0004, words_at_10[1]),
        20: (0.40, 0.31, 0.003, 0.88),
    }.items():
        row = {"step": step}
        for name, value, p_value in (("arith1", arith, p_arith), ("word2", words, p_words)):
            for mode in ("strict", "lenient", "official"):
                row |= {f"{name}.accuracy_{mode}": value, f"{name}.accuracy_{mode}_low": value - 0.06,
                        f"{name}.accuracy_{mode}_high": value + 0.08}  # fmt: skip
                if p_value is not None:
                    row |= {f"{name}.gain_{mode}": value - (0.20 if name == "arith1" else 0.30)}
                    row |= {f"{name}.p_value_{mode}": p_value}
        for mode in ("strict", "lenient", "official"):
            mean = (arith + words) / 2
            row |= {f"average.accuracy_{mode}": mean, f"average.accuracy_{mode}_low": mean - 0.05,
                    f"average.accuracy_{mode}_high": mean + 0.05}  # fmt: skip
        rows.append(row)
    evals = evals_from_rows(rows)
    return RunResult("smollm2 · gen-3", "embedded", "gen-3", "accuracy", evals=evals, train_accuracy={10: 1.0})


def test_report_shows_intervals_gains_and_which_are_significant(tmp_path):
    run = _measured_run()
    _, rows = gains_table([run], "strict")
    assert rows == [
        ["smollm2 · gen-3", "10", "arith1", "20.0 ± 7.0", "45.0 ± 7.0", "+25.0", "< 0.001", "yes"],
        ["smollm2 · gen-3", "10", "word2", "30.0 ± 7.0", "33.0 ± 7.0", "+3.0", "0.620", "no"],
    ]
    _, modes = modes_table([run], "strict")
    assert modes[1] == ["smollm2 · gen-3", "10", "39.0 ± 5.0", "39.0 ± 5.0", "39.0 ± 5.0"]
    report = run_report([run], tmp_path, "strict").read_text()
    findings = report.split("## Findings")[1].split("##")[0]
    assert "average of 2 (arith1, word2) 25.0 ± 5.0 → 39.0 ± 5.0 at step 10" in findings
    assert "Gains significant at 0.05: arith1 +25.0 (p < 0.001); not significant: word2 +3.0 (p 0.620)" in findings
    assert "| smollm2 · gen-3 | 10 | 45.0 ± 7.0 | 33.0 ± 7.0 | 39.0 ± 5.0 |" in report
    assert (tmp_path / "run-1-accuracy.png").stat().st_size > 5000


def test_a_significant_loss_is_named_as_one_not_as_not_significant():
    line = finding(_measured_run(words_at_10=(0.27, 0.04)), "strict")
    assert "at step 10" in line
    expected = "Gains significant at 0.05: arith1 +25.0 (p < 0.001); losses significant at 0.05: word2 -3.0 (p 0.040);"
    assert f"{expected} not significant: none." in line


def test_the_report_names_what_computed_each_run_and_the_commit():
    """One machine and commit: said once; several: per run; results of an older version: said so."""
    on = "AMD EPYC (avx512f, avx2; aten avx2, mkl avx2), float32"
    runs = [RunResult(f"run {i}", "m", "e", computed_on=[on], commit="abc") for i in range(2)]
    assert provenance_text(runs) == f"Results computed on {on}, code at commit abc."
    runs[1].computed_on, runs[1].commit = [], ""
    text = provenance_text(runs)
    assert f"run 0: computed on {on}, code at commit abc" in text
    assert "run 1: computed on not recorded (results of an older version), code at commit unknown" in text
