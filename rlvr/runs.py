"""Results of pipeline runs in one shape, read from a run's output files or from MLflow.

A run is one model x one example set x one algorithm: its training-example accuracy by step and its
evaluation metrics by step (``<benchmark>.<metric>``). A run whose stages are missing is kept, marked partial.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path

from rlvr.config import Params
from rlvr.data import read_json, read_records, read_rows
from rlvr.metrics import best_row
from rlvr.registry import BENCHMARKS
from rlvr.select import parse_ranks

EXCLUDED_SUFFIXES = (".num_problems", ".samples_per_problem")


@dataclass
class RunResult:
    """One run's results; ``partial`` says what is missing (None when complete)."""

    name: str
    model: str
    examples: str
    reward: str = ""
    algorithm: str = "grpo"
    setting: str | None = None  # the paper's name for the training set, where it applies
    train_accuracy: dict[int, float] = field(default_factory=dict)
    evals: dict[int, dict[str, float]] = field(default_factory=dict)
    partial: str | None = None

    @property
    def benchmarks(self) -> list[str]:
        """Evaluated benchmarks, in the order first seen (``average`` not included)."""
        names = [key.split(".")[0] for metrics in self.evals.values() for key in metrics]
        return [name for name in dict.fromkeys(names) if name != "average"]

    def value(self, step: int, benchmark: str, metric: str) -> float | None:
        return self.evals.get(step, {}).get(f"{benchmark}.{metric}")

    def benchmark_mean(self, step: int, metric: str) -> float | None:
        """The mean of ``metric`` over the evaluated benchmarks at ``step`` (None if none has it)."""
        values = [v for b in self.benchmarks if (v := self.value(step, b, metric)) is not None]
        return statistics.fmean(values) if values else None

    def best_step(self, mode: str) -> int | None:
        """The best checkpoint under ``mode`` (``rlvr.metrics.best_row``: the paper's reported checkpoint)."""
        best = best_row([{"step": step, **metrics} for step, metrics in self.evals.items()], mode)
        return None if best is None else best["step"]

    def saturation_step(self) -> int | None:
        """The first step where the training example's accuracy reaches 100%."""
        return next((s for s, v in sorted(self.train_accuracy.items()) if v >= 1.0), None)


PAPER_REWARDS = ("accuracy", "accuracy_deepscaler")  # the paper's 0/1 reward on the last box (ours, its scorer)


def paper_setting(pool: str, method: str, ranks: str, reward: str) -> str | None:
    """The paper's label of a training set selected from DSR-sub by the variance score, e.g. ``{pi_1, pi_13}``."""
    if pool != "dsr_sub" or method != "std" or reward not in PAPER_REWARDS:
        return None
    return "{" + ", ".join(f"pi_{r}" for r in parse_ranks(ranks)) + "}"


def _benchmark_key(name: str, test_dataset: str) -> str:
    """The held-out ``test`` set is reported under its dataset's name when it is a registry benchmark."""
    return test_dataset if name == "test" and test_dataset in BENCHMARKS else name


def evals_from_rows(rows: list[dict], test_dataset: str) -> dict[int, dict[str, float]]:
    """``{step: {"<benchmark>.<metric>": value}}`` from ``by_step.json`` rows (or flat MLflow metrics)."""
    evals: dict[int, dict[str, float]] = {}
    for row in rows:
        metrics = {}
        for key, value in row.items():
            if "." not in key or ".by_" in key or key.endswith(EXCLUDED_SUFFIXES) or not isinstance(value, float | int):
                continue
            bench, metric = key.split(".", 1)
            metrics[f"{_benchmark_key(bench, test_dataset)}.{metric}"] = float(value)
        evals[int(row["step"])] = metrics
    return evals


def from_outputs(
    params: Params, train_dir: str | Path, eval_dir: str | Path, selection_path: str | Path, name: str | None = None
) -> RunResult:
    """The run of this pipeline, from its output files; a training still running is marked partial."""
    selection = read_rows(selection_path)
    examples = ",".join(dict.fromkeys(row["id"] for row in selection))
    log_path = Path(train_dir) / "train_log.jsonl"
    train_log = read_records(log_path) if log_path.is_file() else []
    return RunResult(
        name=name or f"{Path(params.model.source).name} · {examples}",
        model=params.model.source,
        examples=examples,
        reward=params.train.reward,
        algorithm=params.train.algorithm,
        setting=paper_setting(params.data.pool, params.select.method, params.select.ranks, params.train.reward),
        train_accuracy={int(e["step"]): float(e["reward"]) for e in train_log},
        evals=evals_from_rows(read_json(Path(eval_dir) / "by_step.json"), params.data.test),
        partial=None if log_path.is_file() else f"training in {train_dir} has not finished",
    )


def from_mlflow(client, experiment_ids: list[str], filter_string: str = "", exclude: set[str] = frozenset()):
    """Every pipeline run (parent run) of the experiments, read from its stage runs; partial ones marked."""
    parents = client.search_runs(
        experiment_ids, filter_string=" and ".join(f for f in ("tags.`rlvr.runner` != ''", filter_string) if f)
    )
    results = []
    for parent in sorted(parents, key=lambda r: r.info.start_time):
        if parent.info.run_id in exclude:
            continue
        children = client.search_runs(experiment_ids, f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
        stages = {run.data.tags.get("rlvr.stage"): run for run in children}
        results.append(_from_stage_runs(client, parent, stages))
    return results


def _from_stage_runs(client, parent, stages: dict) -> RunResult:
    def param(stage: str, key: str, default: str = "") -> str:
        return stages[stage].data.params.get(key, default) if stage in stages else default

    examples = stages["select"].data.tags.get("rlvr.selected_ids", "?") if "select" in stages else "?"
    model = param("model", "source", "?")
    reward = param("train", "reward")
    result = RunResult(
        name=f"{Path(model).name} · {examples} ({parent.info.run_name})",
        model=model,
        examples=examples,
        reward=reward,
        algorithm=param("train", "algorithm", "grpo"),
        setting=paper_setting(param("data", "pool"), param("select", "method"), param("select", "ranks", "1"), reward)
        if "select" in stages
        else None,
    )
    if "train" in stages:
        history = client.get_metric_history(stages["train"].info.run_id, "train.reward")
        result.train_accuracy = {m.step: m.value for m in history}
    missing = [s for s in ("train", "evaluate") if s not in stages]
    if "evaluate" in stages:
        run = stages["evaluate"]
        rows: dict[int, dict] = {}
        for key in run.data.metrics:
            if ".by_" in key or key.endswith(EXCLUDED_SUFFIXES):
                continue
            for metric in client.get_metric_history(run.info.run_id, key):
                rows.setdefault(metric.step, {"step": metric.step})[key] = metric.value
        result.evals = evals_from_rows(list(rows.values()), param("data", "test"))
    if missing:
        result.partial = f"no {' or '.join(missing)} stage in MLflow run {parent.info.run_id}"
    return result
