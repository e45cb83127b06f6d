"""The history stage: every pool example's accuracy per epoch, ``{"<id>": [acc_epoch_0, acc_epoch_1, ...]}``.

Three sources (``history.source``):
- ``grpo`` (the paper's): GRPO on the whole pool; an example's accuracy in an epoch is the share of its
  rollouts graded correct. Under several processes every rank's rollouts are gathered, so the file is the
  same as with one process. With ``save_steps`` the run checkpoints (recorded rollouts included) and a
  rerun after an interruption resumes from the last complete checkpoint.
- ``file``: an existing history file (the official ``acc_step_*.json`` format), validated against the pool.
- ``pass_rate``: no training; the base model's pass rate over ``num_generations`` samples, as a
  one-epoch history (a cheap proxy for the ``pass_rate`` selection method).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from rlvr import tracking
from rlvr.config import HistoryConfig, ModelConfig, Params, to_dict
from rlvr.errors import InputError
from rlvr.files import content_hash, excluded_ids, read_json, read_rows, write_json
from rlvr.rewards import combined_reward
from rlvr.selection import id_order, validate_history
from rlvr.training import launch
from rlvr.training.algorithms import trainer_args
from rlvr.training.checkpoints import every_rank_saved, shared_resume_point
from rlvr.training.grpo import build_trainer
from rlvr.training.monitor import all_gather
from rlvr.training.plan import check_memory

logger = logging.getLogger(__name__)

RECORD_FILE = "rlvr_history_record.json"  # written into a checkpoint last: its presence marks it complete


class AccuracyRecorder:
    """Wraps a TRL reward function and records, per example id and epoch, the rewards of its rollouts.

    TRL calls the reward in every process with that process's share of the batch; the shares are
    gathered so every process holds the record of all rollouts.
    """

    def __init__(self, reward: Callable[..., list[float]]) -> None:
        self.reward = reward
        self.__name__ = reward.__name__  # TRL names the logged metric after the function
        self.totals: dict[str, dict[int, list[float]]] = defaultdict(dict)  # id -> epoch -> [sum, count]

    def __call__(self, completions: list, id: list[str], trainer_state=None, **kwargs: Any) -> list[float]:  # noqa: A002
        rewards = self.reward(completions, id=id, trainer_state=trainer_state, **kwargs)
        epoch = math.floor(trainer_state.epoch) if trainer_state is not None else 0
        for rank_epoch, ids, values in all_gather((epoch, [str(i) for i in id], [float(r) for r in rewards])):
            for example_id, value in zip(ids, values, strict=True):
                total = self.totals[example_id].setdefault(rank_epoch, [0.0, 0])
                total[0] += value
                total[1] += 1
        return rewards

    def history(self) -> dict[str, list[float]]:
        """``{id: [acc_epoch_0, ...]}``: the share of each epoch's rollouts graded correct, ids in pool order."""
        return {
            example_id: [total / count for _, (total, count) in sorted(by_epoch.items())]
            for example_id, by_epoch in sorted(self.totals.items(), key=lambda item: id_order(item[0]))
        }

    def rollouts(self) -> int:
        """How many rollouts were recorded."""
        return sum(count for by_epoch in self.totals.values() for _, count in by_epoch.values())

    def state(self) -> dict[str, dict[str, list[float]]]:
        return {example_id: {str(e): t for e, t in by_epoch.items()} for example_id, by_epoch in self.totals.items()}

    def load_state(self, state: dict[str, dict[str, list[float]]]) -> None:
        self.totals = defaultdict(dict, {i: {int(e): list(t) for e, t in by.items()} for i, by in state.items()})


class RecordCheckpoint(TrainerCallback):
    """Saves the recorder's state into each checkpoint, after the trainer has written the rest of it."""

    def __init__(self, recorder: AccuracyRecorder) -> None:
        self.recorder = recorder

    def on_save(self, args, state, control, **kwargs):
        if every_rank_saved(state):
            write_json(Path(args.output_dir) / f"checkpoint-{state.global_step}" / RECORD_FILE, self.recorder.state())


def grpo_history(config: HistoryConfig, model_dir, pool: list[dict], prompt: ModelConfig, work_dir) -> dict:
    """GRPO over ``pool``, resuming from the last complete checkpoint in ``work_dir`` if there is one."""
    prompts_per_step = config.completions_per_step // config.num_generations
    if len(pool) % prompts_per_step:
        logger.warning(
            "pool size %d is not a multiple of %d prompts per step: some examples skip an epoch",
            len(pool),
            prompts_per_step,
        )
    recorder = AccuracyRecorder(combined_reward(config.rewards, config.reward_weights))
    args = trainer_args(config, work_dir, save=config.save_steps > 0, resumable=True, keep=2)  # first: the group
    fingerprint = content_hash(to_dict(config), to_dict(prompt), pool, str(model_dir))
    resume = shared_resume_point(work_dir, fingerprint, RECORD_FILE)  # decided by the main process, for every rank
    if resume is not None:
        logger.info("resuming the history run from %s", resume)
        recorder.load_state(read_json(resume / RECORD_FILE))
    trainer = build_trainer(model_dir, pool, args, prompt, recorder, "history.", [RecordCheckpoint(recorder)])
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    tracking.log_metrics({"rollouts_recorded": recorder.rollouts()})
    return recorder.history()


def pass_rate_history(config: HistoryConfig, model_dir, pool: list[dict], prompt: ModelConfig) -> dict:
    """The base model's share of ``num_generations`` samples graded correct, per example, as ``[rate]``."""
    from rlvr.backends import TransformersBackend
    from rlvr.metrics import Protocol
    from rlvr.templates import get_template

    backend = TransformersBackend(model_dir, config.per_device_train_batch_size)
    template = get_template(prompt.rollout_template)
    prompts = [template.render(row["problem"], prompt, backend.tokenizer) for row in pool]
    protocol = Protocol(config.num_generations, config.temperature, 1.0)
    samples = backend.generate(prompts, protocol, config.max_completion_length, config.seed)
    reward = combined_reward(config.rewards, config.reward_weights)
    history = {}
    for row, generated in zip(pool, samples, strict=True):
        completions, k = [sample.text for sample in generated], len(generated)
        values = reward(completions, answer=[row["answer"]] * k, id=[row["id"]] * k, trainer_state=None)
        history[row["id"]] = [sum(values) / k]
    return history


def import_history(path: str | Path, pool: list[dict], excluded: Iterable[str] = ()) -> dict[str, list[float]]:
    """A history file, keys as strings, checked against the pool's ids and for values in [0, 1]."""
    return validate_history(read_json(path), {row["id"] for row in pool}, str(path), excluded)


def run_history(
    config: HistoryConfig,
    model_dir: str | Path,
    pool_path: str | Path,
    prompt: ModelConfig,
    out_path: str | Path,
    work_dir: str | Path,
    excluded: Iterable[str] = (),
) -> dict[str, list[float]]:
    """The history stage (see module docstring); the main process writes ``out_path``.

    ``excluded``: pool ids the data stage left out (no gold answer); an imported history may hold them.
    """
    pool = read_rows(pool_path)
    if not pool:
        raise InputError(f"pool is empty: {pool_path}")
    if config.source == "file":
        history = import_history(config.file, pool, excluded)
    elif config.source == "pass_rate":
        history = pass_rate_history(config, model_dir, pool, prompt)
    else:
        history = grpo_history(config, model_dir, pool, prompt, work_dir)
    if tracking.is_main_process():
        write_json(out_path, history)
        shutil.rmtree(work_dir, ignore_errors=True)  # checkpoints only serve resumption
    return history


def run(params: Params, parent_id: str | None = None) -> dict[str, list[float]]:
    """The history stage: ``paths.pool`` -> ``paths.history`` (GRPO under ``accelerate launch`` with several
    processes: the stage runs its own entry point again, ``pipelines.history``)."""
    paths = params.paths
    if params.history.source == "grpo" and "LOCAL_RANK" not in os.environ:
        check_memory(params, "history")  # before any GPU is touched
    if params.history.source == "grpo" and launch.needs_launch(params.history):
        launch.relaunch(params.history, "pipelines.history", params, parent_id)
        return read_json(paths.history)
    with tracking.stage_run("history", params, parent_id):
        excluded = excluded_ids(paths.data_manifest)
        result = run_history(
            params.history, paths.model_dir, paths.pool, params.model, paths.history, paths.history_work, excluded
        )
        tracking.log_metrics({"examples": len(result), "max_epochs": max(map(len, result.values()), default=0)})
        tracking.log_artifact(paths.history)
        return result
