"""The trainers' callbacks: every trainer log entry to MLflow at its step (:class:`MlflowStepLogger`), rollout
metrics the trainers do not log themselves, and samples of the training completions (:class:`RolloutMonitor`).

Both trainers (GRPO, PPO) grade rollouts through a :class:`RolloutMonitor`'s reward wrapper, so the monitor
sees every completion this process generated since the last log entry; at each log entry the monitors of all
processes gather theirs (rank by rank), so what it logs covers every rank's rollouts. It adds ``accuracy``
(the share of the rollouts its accuracy function grades correct: the training example's accuracy, whatever the
reward), ``boxed_share``, ``rollout_tokens_per_second`` (all processes) and, where the trainer has none,
``step_time`` and ``reward``; every ``sample_steps`` steps it writes ``samples/step-N.jsonl`` (completion,
reward, accuracy, boxed) and logs it to MLflow, to inspect e.g. the late "gibberish" phase of 1-shot training.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import mlflow
from transformers import TrainerCallback

from rlvr import tracking
from rlvr.files import write_rows
from rlvr.rewards import completion_text, last_boxed

SAMPLES_KEPT = 16  # completions per sample file


class MlflowStepLogger(TrainerCallback):
    """Logs every numeric trainer log entry to the active MLflow run at the trainer's global step.

    A resumed run first logs the entries restored from its checkpoint, so its MLflow run holds every step.
    """

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix

    def _log(self, logs: dict, step: int) -> None:
        metrics = {
            f"{self.prefix}{key}".replace("/", "."): float(value)
            for key, value in logs.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "step"
        }
        if metrics:
            tracking.log_metrics(metrics, step)

    def on_train_begin(self, args, state, control, **kwargs):
        if state.global_step and mlflow.active_run() is not None and state.is_world_process_zero:
            for entry in state.log_history:
                self._log(entry, int(entry.get("step", 0)))

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and mlflow.active_run() is not None and state.is_world_process_zero:
            self._log(logs, state.global_step)


def all_gather(item: Any) -> list[Any]:
    """``item`` from every process, rank by rank (one process: just ``item``)."""
    import torch

    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return [item]
    gathered: list[Any] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(gathered, item)
    return gathered


class RolloutMonitor(TrainerCallback):
    """Collects graded rollouts (see module docstring); ``observe`` is called once per graded batch."""

    def __init__(
        self, out_dir: str | Path, sample_steps: int = 0, accuracy: Callable[..., list[float]] | None = None
    ) -> None:
        self.samples_dir = Path(out_dir) / "samples"
        self.sample_steps = sample_steps
        self.accuracy = accuracy  # a TRL reward function grading correctness (None: the wrapped reward itself)
        self._rows: list[dict[str, Any]] = []
        self._tokens = 0
        self._since = time.perf_counter()

    def observe(
        self,
        completions: Sequence[str],
        rewards: Sequence[float],
        tokens: int,
        ids: Sequence = (),
        accuracies: Sequence[float] | None = None,
    ) -> None:
        ids = list(ids) or [None] * len(completions)
        accuracies = rewards if accuracies is None else accuracies
        for example_id, completion, reward, accuracy in zip(ids, completions, rewards, accuracies, strict=True):
            boxed = bool(last_boxed(completion))  # a final box with content: an echoed empty box is not one
            row = {"id": example_id, "reward": reward, "accuracy": accuracy, "boxed": boxed, "completion": completion}
            self._rows.append(row)
        self._tokens += tokens

    def wrap(self, reward: Callable[..., list[float]]) -> Callable[..., list[float]]:
        """``reward`` as a TRL reward function (same name) that also reports to this monitor."""

        def monitored(completions: list, completion_ids: list | None = None, **kwargs: Any) -> list[float]:
            values = reward(completions, completion_ids=completion_ids, **kwargs)
            tokens = sum(len(ids) for ids in completion_ids) if completion_ids is not None else 0
            texts = [completion_text(c) for c in completions]
            graded = None
            if self.accuracy is not None and self.accuracy is not reward:
                graded = [float(v) for v in self.accuracy(completions, completion_ids=completion_ids, **kwargs)]
            self.observe(texts, [float(v or 0.0) for v in values], tokens, kwargs.get("id") or (), graded)
            return values

        monitored.__name__ = getattr(reward, "__name__", type(reward).__name__)
        return monitored

    def step_metrics(self, logs: dict[str, float]) -> tuple[dict[str, float], list[dict[str, Any]]]:
        """The metrics of the rollouts of every process since the last call, and those rollouts (this process's
        first, in a single process run; rank by rank with several); empties the buffer. Every process calls it at
        the same log entry (it gathers across them)."""
        elapsed = max(time.perf_counter() - self._since, 1e-9)
        parts = all_gather((self._rows, self._tokens))
        rows, tokens = [row for part, _ in parts for row in part], sum(count for _, count in parts)
        self._rows, self._tokens, self._since = [], 0, time.perf_counter()
        if not rows:
            return {}, []
        extra = {
            "accuracy": statistics.fmean(row["accuracy"] for row in rows),
            "boxed_share": statistics.fmean(row["boxed"] for row in rows),
            "rollout_tokens_per_second": tokens / logs.get("step_time", elapsed),
        }
        if "step_time" not in logs:
            extra["step_time"] = elapsed
        if "reward" not in logs:
            extra["reward"] = statistics.fmean(row["reward"] for row in rows)
        return extra, rows

    def on_train_begin(self, args, state, control, **kwargs):
        self._since = time.perf_counter()

    def on_log(self, args, state, control, logs=None, **kwargs):
        extra, rows = self.step_metrics(logs or {})
        if not extra:
            return
        logs.update(extra)  # seen by the callbacks after this one (the MLflow logger)
        if state.log_history:
            state.log_history[-1].update(extra)  # kept in the step log and in checkpoints
        step = state.global_step
        if self.sample_steps and step % self.sample_steps == 0 and tracking.is_main_process():
            path = self.samples_dir / f"step-{step}.jsonl"
            write_rows(path, [{"step": step, **row} for row in rows[:SAMPLES_KEPT]])
            tracking.log_artifact(path, "samples")
