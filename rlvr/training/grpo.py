"""GRPO with TRL: the trainer both the history and the train stage use, with a resumable data order."""

from __future__ import annotations

import logging

import torch
from datasets import Dataset
from trl import GRPOConfig, GRPOTrainer
from trl.trainer.utils import RepeatSampler

from rlvr.config import ModelConfig, PeftConfig
from rlvr.models import load_policy
from rlvr.templates import get_template
from rlvr.training.monitor import MlflowStepLogger

logger = logging.getLogger(__name__)


def prompt_dataset(rows: list[dict], model: ModelConfig) -> Dataset:
    """A TRL dataset with ``prompt`` (chat messages or text, per ``model.template``), ``answer`` and ``id``."""
    template = get_template(model.rollout_template)
    return Dataset.from_list(
        [{"prompt": template.messages(r["problem"], model), "answer": r["answer"], "id": r["id"]} for r in rows]
    )


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


def build_trainer(
    model_dir,
    rows,
    args: GRPOConfig,
    prompt,
    reward,
    prefix,
    callbacks=(),
    policy_loss=True,
    peft: PeftConfig | None = None,
    trainer_class: type[ResumableGRPOTrainer] = ResumableGRPOTrainer,
) -> GRPOTrainer:
    """A GRPOTrainer (``trainer_class``) with TRL's ``args`` (``rlvr.training.algorithms.trainer_args``) on ``rows``,
    logging to MLflow under ``prefix`` (after ``callbacks``, which may add metrics). ``reward``: one TRL reward
    function or a list (combined by TRL with ``args.reward_weights``)."""
    model, tokenizer = load_policy(model_dir)
    return trainer_class(
        model=model,
        reward_funcs=reward,
        args=args,
        train_dataset=prompt_dataset(rows, prompt),
        processing_class=tokenizer,
        callbacks=[*callbacks, MlflowStepLogger(prefix)],
        policy_loss=policy_loss,
        peft_config=peft_config(peft),
    )
