"""PPO with a value model through TRL's ``PPOTrainer``, on the same rows, prompts and reward as GRPO.

TRL's PPO scores a response with a reward *model*: it runs ``getattr(model, model.base_model_prefix)`` on the
prompt + response tokens and reads ``model.score(hidden_states[-1])`` at the last response token.
:class:`VerifiableRewardModel` fills that interface with the verifiable reward: it splits each sequence into
its known prompt and the response, decodes the response and grades it against the row's label.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from datasets import Dataset
from torch import nn
from transformers import AutoModelForSequenceClassification
from trl.experimental.ppo import PPOConfig, PPOTrainer

from rlvr.config import ModelConfig, TrainConfig
from rlvr.grpo import MlflowStepLogger
from rlvr.model import load_policy
from rlvr.templates import get_template


class VerifiableRewardModel(nn.Module):
    """A reward "model" for TRL's PPO that grades decoded responses with ``reward`` (a TRL reward function).

    ``rows``: the training rows (``problem``, ``answer``, ``id``) and ``prompt_ids``: their tokenized prompts.
    """

    base_model_prefix = "grader"

    def __init__(self, reward, tokenizer, rows: list[dict], prompt_ids: list[list[int]]) -> None:
        super().__init__()
        self.reward, self.tokenizer = reward, tokenizer
        pad = tokenizer.pad_token_id
        # TRL masks pad tokens out of the sequence it passes (pad may equal a template token, e.g. EOS)
        self.prompts = {tuple(t for t in ids if t != pad): row for ids, row in zip(prompt_ids, rows, strict=True)}
        self.score = nn.Identity()

    def split(self, tokens: list[int]) -> tuple[dict, list[int]]:
        """The row whose prompt ``tokens`` start with, and the response tokens after it."""
        for prompt, row in self.prompts.items():
            if tuple(tokens[: len(prompt)]) == prompt:
                return row, tokens[len(prompt) :]
        raise ValueError("PPO reward: a sequence starts with none of the training prompts")

    def grader(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kwargs: Any) -> SimpleNamespace:
        pairs = [self.split(ids[mask].tolist()) for ids, mask in zip(input_ids, attention_mask, strict=True)]
        rows, responses = [row for row, _ in pairs], [response for _, response in pairs]
        texts = self.tokenizer.batch_decode(responses, skip_special_tokens=True)
        scores = self.reward(
            texts, completion_ids=responses, answer=[r["answer"] for r in rows], id=[r["id"] for r in rows]
        )
        values = torch.tensor(scores, dtype=torch.float32, device=input_ids.device)
        return SimpleNamespace(hidden_states=[values[:, None, None].expand(-1, input_ids.shape[1], 1)])


def ppo_args(config: TrainConfig, output_dir: str | Path) -> PPOConfig:
    """TRL's ``PPOConfig`` for ``config``: ``beta`` is the KL coefficient (k3 estimator, as the paper's KL loss),
    ``max_completion_length`` the response length, ``max_steps`` PPO batches; ``config.trl`` passed through last."""
    values: dict[str, Any] = {
        "output_dir": str(output_dir),
        "learning_rate": config.learning_rate,
        "weight_decay": config.weight_decay,
        "kl_coef": config.beta,
        "kl_estimator": "k3",
        "temperature": config.temperature,
        "response_length": config.max_completion_length,
        "per_device_train_batch_size": config.per_device_train_batch_size,
        "gradient_accumulation_steps": config.gradient_accumulation_steps,
        "total_episodes": config.max_steps * config.completions_per_step,
        "stop_token": "eos",
        "num_sample_generations": 0,
        "lr_scheduler_type": config.lr_scheduler_type,
        "seed": config.seed,
        "save_strategy": "steps",
        "save_steps": config.save_steps,
        "save_only_model": True,  # TRL's PPO loop cannot resume from a checkpoint
        "logging_steps": 1,
        "report_to": "none",
        "bf16": torch.cuda.is_available(),
        "use_cpu": not torch.cuda.is_available(),
        "disable_tqdm": False,
    }
    values.update(config.trl)
    return PPOConfig(**values)


def build_ppo_trainer(
    model_dir, rows: list[dict], config: TrainConfig, prompt: ModelConfig, output_dir, reward, prefix, callbacks=()
) -> PPOTrainer:
    """A PPOTrainer on ``rows``: policy and value model (a scalar head on the same base model) from ``model_dir``."""
    policy, tokenizer = load_policy(model_dir)
    template = get_template(prompt.rollout_template)
    prompt_ids = [
        tokenizer(template.render(row["problem"], prompt, tokenizer), add_special_tokens=False)["input_ids"]
        for row in rows
    ]
    value_model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1, dtype=policy.dtype)
    value_model.config.pad_token_id = tokenizer.pad_token_id
    dataset = Dataset.from_dict({"input_ids": prompt_ids})
    return PPOTrainer(
        args=ppo_args(config, output_dir),
        processing_class=tokenizer,
        model=policy,
        ref_model=None,
        reward_model=VerifiableRewardModel(reward, tokenizer, rows, prompt_ids),
        value_model=value_model,
        train_dataset=dataset,
        eval_dataset=dataset.select(range(1)),
        callbacks=[*callbacks, MlflowStepLogger(prefix)],
    )
