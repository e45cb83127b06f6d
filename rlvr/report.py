"""Report: did 1-shot RLVR work here, for which models and examples, and does post-saturation generalization show?

Tables, in the headline grading, accuracy in percent: (1) benchmarks x runs at each run's best-average
checkpoint with each model's base row, like the paper's main table; (2) the same at one step; (3) the difference
from the paper's reference numbers where a run matches a paper setting. Figures: per run, training-example
accuracy and held-out accuracy per benchmark by step, with the step where training accuracy first reaches 100%
and the test gain after it; across runs, average held-out accuracy, boxed and self-reflection shares and
response length by step. Written as Markdown, a self-contained HTML page and PNGs.
"""

from __future__ import annotations

import base64
import html
from importlib import resources
from pathlib import Path

import matplotlib
import yaml

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from rlvr.data import atomic_write_text, write_json  # noqa: E402
from rlvr.runs import RunResult  # noqa: E402

Block = tuple  # ("h2", text) | ("p", text) | ("table", header, rows) | ("figure", file name, caption)
FIGURE_SIZE = (8, 4.5)


def load_reference() -> list[dict]:
    """The paper's reference numbers (``rlvr/resources/paper_reference.yaml``)."""
    text = resources.files("rlvr").joinpath("resources/paper_reference.yaml").read_text()
    return yaml.safe_load(text)["runs"]


def reference_for(model: str, setting: str | None, algorithm: str, reference: list[dict]) -> dict | None:
    """The paper's numbers for this model, training set and algorithm, if the paper reports them."""
    return next(
        (
            entry["values"]
            for entry in reference
            if entry["model"] == model and entry["setting"] == setting and entry["algorithm"] == algorithm
        ),
        None,
    )


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def _columns(runs: list[RunResult]) -> list[str]:
    return list(dict.fromkeys(b for run in runs for b in run.benchmarks))


def accuracy_table(runs: list[RunResult], mode: str, step_of) -> tuple[list[str], list[list[str]]]:
    """Rows: each model's base (step 0), then each run at ``step_of(run)``; columns: benchmarks and average."""
    columns = _columns(runs)
    header = ["run", "step", *columns, "average"]
    rows, based = [], set()
    for run in runs:
        if run.model not in based and 0 in run.evals:
            based.add(run.model)
            rows.append([f"base · {Path(run.model).name}", "0", *_cells(run, 0, columns, mode)])
    for run in runs:
        step = step_of(run)
        label = run.name + (" (partial)" if run.partial else "")
        rows.append([label, "–" if step is None else str(step), *_cells(run, step, columns, mode)])
    return header, rows


def _cells(run: RunResult, step: int | None, columns: list[str], mode: str) -> list[str]:
    if step is None:
        return ["–"] * (len(columns) + 1)
    values = [run.value(step, b, f"accuracy_{mode}") for b in columns]
    return [_pct(v) for v in values] + [_pct(run.value(step, "average", f"accuracy_{mode}"))]


PAPER_MODE = "official"  # the paper's numbers come from its evaluation harness


def paper_table(
    runs: list[RunResult], reference: list[dict], mode: str = PAPER_MODE
) -> tuple[list[str], list[list[str]]]:
    """Measured minus the paper's number, in percentage points, for runs (and their base) matching a paper setting,
    graded like the paper (``official``) at the best checkpoint under that grading."""
    header = ["run", "setting", "benchmark", "measured", "paper", "difference (points)"]
    rows = []
    for run in runs:
        for setting, step in (("base", 0), (run.setting, run.best_step(mode))):
            paper = reference_for(run.model, setting, run.algorithm, reference)
            if paper is None or step is None or step not in run.evals:
                continue
            for bench, number in paper.items():
                measured = run.value(step, bench, f"accuracy_{mode}")
                if measured is not None:
                    rows.append(
                        [run.name, setting, bench, _pct(measured), f"{number:.1f}", f"{100 * measured - number:+.1f}"]
                    )
    return header, rows


def post_saturation(run: RunResult, mode: str) -> tuple[int | None, float | None]:
    """(first step at 100% training accuracy, average held-out gain from the last evaluation at or before it
    to the last evaluation); the gain is None where training never saturates or nothing is evaluated after."""
    saturated = run.saturation_step()
    steps = sorted(s for s in run.evals if run.value(s, "average", f"accuracy_{mode}") is not None)
    if saturated is None or not steps:
        return saturated, None
    before = [s for s in steps if s <= saturated]
    if not before or steps[-1] <= before[-1]:
        return saturated, None
    average = lambda s: run.value(s, "average", f"accuracy_{mode}")  # noqa: E731
    return saturated, average(steps[-1]) - average(before[-1])


def _label(axis, title: str, ylabel: str, ylim: tuple[float, float] | None = None) -> None:
    """Title, axis labels (x: training step) and grid of one plot."""
    axis.set(title=title, xlabel="training step", ylabel=ylabel)
    if ylim is not None:
        axis.set_ylim(*ylim)
    axis.grid(alpha=0.3)


def _save(figure, path: Path) -> None:
    for axis in figure.axes:
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # training steps are whole numbers
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def run_figure(run: RunResult, mode: str, path: Path) -> None:
    """Training-example accuracy and held-out accuracy per benchmark by step; saturation marked."""
    figure, axis = plt.subplots(figsize=FIGURE_SIZE)
    if run.train_accuracy:
        steps = sorted(run.train_accuracy)
        train = [run.train_accuracy[s] for s in steps]
        axis.plot(steps, train, color="black", linewidth=2, label="training example (reward)")
    eval_steps = sorted(run.evals)
    for bench in run.benchmarks:
        values = [run.value(s, bench, f"accuracy_{mode}") for s in eval_steps]
        axis.plot(eval_steps, values, "o-", label=f"{bench} (held-out)")
    saturated, gain = post_saturation(run, mode)
    if saturated is not None:
        note = "no evaluation after it" if gain is None else f"average held-out gain after it: {100 * gain:+.1f} points"
        axis.axvline(saturated, color="gray", linestyle="--", label=f"100% training accuracy at step {saturated}")
        axis.text(saturated, 0.94, f" {note}", va="top", fontsize=8, color="dimgray")
    _label(axis, f"Run {run.name}: accuracy by step ({mode} grading)", "accuracy (share correct)", (-0.02, 1.05))
    axis.legend(fontsize=8, loc="center right")
    _save(figure, path)


def overlay_figure(runs: list[RunResult], mode: str, path: Path) -> None:
    """Average held-out accuracy (solid) and training-example accuracy (dotted) of every run."""
    figure, axis = plt.subplots(figsize=FIGURE_SIZE)
    for index, run in enumerate(runs):
        colour = f"C{index % 10}"
        steps = sorted(s for s in run.evals if run.value(s, "average", f"accuracy_{mode}") is not None)
        axis.plot(
            steps,
            [run.value(s, "average", f"accuracy_{mode}") for s in steps],
            "o-",
            color=colour,
            label=f"{run.name}: held-out average",
        )
        train = sorted(run.train_accuracy)
        axis.plot(
            train, [run.train_accuracy[s] for s in train], ":", color=colour, label=f"{run.name}: training example"
        )
    _label(axis, f"All runs: accuracy by step ({mode} grading)", "accuracy (share correct)", (-0.02, 1.05))
    axis.legend(fontsize=7)
    _save(figure, path)


def shape_figure(runs: list[RunResult], path: Path) -> None:
    """Boxed share and self-reflection share (mean over benchmarks) by step, every run."""
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for axis, metric, title in (
        (axes[0], "boxed_share", "Responses with \\boxed{}"),
        (axes[1], "reflection_share", "Responses that self-reflect (rethink/recheck/recalculate)"),
    ):
        for index, run in enumerate(runs):
            steps = sorted(s for s in run.evals if run.benchmark_mean(s, metric) is not None)
            axis.plot(
                steps, [run.benchmark_mean(s, metric) for s in steps], "o-", color=f"C{index % 10}", label=run.name
            )
        _label(axis, title, "share of responses", (-0.02, 1.05))
    axes[0].legend(fontsize=7)
    _save(figure, path)


def length_figure(runs: list[RunResult], path: Path) -> None:
    """Mean response length (tokens, mean over benchmarks) by step, every run."""
    figure, axis = plt.subplots(figsize=FIGURE_SIZE)
    for index, run in enumerate(runs):
        steps = sorted(s for s in run.evals if run.benchmark_mean(s, "mean_response_length") is not None)
        axis.plot(
            steps,
            [run.benchmark_mean(s, "mean_response_length") for s in steps],
            "o-",
            color=f"C{index % 10}",
            label=run.name,
        )
    _label(axis, "Mean response length by step", "response length (tokens)")
    axis.legend(fontsize=7)
    _save(figure, path)


def document(runs: list[RunResult], mode: str, step: int | None, out_dir: Path, reference: list[dict]) -> list[Block]:
    """The report's blocks; writes its figures into ``out_dir``."""
    complete = [run for run in runs if not run.partial]
    blocks: list[Block] = [("h1", "1-shot RLVR report")]
    blocks.append(
        (
            "p",
            f"{len(runs)} run(s), {len(runs) - len(complete)} partial; accuracy in percent, "
            f'{mode} grading (strict: only the last \\boxed{{}} counts; lenient: also "the answer is ..." '
            "or the last number; official: the paper's evaluation harness). Average: mean over the evaluated "
            "benchmarks (the held-out test set alone where there are none).",
        )
    )
    findings = []
    for run in runs:
        best = run.best_step(mode)
        base, top = (
            run.value(0, "average", f"accuracy_{mode}"),
            run.value(best, "average", f"accuracy_{mode}") if best else None,
        )
        saturated, gain = post_saturation(run, mode)
        change = (
            "no checkpoint evaluated" if top is None or base is None else f"{_pct(base)} → {_pct(top)} at step {best}"
        )
        sat = (
            "never reached 100% training accuracy"
            if saturated is None
            else (
                f"100% training accuracy at step {saturated}"
                + ("" if gain is None else f", held-out average {100 * gain:+.1f} points after it")
            )
        )
        findings.append(f"{run.name} (examples {run.examples}, reward {run.reward or '?'}): average {change}; {sat}.")
    blocks += [("h2", "Findings"), ("list", findings)]
    blocks += [
        ("h2", "Main table: each run's best checkpoint"),
        ("p", "Best checkpoint = the step with the best benchmark average (the paper's reported checkpoint)."),
        ("table", *accuracy_table(runs, mode, lambda r: r.best_step(mode))),
    ]
    chosen = "each run's last evaluated step" if step is None else f"step {step}"
    blocks += [
        ("h2", f"Table at {chosen}"),
        (
            "table",
            *accuracy_table(
                runs,
                mode,
                lambda r: max(r.evals, default=None) if step is None else (step if step in r.evals else None),
            ),
        ),
    ]
    header, rows = paper_table(runs, reference)
    blocks.append(("h2", f"Difference from the paper ({PAPER_MODE} grading)"))
    blocks.append(
        ("table", header, rows)
        if rows
        else (
            "p",
            "No run matches a setting of the paper (model, training set from DSR-sub by the variance "
            "score, accuracy reward, algorithm), so there is nothing to compare.",
        )
    )
    blocks.append(("h2", "Figures"))
    for index, run in enumerate(runs):
        name = f"run-{index + 1}-accuracy.png"
        run_figure(run, mode, out_dir / name)
        blocks.append(("figure", name, f"Run {run.name}: training-example and held-out accuracy by step"))
    figures = (
        (
            "all-runs-accuracy.png",
            lambda path: overlay_figure(runs, mode, path),
            "All runs: held-out average and training-example accuracy",
        ),
        ("response-shape.png", lambda path: shape_figure(runs, path), "Boxed share and self-reflection share by step"),
        ("response-length.png", lambda path: length_figure(runs, path), "Mean response length by step"),
    )
    for name, draw, caption in figures:
        draw(out_dir / name)
        blocks.append(("figure", name, caption))
    partial = [f"{run.name}: {run.partial}" for run in runs if run.partial]
    if partial:
        blocks += [("h2", "Partial runs"), ("list", partial)]
    return blocks


def markdown(blocks: list[Block]) -> str:
    lines = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2"):
            lines += ["#" * int(kind[1]) + " " + block[1], ""]
        elif kind == "p":
            lines += [block[1], ""]
        elif kind == "list":
            lines += [f"- {item}" for item in block[1]] + [""]
        elif kind == "table":
            header, rows = block[1], block[2]
            lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(row) + " |" for row in rows] + [""]
        elif kind == "figure":
            lines += [f"![{block[2]}]({block[1]})", ""]
    return "\n".join(lines)


STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}"
    "th:first-child,td:first-child{text-align:left}th{background:#f3f3f3}figure{margin:1.5em 0}"
    "img{max-width:100%}figcaption{color:#555;font-size:.9em}"
)


def html_page(blocks: list[Block], out_dir: Path) -> str:
    """A self-contained page: styles inline, figures embedded as data URIs, no scripts."""
    body = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2"):
            body.append(f"<{kind}>{html.escape(block[1])}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{html.escape(block[1])}</p>")
        elif kind == "list":
            body.append("<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in block[1]) + "</ul>")
        elif kind == "table":
            head = "".join(f"<th>{html.escape(h)}</th>" for h in block[1])
            rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in block[2])
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif kind == "figure":
            data = base64.b64encode((out_dir / block[1]).read_bytes()).decode()
            caption = html.escape(block[2])
            body.append(
                f'<figure><img src="data:image/png;base64,{data}" alt="{caption}">'
                f"<figcaption>{caption}</figcaption></figure>"
            )
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>1-shot RLVR report</title>'
        f"<style>{STYLE}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def run_report(runs: list[RunResult], out_dir: str | Path, mode: str, step: int | None = None) -> Path:
    """The report stage's outputs in ``out_dir``: ``report.md``, ``report.html``, the PNGs and ``by_step.json``
    (the first run's training and held-out average accuracy by step, for DVC plots). Returns the Markdown path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    blocks = document(runs, mode, step, out_dir, load_reference())
    current = runs[0]
    rows = [
        {
            "step": s,
            "train_accuracy": current.train_accuracy.get(s),
            "heldout_average_accuracy": current.value(s, "average", f"accuracy_{mode}"),
        }
        for s in sorted(current.evals)
    ]
    write_json(out_dir / "by_step.json", rows)
    atomic_write_text(out_dir / "report.html", html_page(blocks, out_dir))
    atomic_write_text(out_dir / "report.md", markdown(blocks))
    return out_dir / "report.md"
