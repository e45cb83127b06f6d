"""GRPO runs with TRL: the history stage (whole pool, per-example accuracy) and the train stage."""

from __future__ import annotations

import logging
import math
import tempfile
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from trl import GRPOConfig, GRPOTrainer

from rlvr.config import HistoryConfig, ModelConfig, RLConfig, TrainConfig
from rlvr.data import read_rows, write_json, write_rows
from rlvr.rewards import get_reward

logger = logging.getLogger(__name__)


def to_messages(problem: str, prompt: ModelConfig) -> list[dict[str, str]]:
    """The chat prompt of a problem (system prompt, problem, instruction), alike for rollouts and evaluation."""
    messages = [{"role": "system", "content": prompt.system_prompt}] if prompt.system_prompt else []
    user = f"{problem}\n{prompt.instruction}" if prompt.instruction else problem
    return messages + [{"role": "user", "content": user}]


def prompt_dataset(rows: list[dict], prompt: ModelConfig) -> Dataset:
    """A conversational TRL dataset with ``prompt``, ``answer`` and ``id`` columns."""
    return Dataset.from_list(
        [{"prompt": to_messages(r["problem"], prompt), "answer": r["answer"], "id": r["id"]} for r in rows]
    )


class MlflowStepLogger(TrainerCallback):
    """Logs every numeric trainer log entry to the active MLflow run at the trainer's global step."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or mlflow.active_run() is None or not state.is_world_process_zero:
            return
        metrics = {
            f"{self.prefix}{key}".replace("/", "."): float(value)
            for key, value in logs.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)
        }
        if metrics:
            mlflow.log_metrics(metrics, step=state.global_step)


def grpo_args(config: RLConfig, output_dir: str | Path, save: bool) -> GRPOConfig:
    """TRL's ``GRPOConfig`` for ``config``: TRL names unchanged, ``config.trl`` passed through last."""
    values: dict[str, Any] = {
        "output_dir": str(output_dir),
        "learning_rate": config.learning_rate,
        "weight_decay": config.weight_decay,
        "beta": config.beta,
        "entropy_coef": config.entropy_coef,
        "loss_type": config.loss_type,
        "temperature": config.temperature,
        "num_generations": config.num_generations,
        "per_device_train_batch_size": config.per_device_train_batch_size,
        "gradient_accumulation_steps": config.gradient_accumulation_steps,
        "max_completion_length": config.max_completion_length,
        "max_steps": config.max_steps,
        "num_train_epochs": config.num_train_epochs,
        "lr_scheduler_type": config.lr_scheduler_type,
        "seed": config.seed,
        "save_strategy": "steps" if save else "no",
        "save_steps": config.save_steps if save else 500,
        "save_only_model": True,
        "logging_steps": 1,
        "report_to": "none",
        "bf16": torch.cuda.is_available(),
        "gradient_checkpointing": torch.cuda.is_available(),  # saves GPU memory; on CPU it only recomputes
        "use_cpu": not torch.cuda.is_available(),
        "disable_tqdm": False,
    }
    values.update(config.trl)
    return GRPOConfig(**values)


def load_policy(model_dir: str | Path):
    """Model and tokenizer from a transformers directory (left padding, as GRPO generation needs)."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    return model, tokenizer


class AccuracyRecorder:
    """Wraps a TRL reward function and records, per example id and epoch, the rewards of its rollouts."""

    def __init__(self, reward: Callable[..., list[float]]) -> None:
        self.reward = reward
        self.__name__ = reward.__name__  # TRL names the logged metric after the function
        self.rewards: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))

    def __call__(self, completions: list, id: list[str], trainer_state=None, **kwargs: Any) -> list[float]:  # noqa: A002
        rewards = self.reward(completions, **kwargs)
        epoch = math.floor(trainer_state.epoch) if trainer_state is not None else 0
        for example_id, value in zip(id, rewards, strict=True):
            self.rewards[str(example_id)][epoch].append(float(value))
        return rewards

    def history(self) -> dict[str, list[float]]:
        """``{id: [acc_epoch_0, acc_epoch_1, ...]}``: the share of each epoch's rollouts graded correct."""
        return {
            example_id: [sum(values) / len(values) for _, values in sorted(by_epoch.items())]
            for example_id, by_epoch in sorted(self.rewards.items(), key=lambda item: _id_order(item[0]))
        }


def _id_order(example_id: str) -> tuple:
    return (0, int(example_id), "") if example_id.isdigit() else (1, 0, example_id)


def _trainer(model_dir, rows, config: RLConfig, prompt, output_dir, save, reward, prefix) -> GRPOTrainer:
    model, tokenizer = load_policy(model_dir)
    return GRPOTrainer(
        model=model,
        reward_funcs=reward,
        args=grpo_args(config, output_dir, save),
        train_dataset=prompt_dataset(rows, prompt),
        processing_class=tokenizer,
        callbacks=[MlflowStepLogger(prefix)],
    )


def run_history(
    config: HistoryConfig, model_dir: str | Path, pool_path: str | Path, prompt: ModelConfig, out_path: str | Path
) -> dict[str, list[float]]:
    """The history stage: GRPO over the whole pool, writing each example's accuracy per epoch."""
    pool = read_rows(pool_path)
    prompts_per_step = config.per_device_train_batch_size // config.num_generations
    if len(pool) % prompts_per_step:
        logger.warning(
            "pool size %d is not a multiple of %d prompts per step: some examples skip an epoch",
            len(pool),
            prompts_per_step,
        )
    recorder = AccuracyRecorder(get_reward(config.reward))
    with tempfile.TemporaryDirectory(prefix="rlvr-history-") as work_dir:  # nothing is saved: no checkpoints
        trainer = _trainer(model_dir, pool, config, prompt, work_dir, False, recorder, "history.")
        trainer.train()
    history = recorder.history()
    write_json(out_path, history)
    return history


def run_train(
    config: TrainConfig, model_dir: str | Path, train_path: str | Path, prompt: ModelConfig, out_dir: str | Path
) -> list[dict[str, float]]:
    """The train stage: GRPO on the selected rows, keeping checkpoints; returns the per-step log."""
    out_dir = Path(out_dir)
    rows = read_rows(train_path)
    trainer = _trainer(model_dir, rows, config, prompt, out_dir, True, get_reward(config.reward), "train.")
    trainer.train()
    steps = [
        {"step": entry["step"], **{k: float(v) for k, v in entry.items() if isinstance(v, (int, float))}}
        for entry in trainer.state.log_history
        if "reward" in entry
    ]
    write_rows(out_dir / "train_log.jsonl", steps)
    return steps
