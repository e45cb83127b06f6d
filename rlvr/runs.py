"""Results of pipeline runs in one shape, read from a run's output files or from MLflow.

A run is one model x one example set x one algorithm: its training-example accuracy by step and its
evaluation metrics by step (``<benchmark>.<metric>``). A run whose stages are missing is kept, marked partial.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path

from rlvr.config import Params, parse_ranks
from rlvr.files import EvalDir, read_json, read_records, read_rows
from rlvr.grading import GRADING_MODES
from rlvr.lineage import git_commit
from rlvr.metrics import AVERAGE, accuracy_names, best_row, metric_name, scoped

EXCLUDED_SUFFIXES = (".num_problems", ".samples_per_problem")
STAYS_AT = 0.9  # the training accuracy a run must keep from some step on to count as saturated for good


@dataclass
class RunResult:
    """One run's results; ``partial`` says what is missing (None when complete)."""

    name: str
    model: str
    examples: str
    reward: str = ""
    algorithm: str = "grpo"
    setting: str | None = None  # the paper's name for the training set, where it applies
    max_new_tokens: int | None = None  # the evaluation's token budget
    reference_model: str | None = None  # whose paper numbers it is set against (None: model)
    train_accuracy: dict[int, float] = field(default_factory=dict)
    evals: dict[int, dict[str, float]] = field(default_factory=dict)
    partial: str | None = None
    computed_on: list[str] = field(default_factory=list)  # the machines and precisions of its results
    commit: str = ""  # the code's commit (``-dirty``: with uncommitted changes)

    @property
    def benchmarks(self) -> list[str]:
        """Evaluated benchmarks, in the order first seen (``average`` not included)."""
        names = [key.split(".")[0] for metrics in self.evals.values() for key in metrics]
        return [name for name in dict.fromkeys(names) if name != AVERAGE]

    def value(self, step: int, benchmark: str, metric: str) -> float | None:
        return self.evals.get(step, {}).get(scoped(benchmark, metric))

    def accuracy(self, step: int | None, benchmark: str, mode: str) -> tuple[float, float, float] | None:
        """``(accuracy, low, high)`` (95% interval) of ``benchmark`` at ``step``; None where not evaluated."""
        if step is None:
            return None
        value, low, high = (self.value(step, benchmark, name) for name in accuracy_names(mode))
        if value is None:
            return None
        return value, value if low is None else low, value if high is None else high

    def paired(self, step: int | None, benchmark: str, mode: str) -> tuple[float, float] | None:
        """``(gain over the base model, p-value of the paired test)`` at ``step``; None where not computed."""
        if step is None:
            return None
        gain, p_value = (self.value(step, benchmark, metric_name(kind, mode)) for kind in ("gain", "p_value"))
        return None if gain is None or p_value is None else (gain, p_value)

    def benchmark_mean(self, step: int, metric: str) -> float | None:
        """The mean of ``metric`` over the evaluated benchmarks at ``step`` (None if none has it)."""
        values = [v for b in self.benchmarks if (v := self.value(step, b, metric)) is not None]
        return statistics.fmean(values) if values else None

    def best_step(self, mode: str) -> int | None:
        """The best checkpoint under ``mode`` (``rlvr.metrics.best_row``: the paper's reported checkpoint)."""
        best = best_row([{"step": step, **metrics} for step, metrics in self.evals.items()], mode)
        return None if best is None else best["step"]

    def saturation_step(self) -> int | None:
        """The first step at which the training example's accuracy reaches 100% (:func:`saturation_step`)."""
        return saturation_step(self.train_accuracy)

    def stays_saturated_from(self, level: float = STAYS_AT) -> int | None:
        """The first step from which the training example's accuracy stays at ``level`` or more to the end of
        training (one lucky step does not count); None if its last step is below."""
        found = None
        for step, value in sorted(self.train_accuracy.items(), reverse=True):
            if value < level:
                break
            found = step
        return found

    def post_saturation(self, mode: str) -> PostSaturation:
        """The held-out average's change after the training example saturated: from the last evaluation at or
        before the saturation step to the best checkpoint and to the last evaluation (each None where it is not
        after it, or nothing is evaluated)."""
        saturated, key = self.saturation_step(), metric_name("accuracy", mode)
        steps = sorted(s for s in self.evals if self.value(s, AVERAGE, key) is not None)
        before = [s for s in steps if saturated is not None and s <= saturated]
        if saturated is None or not before:
            return PostSaturation(saturated, self.stays_saturated_from())
        start = self.value(before[-1], AVERAGE, key)

        def gain(step: int | None) -> float | None:
            return None if step is None or step <= before[-1] else self.value(step, AVERAGE, key) - start

        best, last = self.best_step(mode), steps[-1]
        return PostSaturation(saturated, self.stays_saturated_from(), before[-1], best, gain(best), last, gain(last))


@dataclass(frozen=True)
class PostSaturation:
    """Post-saturation generalization of a run: the saturation step (100% training accuracy), the first step from
    which training accuracy stays at least 90%, and the held-out average's gain from the last evaluation at or
    before saturation (``from_step``) to the best checkpoint and to the last evaluated step."""

    step: int | None
    stays_from: int | None = None
    from_step: int | None = None
    best_step: int | None = None
    gain_to_best: float | None = None
    last_step: int | None = None
    gain_to_last: float | None = None


PAPER_REWARDS = ("accuracy", "accuracy_deepscaler")  # the paper's 0/1 reward on the last box (ours, its scorer)


def paper_setting(pool: str, method: str, ranks: str, reward: str, whole_pool: bool = False) -> str | None:
    """The paper's label of a training set from DSR-sub: ``dsr_sub`` for the whole pool, else the examples selected
    by the variance score, e.g. ``{pi_1, pi_13}``."""
    if pool != "dsr_sub" or reward not in PAPER_REWARDS or "last" in ranks:
        return None
    if whole_pool:
        return "dsr_sub"
    return "{" + ", ".join(f"pi_{r}" for r in parse_ranks(ranks)) + "}" if method == "std" else None


def read_train_log(train_dir: str | Path) -> list[dict] | None:
    """A training's per-step log (``train_log.jsonl``), None where it has not written one."""
    path = Path(train_dir) / "train_log.jsonl"
    return read_records(path) if path.is_file() else None


def train_accuracy(train_log: list[dict]) -> dict[int, float]:
    """The training example's accuracy by step (graded on its own, whatever the reward)."""
    return {int(row["step"]): float(row["accuracy"]) for row in train_log if "accuracy" in row}


def saturation_step(accuracy: dict[int, float]) -> int | None:
    """The first step at which the training example's accuracy reaches 100% (saturation)."""
    return next((step for step, value in sorted(accuracy.items()) if value >= 1.0), None)


def evals_from_rows(rows: list[dict]) -> dict[int, dict[str, float]]:
    """``{step: {"<benchmark>.<metric>": value}}`` from ``by_step.json`` rows (or flat MLflow metrics)."""

    def kept(key: str, value) -> bool:
        return (
            "." in key and ".by_" not in key and not key.endswith(EXCLUDED_SUFFIXES) and isinstance(value, float | int)
        )

    return {int(row["step"]): {key: float(v) for key, v in row.items() if kept(key, v)} for row in rows}


def from_outputs(
    params: Params, train_dir: str | Path, eval_dir: str | Path, selection_path: str | Path, name: str | None = None
) -> RunResult:
    """The run of this pipeline, from its output files; a training still running is marked partial."""
    selection = read_rows(selection_path)
    selected = list(dict.fromkeys(row["id"] for row in selection))
    examples = ",".join(selected)
    whole_pool = Path(params.paths.pool).is_file() and len(selected) == len(read_rows(params.paths.pool))
    train_log = read_train_log(train_dir)
    return RunResult(
        name=name or f"{Path(params.model.source).name} · {examples}",
        model=params.model.source,
        examples=examples,
        reward=",".join(params.train.rewards),
        algorithm=params.train.algorithm,
        setting=paper_setting(
            params.data.pool, params.select.method, params.select.ranks, ",".join(params.train.rewards), whole_pool
        ),
        max_new_tokens=params.evaluate.max_new_tokens,
        reference_model=params.report.reference_model,
        train_accuracy=train_accuracy(train_log or []),
        evals=evals_from_rows(read_json(EvalDir(eval_dir).by_step)),
        partial=None if train_log is not None else f"training in {train_dir} has not finished",
        computed_on=EvalDir(eval_dir).computed_on(),
        commit=git_commit(),
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
    select_metrics = stages["select"].data.metrics if "select" in stages else {}
    whole_pool = select_metrics.get("selected_examples", -1) == select_metrics.get("pool_examples")
    model = param("model", "source", "?")
    reward = param("train", "reward")
    result = RunResult(
        name=f"{Path(model).name} · {examples} ({parent.info.run_name})",
        model=model,
        examples=examples,
        reward=reward,
        algorithm=param("train", "algorithm", "grpo"),
        max_new_tokens=int(budget) if (budget := param("evaluate", "max_new_tokens")) else None,
        reference_model=None if (ref := param("report", "reference_model")) in ("", "None") else ref,
        setting=paper_setting(
            param("data", "pool"), param("select", "method"), param("select", "ranks", "1"), reward, whole_pool
        )
        if "select" in stages
        else None,
        commit=parent.data.tags.get("rlvr.git_commit", ""),
    )
    if "train" in stages:
        history = client.get_metric_history(stages["train"].info.run_id, "train.accuracy")
        result.train_accuracy = {m.step: m.value for m in history}
    missing = [s for s in ("train", "evaluate") if s not in stages]
    if "evaluate" in stages:
        run = stages["evaluate"]
        if on := run.data.tags.get("rlvr.computed_on"):
            result.computed_on = on.split("; ")
        rows: dict[int, dict] = {}
        for key in run.data.metrics:
            if ".by_" in key or key.endswith(EXCLUDED_SUFFIXES):
                continue
            for metric in client.get_metric_history(run.info.run_id, key):
                rows.setdefault(metric.step, {"step": metric.step})[key] = metric.value
        result.evals = evals_from_rows(list(rows.values()))
    if missing:
        result.partial = f"no {' or '.join(missing)} stage in MLflow run {parent.info.run_id}"
    return result


def summary(params: Params, run: RunResult) -> tuple[dict[str, str], dict[str, float]]:
    """What a pipeline (parent) run carries so that MLflow's runs table and compare view show it: the key
    params of the experiment and its summary metrics (base and best benchmark average per grading mode, best
    step, saturation step, post-saturation gain; and, in percent, base, best and gain under the headline grading:
    ``VIEW_METRICS``)."""
    config_file = Path(params.paths.model_dir) / "config.json"
    family = read_json(config_file).get("model_type", "?") if config_file.is_file() else "?"
    train = params.train
    values = {
        "model": params.model.source,
        "family": family,
        "template": params.model.template,
        "train_template": params.model.rollout_template,
        "examples": run.examples,
        "selection": params.select.method,
        "ranks": params.select.ranks,
        "algorithm": train.algorithm,
        "reward": ",".join(train.rewards),
        "learning_rate": train.learning_rate,
        "beta": train.beta,
        "entropy_coef": train.entropy_coef,
        "max_steps": train.max_steps,
        "rollouts_per_prompt": train.num_generations,
        "headline_mode": params.report.headline_mode,
    }
    metrics: dict[str, float] = {}
    headline = params.report.headline_mode
    best = run.best_step(headline)
    for mode in GRADING_MODES:
        for label, step in (("base", 0), ("best", best)):
            value = run.value(step, AVERAGE, metric_name("accuracy", mode)) if step is not None else None
            if value is not None:
                metrics[scoped(label, metric_name("accuracy", mode, scope=AVERAGE))] = value
    post = run.post_saturation(headline)
    extra = {
        "best.step": best,
        "saturation_step": post.step,
        "saturated_from_step": post.stays_from,
        "post_saturation_gain_to_best": post.gain_to_best,
        "post_saturation_gain_to_last": post.gain_to_last,
    }
    metrics |= {key: float(value) for key, value in extra.items() if value is not None}
    key = metric_name("accuracy", headline, scope=AVERAGE)
    base, top = (metrics.get(scoped(label, key)) for label in ("base", "best"))
    percent = {"base_pct": base, "best_pct": top, "gain_pts": None if None in (base, top) else top - base}
    metrics |= {key: round(100 * value, 2) for key, value in percent.items() if value is not None}
    return {f"rlvr.{key}": str(value) for key, value in values.items()}, metrics


def chart_series(run: RunResult, mode: str) -> dict[int, dict[str, float]]:
    """By step, what the curated chart view (``tracking.share_charts_view``) draws for a pipeline run: each
    benchmark's and the average's accuracy under ``mode`` with its interval, and the training example's accuracy
    (the runs table lists pipeline runs; their stage runs hold the same series)."""
    keys = [key for name in [AVERAGE, *run.benchmarks] for key in accuracy_names(mode, name)]
    series = {step: {key: row[key] for key in keys if row.get(key) is not None} for step, row in run.evals.items()}
    for step, accuracy in run.train_accuracy.items():
        series.setdefault(step, {})["train.accuracy"] = accuracy
    return series


# the runs table's metric columns (short names: the table cuts long ones), in percent as the report shows them:
# the benchmark average under the headline grading of the base model and the best checkpoint, their difference
VIEW_METRICS = ("base_pct", "best_pct", "gain_pts", "best.step", "saturation_step")
