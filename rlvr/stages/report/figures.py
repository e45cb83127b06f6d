"""The report's figures (PNG): per run, training-example and held-out accuracy by step with 95% intervals and
the saturation step; across runs, the held-out average, response shape and length by step."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from rlvr.metrics import AVERAGE
from rlvr.runs import RunResult  # noqa: E402

FIGURE_SIZE = (8, 4.5)
ACCURACY_LIMITS = (-0.02, 1.05)


def label_axes(axis, title: str, ylabel: str, ylim: tuple[float, float] | None = None) -> None:
    """Title, axis labels (x: training step) and grid of one plot."""
    axis.set(title=title, xlabel="training step", ylabel=ylabel)
    if ylim is not None:
        axis.set_ylim(*ylim)
    axis.grid(alpha=0.3)


def save_figure(figure, path: Path) -> None:
    """The figure as a PNG at ``path`` (folders made), then closed."""
    for axis in figure.axes:
        if axis.get_xlabel() == "training step":
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # training steps are whole numbers
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _accuracy_line(axis, run: RunResult, benchmark: str, mode: str, label: str, colour: str) -> None:
    """Accuracy by step with its 95% interval as error bars."""
    points = [(s, a) for s in sorted(run.evals) if (a := run.accuracy(s, benchmark, mode)) is not None]
    if not points:
        return
    steps, values = [s for s, _ in points], [a[0] for _, a in points]
    errors = [[a[0] - a[1] for _, a in points], [a[2] - a[0] for _, a in points]]
    axis.errorbar(steps, values, yerr=errors, fmt="o-", capsize=3, color=colour, label=label)


def run_figure(run: RunResult, mode: str, path: Path) -> None:
    """Training-example accuracy and held-out accuracy per benchmark by step (95% intervals); saturation marked,
    with the held-out average's gain after it."""
    figure, axis = plt.subplots(figsize=FIGURE_SIZE)
    if run.train_accuracy:
        steps = sorted(run.train_accuracy)
        train = [run.train_accuracy[s] for s in steps]
        axis.plot(steps, train, color="black", linewidth=2, label="training example (accuracy)")
    for index, bench in enumerate(run.benchmarks):
        _accuracy_line(axis, run, bench, mode, f"{bench} (held-out)", f"C{index % 10}")
    post = run.post_saturation(mode)
    if post.step is not None:
        gains = [f"{what} {100 * gain:+.1f}" for what, gain in (("to best", post.gain_to_best),
                 ("to last", post.gain_to_last)) if gain is not None]  # fmt: skip
        note = f"held-out average after it: {', '.join(gains)} points" if gains else "no evaluation after it"
        axis.axvline(post.step, color="gray", linestyle="--", label=f"100% training accuracy at step {post.step}")
        axis.text(post.step, 0.94, f" {note}", va="top", fontsize=8, color="dimgray")
    title = f"Run {run.name}: accuracy by step ({mode} grading, 95% intervals)"
    label_axes(axis, title, "accuracy (share correct)", ACCURACY_LIMITS)
    axis.legend(fontsize=7, loc="center right")
    save_figure(figure, path)


def overlay_figure(runs: list[RunResult], mode: str, path: Path) -> None:
    """Average held-out accuracy (with 95% intervals) and training-example accuracy (dotted) of every run."""
    figure, axis = plt.subplots(figsize=FIGURE_SIZE)
    for index, run in enumerate(runs):
        colour = f"C{index % 10}"
        _accuracy_line(axis, run, AVERAGE, mode, f"{run.name}: held-out average", colour)
        train = sorted(run.train_accuracy)
        axis.plot(
            train, [run.train_accuracy[s] for s in train], ":", color=colour, label=f"{run.name}: training example"
        )
    label_axes(axis, f"All runs: accuracy by step ({mode} grading, 95% intervals)", "accuracy (share correct)")
    axis.set_ylim(*ACCURACY_LIMITS)
    axis.legend(fontsize=7)
    save_figure(figure, path)


def _mean_by_step(axis, runs: list[RunResult], metric: str) -> None:
    for index, run in enumerate(runs):
        steps = sorted(s for s in run.evals if run.benchmark_mean(s, metric) is not None)
        axis.plot(steps, [run.benchmark_mean(s, metric) for s in steps], "o-", color=f"C{index % 10}", label=run.name)


def shape_figure(runs: list[RunResult], path: Path) -> None:
    """Boxed, cut and self-reflection shares (mean over benchmarks) by step, every run."""
    figure, axes = plt.subplots(1, 3, figsize=(15, 4.5), sharey=True)
    for axis, metric, title in (
        (axes[0], "boxed_share", "Responses with a final \\boxed{} with content"),
        (axes[1], "cut_share", "Responses cut by the token budget"),
        (axes[2], "reflection_share", "Responses that self-reflect\n(rethink/recheck/recalculate)"),
    ):
        _mean_by_step(axis, runs, metric)
        label_axes(axis, title, "share of responses", ACCURACY_LIMITS)
    axes[0].legend(fontsize=7)
    save_figure(figure, path)


def length_figure(runs: list[RunResult], path: Path) -> None:
    """Mean response length (tokens, mean over benchmarks) by step, every run."""
    figure, axis = plt.subplots(figsize=FIGURE_SIZE)
    _mean_by_step(axis, runs, "mean_response_length")
    label_axes(axis, "Mean response length by step", "response length (tokens)")
    axis.legend(fontsize=7)
    save_figure(figure, path)
