"""The train stage: an RL algorithm (``rlvr.training.algorithms``: GRPO, PPO, entropy minimisation) on the selected
rows, resumable, with per-step metrics and checkpoints."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from rlvr import tracking
from rlvr.config import ModelConfig, Params, TrainConfig, to_dict
from rlvr.errors import ConfigError, InputError
from rlvr.files import content_hash, file_sha256, read_records, read_rows, write_rows
from rlvr.rewards import get_reward
from rlvr.training import launch
from rlvr.training.algorithms import get_algorithm, trainer_args
from rlvr.training.checkpoints import (
    MarkCheckpoint,
    checkpoints,
    drop_resume_state,
    has_resume_state,
    mark_finished,
    shared_resume_point,
    writer_lock,
)
from rlvr.training.monitor import RolloutMonitor
from rlvr.training.plan import GPU_GIB, Machine, check_train, cuda_machine, train_plan

# Settings that say how long a run goes and what it keeps, not what it is: a rerun that changes only these
# continues the same run (more steps resume from its last checkpoint).
NOT_IN_RUN_IDENTITY = ("max_steps", "save_steps", "sample_steps", "keep_resume_state")

logger = logging.getLogger(__name__)


def apply_label(rows: list[dict], label: str | dict[str, str] | None) -> list[dict]:
    """``rows`` with their ``answer`` replaced by ``label`` (one for all rows, or ``{id: label}``)."""
    if label is None:
        return rows
    labels = {str(k): str(v) for k, v in label.items()} if isinstance(label, dict) else {r["id"]: label for r in rows}
    unknown = set(labels) - {row["id"] for row in rows}
    if unknown:
        raise ConfigError(f"train.label: ids {sorted(unknown)} are not in the training rows")
    for example_id, new in labels.items():
        gold = next(row["answer"] for row in rows if row["id"] == example_id)
        logger.warning("training example %s on label %r instead of its gold answer %r", example_id, new, gold)
    return [{**row, "answer": labels.get(row["id"], row["answer"]), "gold_answer": row["answer"]} for row in rows]


def effective_config(params: Params, gpu_memory_gib: float = GPU_GIB) -> dict[str, Any]:
    """What the train stage of ``params`` runs with: our settings, the batch per step, the launch, the full TRL
    trainer configuration (as JSON-ready values) and the memory plan: for the GPUs torch sees, else for
    ``train.num_processes`` GPUs of ``gpu_memory_gib``."""
    from rlvr.templates import get_template
    from rlvr.training.launch import launch_command, needs_launch

    config = params.train
    completions = config.completions_per_step
    args = trainer_args(config, params.paths.train_dir)
    launch = launch_command(config, "pipelines.train", ["--params", "PARAMS"]) if needs_launch(config) else None
    machine = cuda_machine() or Machine(config.num_processes, gpu_memory_gib)
    return {
        "algorithm": config.algorithm,
        "model": params.model.source,
        "template": params.model.template,
        "train_template": params.model.rollout_template,
        "train_prompt": get_template(params.model.rollout_template).messages("{problem}", params.model),
        "headline_mode": params.report.headline_mode,
        "reward": config.reward,
        "policy_loss": config.policy_loss,
        "label": config.label,
        "batch": {
            "prompts_per_step": completions // config.num_generations,
            "rollouts_per_prompt": config.num_generations,
            "completions_per_step": completions,
            "processes": config.num_processes,
        },
        "launch": launch,
        "plan": train_plan(params, machine).as_dict(),
        "trainer": json.loads(json.dumps(args.to_dict(), default=str)),
    }


def run_identity(config: TrainConfig, prompt: ModelConfig, rows: list[dict], model_dir: str | Path) -> str:
    """The fingerprint of a training run: its settings (less ``NOT_IN_RUN_IDENTITY``), prompt, rows, base model."""
    settings = {k: v for k, v in to_dict(config).items() if k not in NOT_IN_RUN_IDENTITY}
    model_config = Path(model_dir) / "config.json"
    model_id = file_sha256(model_config) if model_config.is_file() else str(model_dir)
    return content_hash(settings, to_dict(prompt), rows, model_id)


def run_train(
    config: TrainConfig, model_dir: str | Path, train_path: str | Path, prompt: ModelConfig, out_dir: str | Path
) -> list[dict[str, float]]:
    """The train stage: resumes from the last complete checkpoint of the same run in ``out_dir`` if any (a
    folder of another run is moved aside); returns the per-step log (also written to ``train_log.jsonl``). With
    several processes the main one decides the resume point and every rank takes it."""
    out_dir = Path(out_dir)
    rows = apply_label(read_rows(train_path), config.label)
    identity = run_identity(config, prompt, rows, model_dir)
    algorithm = get_algorithm(config.algorithm)
    args = trainer_args(config, out_dir)  # first: it sets up the processes' group, which the resume point is shared in
    resume = shared_resume_point(out_dir, identity, restart=not algorithm.resumable)
    deepspeed = args.deepspeed_plugin is not None
    if resume is not None:
        logger.info("resuming the train run from %s", resume)
        if deepspeed and not any(resume.glob("global_step*")):
            raise InputError(
                f"{resume} has no DeepSpeed resume state (global_step*): a DeepSpeed run continues only from a "
                f"checkpoint that kept it; move {out_dir} aside to train afresh"
            )
        if not has_resume_state(resume):
            logger.warning(
                "%s has no optimizer state (dropped when its training finished; train.keep_resume_state keeps "
                "it): continuing from its weights with a fresh optimizer",
                resume,
            )
    monitor = RolloutMonitor(out_dir, config.sample_steps, accuracy=get_reward(config.accuracy_measure))
    rewards = [get_reward(name) for name in config.rewards]
    rewards[0] = monitor.wrap(rewards[0])  # the monitor sees every completion through the first reward
    callbacks = [monitor, MarkCheckpoint(identity)]
    if config.label is not None:
        tracking.set_tag("rlvr.label_override", json.dumps(config.label))
    trainer = algorithm.build(model_dir, rows, config, args, prompt, rewards, "train.", callbacks)
    tracking.log_dict(json.loads(json.dumps(trainer.args.to_dict(), default=str)), "config/trainer.json")
    if algorithm.resumable:
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    else:
        trainer.train()
    steps = [
        {"step": entry["step"], **{k: float(v) for k, v in entry.items() if isinstance(v, (int, float))}}
        for entry in trainer.state.log_history
        if "reward" in entry
    ]
    if tracking.is_main_process():
        write_rows(out_dir / "train_log.jsonl", steps)
        # every checkpoint keeps its model; the newest its optimizer state only where asked, or under DeepSpeed,
        # which cannot continue from weights alone (a longer run resumes from its global_step* folder)
        if not (config.keep_resume_state or deepspeed) and (done := checkpoints(out_dir)):
            drop_resume_state(done[-1][1])
        mark_finished(out_dir)
    return steps


def run(params: Params, parent_id: str | None = None) -> list[dict[str, float]]:
    """The train stage: ``paths.selection`` -> ``paths.train_dir`` (under ``accelerate launch`` with several
    processes or an accelerate config: the stage runs its own entry point again, ``pipelines.train``, holding the
    train folder for its ranks). One writer per train folder; on a GPU machine the memory plan is checked first."""
    paths = params.paths
    if "LOCAL_RANK" not in os.environ:  # the process the user started, before any GPU is touched
        check_train(params)
    if launch.needs_launch(params.train):
        with writer_lock(paths.train_dir):
            launch.relaunch(params.train, "pipelines.train", params, parent_id)
        return read_records(Path(paths.train_dir) / "train_log.jsonl")
    lock = writer_lock(paths.train_dir) if tracking.is_main_process() else contextlib.nullcontext()
    with tracking.stage_run("train", params, parent_id), lock:  # the tracking server checked before any write
        steps = run_train(params.train, paths.model_dir, paths.selection, params.model, paths.train_dir)
        tracking.log_artifact(Path(paths.train_dir) / "train_log.jsonl")
        return steps
