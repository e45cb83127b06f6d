"""The report as a document: did 1-shot RLVR work here, for which models and examples, is the gain more than
noise, and does post-saturation generalization show?"""

from __future__ import annotations

from pathlib import Path

from rlvr.metrics import ALPHA
from rlvr.runs import RunResult
from rlvr.stages.report import figures
from rlvr.stages.report.blocks import Block, Figure, Heading, Items, Paragraph, Table
from rlvr.stages.report.tables import (
    CUT_WARNING,
    PAPER_MODE,
    accuracy_table,
    averages_text,
    cut_table,
    finding,
    gains_table,
    modes_table,
    paper_table,
    provenance_text,
)

TITLE = "1-shot RLVR report"


def document(runs: list[RunResult], mode: str, step: int | None, out_dir: Path, reference: list[dict]) -> list[Block]:
    """The report's blocks; writes its figures into ``out_dir``."""
    partial = [run for run in runs if run.partial]
    blocks: list[Block] = [
        Heading(TITLE, 1),
        Paragraph(
            f"{len(runs)} run(s), {len(partial)} partial; accuracy in percent ± the half-width of its 95% interval "
            "(Wilson; a bootstrap over problems with several samples per problem), "
            f'{mode} grading (strict: only the last \\boxed{{}} counts; lenient: also "the answer is ..." '
            "or the last number; official: the paper's evaluation harness). Average: the plain mean over every "
            "evaluated benchmark, the held-out test set included, each counted once. Gains are tested against the "
            "base model on the same problems (exact McNemar; a paired bootstrap with several samples per problem)."
        ),
        Paragraph(averages_text(runs)),
        Paragraph(provenance_text(runs)),
        Heading("Findings"),
        Items([finding(run, mode) for run in runs]),
        Heading("Main table: each run's best checkpoint"),
        Paragraph("Best checkpoint = the step with the best benchmark average (the paper's reported checkpoint)."),
        Table(*accuracy_table(runs, mode, lambda r: r.best_step(mode))),
        Heading("Gains over the base model"),
        Paragraph(
            f"Best checkpoint against the base model, per benchmark; significant: p < {ALPHA}. With several "
            "benchmarks some gains pass this level by chance: read the pattern, not one cell."
        ),
    ]
    header, rows = gains_table(runs, mode)
    blocks.append(Table(header, rows) if rows else Paragraph("No checkpoint evaluated yet."))
    blocks += [
        Heading("Benchmark average by grading mode"),
        Table(*modes_table(runs, mode)),
        Heading("Answers cut by the token budget"),
        Paragraph(
            "Share of completions that reached the evaluation's token budget (max_new_tokens) with no end-of-text "
            "token or stop string. Where the base model's share is above "
            f"{CUT_WARNING:.0%}, part of a gain can be the model learning to stop rather than to solve."
        ),
    ]
    header, rows = cut_table(runs, mode)
    blocks.append(Table(header, rows) if rows else Paragraph("No cut shares recorded (results of an older version)."))
    chosen = "each run's last evaluated step" if step is None else f"step {step}"
    last = lambda r: max(r.evals, default=None) if step is None else (step if step in r.evals else None)  # noqa: E731
    blocks += [Heading(f"Table at {chosen}"), Table(*accuracy_table(runs, mode, last))]
    header, rows = paper_table(runs, reference)
    blocks.append(Heading(f"Difference from the paper ({PAPER_MODE} grading)"))
    blocks.append(
        Table(header, rows)
        if rows
        else Paragraph(
            "No run matches a setting of the paper (model, training set from DSR-sub by the variance "
            "score, accuracy reward, algorithm), so there is nothing to compare."
        )
    )
    blocks.append(Heading("Figures"))
    for index, run in enumerate(runs):
        name = f"run-{index + 1}-accuracy.png"
        figures.run_figure(run, mode, out_dir / name)
        blocks.append(Figure(name, f"Run {run.name}: training-example and held-out accuracy by step"))
    drawings = (
        ("all-runs-accuracy.png", lambda p: figures.overlay_figure(runs, mode, p), "All runs: held-out average and "
         "training-example accuracy"),
        ("response-shape.png", lambda p: figures.shape_figure(runs, p), "Boxed, cut and self-reflection shares by "
         "step"),
        ("response-length.png", lambda p: figures.length_figure(runs, p), "Mean response length by step"),
    )  # fmt: skip
    for name, draw, caption in drawings:
        draw(out_dir / name)
        blocks.append(Figure(name, caption))
    if partial:
        blocks += [Heading("Partial runs"), Items([f"{run.name}: {run.partial}" for run in partial])]
    return blocks
