"""The findings matrix: its cells, its claims' comparisons and verdicts, on hand-made evaluation outputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import ROOT

from rlvr.config import ConfigError
from rlvr.files import write_rows
from rlvr.matrix import load_matrix
from rlvr.metrics import mcnemar_exact
from rlvr.stages.report.findings import (
    Claim,
    FindingsConfig,
    Scores,
    check_claim,
    compare,
    findings_rows,
    write_findings,
)

FINDINGS = ROOT / "configs" / "matrix" / "findings.yaml"
BENCHMARKS = ["arith1", "units"]


def test_the_findings_matrix_names_its_cells_and_each_changes_one_thing():
    matrix = load_matrix(FINDINGS)
    variants = list(dict.fromkeys(cell.variant for cell in matrix.cells))
    assert variants[0] == "top-variance" and {"entropy-min", "random-reward", "format-reward"} <= set(variants)
    assert {cell.model for cell in matrix.cells} == {"smollm2", "gemma3-270m"}
    for model in ("smollm2", "gemma3-270m"):
        top = matrix.cell(model, "top-variance").params
        assert top.train.max_steps >= 3 * 6  # long enough for a post-saturation curve
        for variant in variants[1:]:
            other = matrix.cell(model, variant).params
            changed = [
                f"{section}.{key}"
                for section in ("select", "train")
                for key, value in getattr(other, section).model_dump().items()
                if value != getattr(top, section).model_dump()[key]
            ]
            assert set(changed) - {"train.max_steps", "train.save_steps"}, variant  # it changes something else
            assert len(set(changed) - {"train.max_steps", "train.save_steps"}) == 1, (variant, changed)
    assert matrix.cell("smollm2", "entropy-min").params.train.algorithm == "entropy_min"
    assert matrix.cell("gemma3-270m", "random-reward").params.train.rewards == ["random"]
    assert matrix.cell("smollm2", "top-variance").params.paths.eval_store == "outputs/findings/smollm2/eval-store"
    assert matrix.findings is not None and matrix.findings.claims[0].cell == "top-variance"


def test_a_claim_naming_no_cell_is_refused(tmp_path):
    spec = yaml.safe_load(FINDINGS.read_text())
    spec["base"] = str(ROOT / "params.yaml")
    spec["findings"]["claims"][2]["against"] = "lowest-variance"
    (tmp_path / "matrix.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(ConfigError, match=r"findings\.claims\.2\.against: no cell named 'lowest-variance'"):
        load_matrix(tmp_path / "matrix.yaml")
    spec["findings"]["claims"][2]["kind"] = "better"
    (tmp_path / "matrix.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(ConfigError, match=r"findings\.claims\.2\.kind"):
        load_matrix(tmp_path / "matrix.yaml")


def test_the_paired_comparison_counts_discordant_problems():
    first = Scores({f"p{i}": float(i < 30) for i in range(100)})
    second = Scores({f"p{i}": float(10 <= i < 20) for i in range(100)})
    result = compare(first, second)
    assert result.difference == pytest.approx(0.2) and result.problems == 100
    assert result.p_value == pytest.approx(mcnemar_exact(0, 20))  # 20 problems right only in the first
    assert result.low < 0.2 < result.high and result.verdict() == "reproduced"
    assert compare(second, first).verdict() == "not reproduced"
    assert compare(first, first).verdict() == "inconclusive at this size"


def _cell(root: Path, name: str, right: dict[int, int], train: dict[int, float] | None = None, n: int = 60,
          signal: bool = True):  # fmt: skip
    """A cell's outputs: at each step, the first ``right[step]`` problems of each benchmark answered right."""
    from rlvr.stages.report.findings import CellOutputs

    for step, count in right.items():
        for bench in BENCHMARKS:
            rows = [
                {"id": str(i), "correct_official": i < count, "boxed": i < count, "reflection": False} for i in range(n)
            ]
            write_rows(root / name / "eval" / "samples" / f"step-{step}" / f"{bench}.jsonl", rows)
    if train is not None:
        rows = [{"step": s, "accuracy": a, "reward_std": 0.3 if signal else 0.0} for s, a in train.items()]
        write_rows(root / name / "train" / "train_log.jsonl", rows)
    return CellOutputs(root / name / "eval", root / name / "train", BENCHMARKS)


def _config(*claims: dict) -> FindingsConfig:
    return FindingsConfig(step=6, claims=[Claim(**claim) for claim in claims], ablation=["top"])


def test_each_kind_of_claim_gets_its_verdict(tmp_path):
    training = {1: 0.5, 2: 1.0, 3: 1.0, 4: 1.0, 5: 1.0, 6: 1.0}
    cells = {
        "top": _cell(tmp_path, "top", {0: 10, 2: 30, 4: 40, 6: 50}, training),
        "flat": _cell(tmp_path, "flat", {0: 10, 6: 11}),
        "worse": _cell(tmp_path, "worse", {0: 10, 6: 20}),
        "silent": _cell(tmp_path, "silent", {0: 10, 6: 10}, {s: 0.0 for s in range(1, 7)}, signal=False),
    }
    config = _config(
        {"claim": "gain", "kind": "gain", "cell": "top", "paper": "36.0 -> 72.8"},
        {"claim": "post", "kind": "post_saturation", "cell": "top"},
        {"claim": "flat", "kind": "gain", "cell": "flat"},
        {"claim": "beats", "kind": "gain", "cell": "worse", "against": "top"},
        {"claim": "as well", "kind": "as_well", "cell": "flat", "against": "top"},
        {"claim": "boxed", "kind": "share", "metric": "boxed", "cell": "top", "step": "last"},
        {"claim": "silent", "kind": "gain", "cell": "top", "against": "silent"},
    )
    rows = {row.claim: row for row in (check_claim(c, "m", cells, config) for c in config.claims)}
    assert rows["gain"].verdict == "reproduced" and rows["gain"].paper == "36.0 -> 72.8"
    assert "top step 6 83.3 [" in rows["gain"].ours and "base model 16.7 [" in rows["gain"].ours
    assert rows["post"].verdict == "reproduced" and "100% training accuracy at step 2" in rows["post"].ours
    assert "2 evaluations after it" in rows["post"].ours and "step 2 50.0" in rows["post"].ours
    assert rows["flat"].verdict == "inconclusive at this size"
    assert rows["beats"].verdict == "not reproduced"
    assert rows["as well"].verdict == "not reproduced" and rows["as well"].paper == "not in PAPER.md"
    assert rows["boxed"].verdict == "reproduced" and rows["boxed"].ours.startswith("boxed share top step 6")
    assert "(silent: its rollouts' rewards never differed in its 6 steps: only weight decay moved it)" in rows[
        "silent"].ours and "never differed" not in rows["gain"].ours  # fmt: skip


def test_the_findings_report_has_a_row_per_claim_and_model_and_the_replication_row(tmp_path):
    models = {
        "a": {"top": _cell(tmp_path / "a", "top", {0: 10, 6: 50})},
        "b": {"top": _cell(tmp_path / "b", "top", {0: 10, 6: 12})},
    }
    config = _config({"claim": "1-shot gains", "kind": "gain", "cell": "top"})
    rows = findings_rows(models, config)
    assert [(r.claim, r.model, r.verdict) for r in rows] == [
        ("1-shot gains", "a", "reproduced"),
        ("1-shot gains", "b", "inconclusive at this size"),
        ("1-shot gains: across families", "all", "inconclusive at this size"),
    ]
    write_findings(models, config, tmp_path / "report", ["a/top: 1.0 min"])
    text = (tmp_path / "report" / "findings.md").read_text()
    assert "| 1-shot gains | a | not in PAPER.md |" in text and "a/top: 1.0 min" in text
    assert (tmp_path / "report" / "findings-curves.png").stat().st_size > 5000
    assert (tmp_path / "report" / "findings-ablation.png").stat().st_size > 5000
