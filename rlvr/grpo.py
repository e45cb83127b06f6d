"""GRPO with TRL: the trainer both the history and the train stage use."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import mlflow
import torch
from datasets import Dataset
from transformers import TrainerCallback
from trl import GRPOConfig, GRPOTrainer
from trl.trainer.utils import RepeatSampler

from rlvr import tracking
from rlvr.config import ModelConfig, PeftConfig, RLConfig
from rlvr.model import load_policy
from rlvr.templates import get_template

logger = logging.getLogger(__name__)


def prompt_dataset(rows: list[dict], model: ModelConfig) -> Dataset:
    """A TRL dataset with ``prompt`` (chat messages or text, per ``model.template``), ``answer`` and ``id``."""
    template = get_template(model.rollout_template)
    return Dataset.from_list(
        [{"prompt": template.messages(r["problem"], model), "answer": r["answer"], "id": r["id"]} for r in rows]
    )


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


def grpo_args(
    config: RLConfig, output_dir: str | Path, save: bool, resumable: bool = False, keep: int | None = None
) -> GRPOConfig:
    """TRL's ``GRPOConfig`` for ``config``: TRL names unchanged, ``config.trl`` passed through last.

    ``resumable`` checkpoints keep optimizer, scheduler and RNG states; ``keep``: checkpoints kept (None: all).
    """
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
        "use_vllm": config.use_vllm,
        "vllm_mode": config.vllm_mode,
        "save_strategy": "steps" if save else "no",
        "save_steps": config.save_steps if save else 500,
        "save_only_model": not resumable,
        "save_total_limit": keep,
        "logging_steps": 1,
        "report_to": "none",
        "bf16": torch.cuda.is_available(),
        "gradient_checkpointing": torch.cuda.is_available(),  # saves GPU memory; on CPU it only recomputes
        "use_cpu": not torch.cuda.is_available(),
        "disable_tqdm": False,
    }
    if config.reward_weights is not None:
        values["reward_weights"] = list(config.reward_weights)
    values.update(config.trl)
    return GRPOConfig(**values)


def peft_config(config: PeftConfig | None):
    """PEFT's ``LoraConfig`` for ``train.peft`` (TRL's ``peft_config``), or None for full fine-tuning."""
    if config is None:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=config.r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.target_modules,
        task_type="CAUSAL_LM",
    )


class EpochSeededRepeatSampler(RepeatSampler):
    """TRL's ``RepeatSampler`` whose order in an epoch depends only on ``seed + epoch``.

    TRL's own sampler draws each epoch's permutation from one generator, so a run resumed in epoch k >= 1
    replays epoch 0's order and some examples miss epoch k (measured: a resumed history lost rollouts).
    The trainer calls ``set_epoch`` before every epoch, including the resumed one.
    """

    def set_epoch(self, epoch: int) -> None:
        if self.shuffle and self.seed is not None:
            self.generator.manual_seed(self.seed + epoch)


class ResumableGRPOTrainer(GRPOTrainer):
    """GRPOTrainer whose data order survives a resume (see :class:`EpochSeededRepeatSampler`) and whose
    policy-gradient term can be switched off (``policy_loss=False``: advantages zeroed, so only the KL and
    entropy terms of TRL's loss remain, the paper's "entropy loss only" ablation)."""

    def __init__(self, *args, policy_loss: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.policy_loss = policy_loss

    def _generate_and_score_completions(self, inputs):
        batch = super()._generate_and_score_completions(inputs)
        if not self.policy_loss:
            batch["advantages"] = torch.zeros_like(batch["advantages"])
        return batch

    def _get_train_sampler(self, dataset=None):
        sampler = super()._get_train_sampler(dataset)
        if type(sampler) is RepeatSampler:
            sampler.__class__ = EpochSeededRepeatSampler  # same state, one method more
        return sampler


class EntropyMinimizationTrainer(ResumableGRPOTrainer):
    """One-shot entropy minimisation (the reward-free follow-up of 1-shot RLVR): GRPO's sampling, but the loss is
    the mean token entropy of the policy on its own completions, so training makes the model more certain of what
    it already says. The rewards are computed and logged (the training example's accuracy) but never enter the
    loss. The entropy is TRL's (``entropy_from_logits``), averaged over completion tokens as TRL's entropy bonus."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._entropy_bonus_enabled = True  # TRL then computes the entropies with their gradient

    def _compute_loss(self, model, inputs):
        prompt_ids, prompt_mask = inputs["prompt_ids"], inputs["prompt_mask"]  # (B, P)
        completion_ids, mask = inputs["completion_ids"], inputs["completion_mask"]  # (B, T)
        input_ids = torch.cat([prompt_ids, completion_ids], dim=1)  # (B, P + T)
        attention_mask = torch.cat([prompt_mask, mask], dim=1)  # (B, P + T)
        _, entropies, _ = self._get_per_token_logps_and_entropies(
            model, input_ids, attention_mask, completion_ids.size(1), compute_entropy=True
        )  # entropies: (B, T), nats per completion position
        mean_entropy = (entropies * mask).sum() / mask.sum().clamp(min=1.0)  # scalar: mean over completion tokens
        mode = "train" if self.model.training else "eval"
        self._metrics[mode]["entropy"].append(self.accelerator.gather(mean_entropy.detach()).mean().item())
        accumulation = self.current_gradient_accumulation_steps if mode == "train" else 1.0
        return mean_entropy / accumulation


def build_trainer(
    model_dir,
    rows,
    config: RLConfig,
    prompt,
    output_dir,
    reward,
    prefix,
    save,
    resumable=False,
    keep=None,
    callbacks=(),
    policy_loss=True,
    peft: PeftConfig | None = None,
    trainer_class: type[ResumableGRPOTrainer] = ResumableGRPOTrainer,
) -> GRPOTrainer:
    """A GRPOTrainer (``trainer_class``) on ``rows`` logging to MLflow under ``prefix`` (after ``callbacks``, which
    may add metrics). ``reward``: one TRL reward function or a list (combined by TRL with ``config.reward_weights``)."""
    model, tokenizer = load_policy(model_dir)
    return trainer_class(
        model=model,
        reward_funcs=reward,
        args=grpo_args(config, output_dir, save, resumable, keep),
        train_dataset=prompt_dataset(rows, prompt),
        processing_class=tokenizer,
        callbacks=[*callbacks, MlflowStepLogger(prefix)],
        policy_loss=policy_loss,
        peft_config=peft_config(peft),
    )
