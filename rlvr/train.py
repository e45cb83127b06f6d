"""The train stage: GRPO (or PPO) on the selected rows, resumable, with per-step metrics and checkpoints."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from rlvr import tracking
from rlvr.checkpoints import MarkCheckpoint, checkpoints, mark_finished, resume_point
from rlvr.config import ModelConfig, Params, TrainConfig, to_dict
from rlvr.data import file_sha256, fingerprint, read_rows, write_rows
from rlvr.monitor import RolloutMonitor
from rlvr.rewards import get_reward

logger = logging.getLogger(__name__)


def apply_label(rows: list[dict], label: str | dict[str, str] | None) -> list[dict]:
    """``rows`` with their ``answer`` replaced by ``label`` (one for all rows, or ``{id: label}``)."""
    if label is None:
        return rows
    labels = {str(k): str(v) for k, v in label.items()} if isinstance(label, dict) else {r["id"]: label for r in rows}
    unknown = set(labels) - {row["id"] for row in rows}
    if unknown:
        raise ValueError(f"train.label: ids {sorted(unknown)} are not in the training rows")
    for example_id, new in labels.items():
        gold = next(row["answer"] for row in rows if row["id"] == example_id)
        logger.warning("training example %s on label %r instead of its gold answer %r", example_id, new, gold)
    return [{**row, "answer": labels.get(row["id"], row["answer"]), "gold_answer": row["answer"]} for row in rows]


def trainer_args(config: TrainConfig, out_dir: str | Path):
    """The TRL config object the train stage builds for ``config`` (GRPOConfig or PPOConfig)."""
    if config.algorithm == "ppo":
        from rlvr.ppo import ppo_args

        return ppo_args(config, out_dir)
    from rlvr.grpo import grpo_args

    return grpo_args(config, out_dir, save=True, resumable=True)


def effective_config(params: Params) -> dict[str, Any]:
    """What the train stage of ``params`` runs with: our settings, the batch per step, the launch, and the
    full TRL trainer configuration (as JSON-ready values)."""
    from rlvr.launch import launch_command
    from rlvr.templates import get_template

    config = params.train
    completions = config.completions_per_step
    args = trainer_args(config, params.paths.train_dir)
    launch = launch_command(config, "pipelines.train", ["--params", "PARAMS"]) if config.num_processes > 1 else None
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
        "trainer": json.loads(json.dumps(args.to_dict(), default=str)),
    }


def run_train(
    config: TrainConfig, model_dir: str | Path, train_path: str | Path, prompt: ModelConfig, out_dir: str | Path
) -> list[dict[str, float]]:
    """The train stage: resumes from the last complete checkpoint of the same run in ``out_dir`` if any;
    returns the per-step log (also written to ``train_log.jsonl``)."""
    out_dir = Path(out_dir)
    rows = apply_label(read_rows(train_path), config.label)
    model_config = Path(model_dir) / "config.json"
    model_id = file_sha256(model_config) if model_config.is_file() else str(model_dir)
    run_fingerprint = fingerprint(to_dict(config), to_dict(prompt), rows, model_id)
    if config.algorithm == "ppo" and checkpoints(out_dir):
        logger.warning("TRL's PPO trainer cannot resume: training %s again from step 0", out_dir)
        shutil.rmtree(out_dir)
    resume = resume_point(out_dir, run_fingerprint)
    monitor = RolloutMonitor(out_dir, config.sample_steps)
    reward = monitor.wrap(get_reward(config.reward))
    callbacks = [monitor, MarkCheckpoint(run_fingerprint)]
    if config.label is not None:
        tracking.set_tag("rlvr.label_override", json.dumps(config.label))
    if config.algorithm == "ppo":
        from rlvr.ppo import build_ppo_trainer

        trainer = build_ppo_trainer(model_dir, rows, config, prompt, out_dir, reward, "train.", callbacks)
        trainer.train()
    else:
        from rlvr.grpo import build_trainer

        trainer = build_trainer(
            model_dir, rows, config, prompt, out_dir, reward, "train.", save=True, resumable=True,
            callbacks=callbacks, policy_loss=config.policy_loss,
        )  # fmt: skip
        if resume is not None:
            logger.info("resuming the train run from %s", resume)
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    steps = [
        {"step": entry["step"], **{k: float(v) for k, v in entry.items() if isinstance(v, (int, float))}}
        for entry in trainer.state.log_history
        if "reward" in entry
    ]
    write_rows(out_dir / "train_log.jsonl", steps)
    if tracking.is_main_process():
        mark_finished(out_dir)
    return steps
