"""The findings report of a matrix whose file has a ``findings`` section: each claim of the paper (and two
follow-ups' questions) tested per model as a comparison of two cells on the same held-out problems, with the
paper's number, ours with its 95% interval, the paired test, and a verdict.

Numbers pool every held-out problem of the evaluated suites (equal sizes: the same as their average). A
comparison is paired: the same problems, an exact McNemar test (a paired bootstrap where a problem has several
samples); the difference's interval is the normal one of the per-problem differences. Verdicts: ``reproduced``
where the difference goes the claimed way at p < 0.05, ``not reproduced`` where it goes the other way at p < 0.05,
else ``inconclusive at this size``. No correction for the number of claims tested: read a p-value near 0.05 as
weak. Every statistic (intervals, the paired test, per-problem scores, saturation) and every reader is the report's
own (``rlvr.metrics``, ``rlvr.runs``), so the findings and the report cannot disagree on one.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from rlvr.config import GradingMode
from rlvr.files import EvalDir, read_records
from rlvr.metrics import ALPHA, accuracy_interval, paired_difference_interval, paired_test, problem_shares
from rlvr.runs import read_train_log, saturation_step, train_accuracy
from rlvr.stages.report.tables import p_text, pct

BASE = "base"  # the model before training: step 0 of any cell


class Claim(BaseModel):
    """One claim, tested on every model of the matrix."""

    model_config = ConfigDict(extra="forbid")

    claim: str = Field(description="the claim in words")
    paper: str = Field("", description="the paper's number for it (PAPER.md), or what the follow-up reports")
    kind: Literal["gain", "as_well", "post_saturation", "share"] = Field(
        description="gain: cell above against; as_well: cell gains over the base model and is not below against; "
        "post_saturation: the cell's held-out accuracy after its training example saturated; share: a share of "
        "answers (metric) rises from against to cell"
    )
    cell: str = Field(description="the cell tested")
    against: str = Field(BASE, description="the comparison: another cell, or base (the model before training)")
    metric: Literal["accuracy", "boxed", "reflection"] = Field(
        "accuracy", description="what is compared: accuracy, or the share of answers with a box or reflection words"
    )
    step: int | Literal["last"] | None = Field(None, description="the cell's step (null: findings.step)")


class FindingsConfig(BaseModel):
    """The ``findings`` section of a matrix file."""

    model_config = ConfigDict(extra="forbid")

    step: int = Field(ge=1, description="the training step at which cells are compared")
    mode: GradingMode = Field("official", description="grading of the comparisons")
    ablation: list[str] = Field(default_factory=list, description="cells drawn as the loss-ablation bars")
    claims: list[Claim] = Field(min_length=1)


@dataclass(frozen=True)
class Scores:
    """One model's per-problem outcomes (``<benchmark>:<id>`` -> 0/1, or a share for several samples)."""

    values: dict[str, float]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values.values()) if self.values else math.nan

    def interval(self) -> tuple[float, float]:
        """The 95% interval of the mean (``rlvr.metrics.accuracy_interval``: Wilson, or a bootstrap for shares)."""
        return accuracy_interval(list(self.values.values())) if self.values else (math.nan, math.nan)


@dataclass(frozen=True)
class Comparison:
    """``first`` against ``second`` on their shared problems."""

    first: Scores
    second: Scores
    difference: float
    low: float
    high: float
    p_value: float
    problems: int

    def verdict(self, direction: int = 1) -> str:
        """``reproduced`` where the difference has the claimed sign (``direction``) at p < 0.05, ``not
        reproduced`` where it has the other, else ``inconclusive at this size``."""
        if self.p_value >= ALPHA or self.difference == 0:
            return "inconclusive at this size"
        return "reproduced" if (self.difference > 0) == (direction > 0) else "not reproduced"


def compare(first: Scores, second: Scores) -> Comparison:
    """``first`` against ``second`` on their shared problems: the report's paired test (``rlvr.metrics.paired_test``:
    exact McNemar, or a paired bootstrap for shares) and the normal interval of the per-problem differences."""
    ids = [key for key in first.values if key in second.values]
    shared_first, shared_second = Scores({i: first.values[i] for i in ids}), Scores({i: second.values[i] for i in ids})
    test = paired_test(shared_second.values, shared_first.values)
    low, high = paired_difference_interval(shared_second.values, shared_first.values)
    difference, p_value = test.get("gain", math.nan), test.get("p_value", 1.0)
    return Comparison(shared_first, shared_second, difference, low, high, p_value, len(ids))


@dataclass(frozen=True)
class CellOutputs:
    """Where one cell of one model wrote its evaluation and training log."""

    eval_dir: Path
    train_dir: Path
    benchmarks: list[str]
    algorithm: str = "grpo"

    def steps(self) -> list[int]:
        """The evaluated steps (each with every benchmark's samples)."""
        return EvalDir(self.eval_dir).sampled_steps(self.benchmarks)

    def scores(self, step: int, metric: str, mode: str) -> Scores:
        """Per problem, its outcome at ``step``: correct under ``mode`` (accuracy), or the sample flag."""
        flag = f"correct_{mode}" if metric == "accuracy" else metric  # else a sample's flag: boxed, reflection
        scores = {}
        for name in self.benchmarks:
            samples = read_records(EvalDir(self.eval_dir).samples(step, name))
            scores |= {f"{name}:{key}": share for key, share in problem_shares(samples, flag).items()}
        return Scores(scores)

    def train_log(self) -> list[dict]:
        return read_train_log(self.train_dir) or []

    def without_signal(self, step: int) -> int | None:
        """For GRPO, the number of steps up to ``step`` where some group's rewards differed is zero: how many steps
        it trained without any advantage (GRPO's policy gradient all zero: only weight decay moved the weights);
        None where some step had a signal, or for another algorithm."""
        rows = [row for row in self.train_log() if row.get("step", 0) <= step]
        if self.algorithm != "grpo" or not rows or any(row.get("reward_std", 0) > 0 for row in rows):
            return None
        return len(rows)


def describe(scores: Scores) -> str:
    """``12.5 [9.3, 16.6]``: the mean and its 95% interval in percent (``n/a`` without problems)."""
    if not scores.values:
        return "n/a"
    low, high = scores.interval()
    return f"{pct(scores.mean)} [{pct(low)}, {pct(high)}]"


def describe_difference(comparison: Comparison) -> str:
    d = comparison
    return f"{100 * d.difference:+.1f} [{100 * d.low:+.1f}, {100 * d.high:+.1f}] points, p {p_text(d.p_value)}"


@dataclass(frozen=True)
class Row:
    """One claim on one model: the paper's number, ours and the verdict."""

    claim: str
    model: str
    paper: str
    ours: str
    verdict: str


def _label(cell: str, step: int) -> str:
    return "base model" if cell == BASE else f"{cell} step {step}"


def check_claim(claim: Claim, model: str, cells: dict[str, CellOutputs], config: FindingsConfig) -> Row:
    """The row of ``claim`` on ``model`` (its cells by name)."""
    mode = config.mode

    def at(cell: str, step: int | str | None) -> tuple[Scores, int] | None:
        outputs = cells[claim.cell if cell == BASE else cell]
        steps = outputs.steps()
        wanted = 0 if cell == BASE else (steps[-1] if step == "last" and steps else step or config.step)
        if wanted not in steps:
            return None
        return outputs.scores(wanted, claim.metric, mode), wanted

    def row(ours: str, verdict: str) -> Row:
        return Row(claim.claim, model, claim.paper or "not in PAPER.md", ours, verdict)

    if claim.kind == "post_saturation":
        return _post_saturation(claim, cells[claim.cell], mode, row)
    tested, reference = at(claim.cell, claim.step), at(claim.against, claim.step)
    if tested is None or reference is None:
        missing = claim.cell if tested is None else claim.against
        return row(f"{missing} not evaluated at step {claim.step or config.step}", "not tested")
    comparison = compare(tested[0], reference[0])
    what = "" if claim.metric == "accuracy" else f"{claim.metric} share "
    ours = (
        f"{what}{_label(claim.cell, tested[1])} {describe(comparison.first)} vs "
        f"{_label(claim.against, reference[1])} {describe(comparison.second)}: {describe_difference(comparison)}"
    )
    for name, step in ((claim.cell, tested[1]), (claim.against, reference[1])):
        if name != BASE and (steps := cells[name].without_signal(step)) is not None:
            ours += f" ({name}: its rollouts' rewards never differed in its {steps} steps: only weight decay moved it)"
    if claim.kind != "as_well":
        return row(ours, comparison.verdict())
    over_base = compare(tested[0], at(BASE, None)[0])
    ours += f"; vs base model {describe_difference(over_base)}"
    if comparison.verdict() == "not reproduced":  # significantly below the comparison
        return row(ours, "not reproduced")
    return row(ours, "reproduced" if over_base.verdict() == "reproduced" else "inconclusive at this size")


def _post_saturation(claim: Claim, outputs: CellOutputs, mode: str, row) -> Row:
    """Held-out accuracy from the last evaluation at or before the training example's saturation (100% training
    accuracy) to the last evaluated step."""
    train, steps = train_accuracy(outputs.train_log()), outputs.steps()
    saturated = saturation_step(train)
    if saturated is None:
        return row("the training example never reached 100% training accuracy", "inconclusive at this size")
    before = [s for s in steps if s <= saturated]
    after = [s for s in steps if s > saturated]
    if not before or not after:
        return row(f"saturated at step {saturated}; no evaluation after it", "not tested")
    comparison = compare(outputs.scores(after[-1], "accuracy", mode), outputs.scores(before[-1], "accuracy", mode))
    ours = (
        f"100% training accuracy at step {saturated} (trained to step {max(train)}, {max(train) / saturated:.1f}x); "
        f"{len(after)} evaluations after it; step {before[-1]} {describe(comparison.second)} -> step {after[-1]} "
        f"{describe(comparison.first)}: {describe_difference(comparison)}"
    )
    return row(ours, comparison.verdict())


def families_row(rows: list[Row], claim: str) -> Row | None:
    """Whether the first claim holds on every model: the paper's replication across families."""
    tested = [row for row in rows if row.claim == claim]
    if len(tested) < 2:
        return None
    held = [row.model for row in tested if row.verdict == "reproduced"]
    failed = [row.model for row in tested if row.verdict == "not reproduced"]
    verdict = "reproduced" if len(held) == len(tested) else "not reproduced" if failed else "inconclusive at this size"
    ours = f"reproduced on {len(held)} of {len(tested)} families" + (f" ({', '.join(held)})" if held else "")
    paper = "Qwen2.5-Math-7B, Llama-3.2-3B-Instruct and DeepSeek-R1-Distill-Qwen-1.5B gain too (PAPER.md)"
    return Row(f"{claim}: across families", "all", paper, ours, verdict)


def curve_figure(models: dict[str, dict[str, CellOutputs]], mode: str, path: Path) -> None:
    """Held-out accuracy (every problem pooled, 95% intervals) by step of every cell, one panel per model."""
    from rlvr.stages.report.figures import label_axes, plt, save_figure

    figure, axes = plt.subplots(1, len(models), figsize=(6.5 * len(models), 4.5), squeeze=False)
    for axis, (model, cells) in zip(axes[0], models.items(), strict=True):
        for index, (name, outputs) in enumerate(cells.items()):
            points = [(step, outputs.scores(step, "accuracy", mode)) for step in outputs.steps()]
            if not points:
                continue
            means = [scores.mean for _, scores in points]
            bounds = [scores.interval() for _, scores in points]
            errors = [[m - low for m, (low, _) in zip(means, bounds, strict=True)],
                      [high - m for m, (_, high) in zip(means, bounds, strict=True)]]  # fmt: skip
            axis.errorbar([s for s, _ in points], means, yerr=errors, fmt="o-", capsize=2, label=name,
                          color=f"C{index % 10}", alpha=0.85)  # fmt: skip
        label_axes(axis, f"{model}: held-out accuracy by step ({mode})", "accuracy")
        axis.legend(fontsize=8)
    save_figure(figure, path)


def ablation_figure(models: dict[str, dict[str, CellOutputs]], config: FindingsConfig, path: Path) -> None:
    """Held-out accuracy of the base model and of the ablation cells at the comparison step (95% intervals)."""
    from rlvr.stages.report.figures import plt, save_figure

    names = [BASE, *config.ablation]
    figure, axis = plt.subplots(figsize=(1.6 * len(names) * len(models) + 2, 4.5))
    width = 0.8 / len(names)
    for index, name in enumerate(names):
        means, errors, positions = [], [[], []], []
        for place, cells in enumerate(models.values()):
            outputs = cells[name] if name in cells else next(iter(cells.values()))
            step = 0 if name == BASE else config.step
            if step not in outputs.steps():
                continue
            scores = outputs.scores(step, "accuracy", config.mode)
            low, high = scores.interval()
            means.append(scores.mean)
            errors[0].append(scores.mean - low)
            errors[1].append(high - scores.mean)
            positions.append(place + (index - (len(names) - 1) / 2) * width)
        name_shown = "base model" if name == BASE else f"{name} (step {config.step})"
        axis.bar(positions, means, width, yerr=errors, capsize=3, label=name_shown, color=f"C{index % 10}")
    axis.set_xticks(range(len(models)), list(models))
    axis.set(title=f"Loss ablation: held-out accuracy ({config.mode})", ylabel="accuracy")
    axis.grid(alpha=0.3, axis="y")
    axis.legend(fontsize=8)
    save_figure(figure, path)


FINDINGS_TABLE = ["claim", "model", "paper", "ours (95% interval; paired test)", "verdict"]


def findings_rows(models: dict[str, dict[str, CellOutputs]], config: FindingsConfig) -> list[Row]:
    """Every claim on every model, the first claim's replication across models after its rows."""
    rows: list[Row] = []
    for index, claim in enumerate(config.claims):
        claim_rows = [check_claim(claim, model, cells, config) for model, cells in models.items()]
        rows += claim_rows
        if index == 0 and (across := families_row(claim_rows, claim.claim)) is not None:
            rows.append(across)
    return rows


def write_findings(
    models: dict[str, dict[str, CellOutputs]], config: FindingsConfig, out_dir: str | Path, notes: list[str] = ()
) -> list[Row]:
    """``findings.md``, ``findings.html`` and their figures in ``out_dir``; ``notes`` are added under the table
    (the cells' settings, their wall times). Returns the rows."""
    from rlvr.files import atomic_write_text
    from rlvr.stages.report.blocks import Figure, Heading, Items, Paragraph, Table, html_page, markdown

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = findings_rows(models, config)
    curve_figure(models, config.mode, out_dir / "findings-curves.png")
    blocks = [
        Heading("The paper's findings on this machine", 1),
        Paragraph(
            f"Each claim is a comparison of two cells of the findings matrix on the same held-out problems (every "
            f"problem of the evaluated suites pooled), at training step {config.step} unless the row says "
            f"otherwise, graded {config.mode}. Verdicts: reproduced where the difference goes the claimed way at "
            f"p < {ALPHA} (exact McNemar test), not reproduced where it goes the other way at p < "
            f"{ALPHA}, else inconclusive at this size. {len(rows)} rows: no correction for multiple tests."
        ),
        Table(FINDINGS_TABLE, [[r.claim, r.model, r.paper, r.ours, r.verdict] for r in rows]),
        Figure("findings-curves.png", "Held-out accuracy by step of every cell (95% intervals), one panel per model"),
    ]
    if config.ablation:
        ablation_figure(models, config, out_dir / "findings-ablation.png")
        blocks.append(Figure("findings-ablation.png", f"Loss ablation at step {config.step} (95% intervals)"))
    if notes:
        blocks += [Heading("Cells"), Items(list(notes))]
    atomic_write_text(out_dir / "findings.md", markdown(blocks))
    atomic_write_text(out_dir / "findings.html", html_page(blocks, out_dir, "1-shot RLVR findings"))
    return rows
