"""Report: a table by step (training-example accuracy, held-out accuracy, boxed share) and a plot."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from rlvr.data import atomic_write_text, read_json, read_records, read_rows, write_json  # noqa: E402


def _train_accuracy_by_step(train_log: list[dict]) -> dict[int, float]:
    return {int(entry["step"]): float(entry["reward"]) for entry in train_log}


def plot(train_log: list[dict], evaluations: list[dict], path: str | Path, mode: str) -> None:
    """Training-example accuracy and held-out accuracy by step, in one PNG."""
    train = _train_accuracy_by_step(train_log)
    figure, axis = plt.subplots(figsize=(7, 4))
    axis.plot(list(train), list(train.values()), label="training example accuracy (reward)", color="tab:orange")
    steps = [e["step"] for e in evaluations]
    other = "lenient" if mode == "strict" else "strict"
    for grading, style, colour in ((mode, "o-", "tab:blue"), (other, "s--", "tab:green")):
        accuracy = [e[f"accuracy_{grading}"] for e in evaluations]
        axis.plot(steps, accuracy, style, label=f"held-out accuracy ({grading})", color=colour)
    axis.plot(steps, [e["boxed_share"] for e in evaluations], "^:", label="held-out boxed share", color="gray")
    axis.set_xlabel("training step")
    axis.set_ylabel("share")
    axis.set_ylim(-0.02, 1.02)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def table_rows(train_log: list[dict], evaluations: list[dict]) -> list[dict]:
    """One row per evaluated step, with the training reward logged at that step (None at step 0)."""
    train = _train_accuracy_by_step(train_log)
    return [
        {
            "step": e["step"],
            "train_accuracy": train.get(e["step"]),
            "accuracy_strict": e["accuracy_strict"],
            "accuracy_lenient": e["accuracy_lenient"],
            "boxed_share": e["boxed_share"],
            "mean_response_length": e["mean_response_length"],
        }
        for e in evaluations
    ]


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def markdown(rows: list[dict], selection: list[dict], mode: str, num_problems: int, reward: str) -> str:
    """The report text."""
    base = rows[0]
    best = max(rows[1:], key=lambda r: (r[f"accuracy_{mode}"], -r["step"]))
    gain = best[f"accuracy_{mode}"] - base[f"accuracy_{mode}"]
    examples = list(dict.fromkeys((row["id"], row["problem"], row["answer"]) for row in selection))
    lines = [
        "# 1-shot RLVR report",
        "",
        "Training example(s): " + "; ".join(f"`{i}` {p} (answer {a})" for i, p, a in examples),
        "",
        f"Training reward: `{reward}`.",
        "",
        f"Held-out accuracy ({mode} grading, {num_problems} problems): base (step 0) "
        f"{base[f'accuracy_{mode}']:.3f}, best checkpoint (step {best['step']}) {best[f'accuracy_{mode}']:.3f}, "
        f"change {gain:+.3f}.",
        "",
        "Grading: `strict` counts only the last `\\boxed{}` (the paper's reward); `lenient` falls back to "
        '"the answer is ..." or the last number when there is no box.',
        "",
        "| step | training-example accuracy | held-out accuracy (strict) | held-out accuracy (lenient) "
        "| boxed share | mean response length |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row[k]) for k in row) + " |")
    lines += ["", "![training and held-out accuracy by step](accuracy_by_step.png)", ""]
    return "\n".join(lines)


def run_report(
    train_dir: str | Path,
    eval_dir: str | Path,
    selection_path: str | Path,
    out_dir: str | Path,
    mode: str,
    reward: str,
) -> Path:
    """The report stage: ``report.md``, ``accuracy_by_step.png`` and ``by_step.json`` (DVC plot) in ``out_dir``."""
    out_dir = Path(out_dir)
    train_log = read_records(Path(train_dir) / "train_log.jsonl")
    evaluations = read_json(Path(eval_dir) / "by_step.json")
    rows = table_rows(train_log, evaluations)
    plot(train_log, evaluations, out_dir / "accuracy_by_step.png", mode)
    write_json(out_dir / "by_step.json", rows)
    report = markdown(rows, read_rows(selection_path), mode, int(evaluations[0]["num_problems"]), reward)
    atomic_write_text(out_dir / "report.md", report)
    return out_dir / "report.md"
