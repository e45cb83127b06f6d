"""PPO with a value model through TRL's ``PPOTrainer``, on the same rows, prompts and reward as GRPO.

TRL's PPO scores a response with a reward *model*: it runs ``getattr(model, model.base_model_prefix)`` on the
prompt + response tokens and reads ``model.score(hidden_states[-1])`` at the last response token.
:class:`VerifiableRewardModel` fills that interface with the verifiable reward: it splits each sequence into
its known prompt and the response, decodes the response and grades it against the row's label.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import torch
from datasets import Dataset
from torch import nn
from transformers import AutoModelForSequenceClassification, PretrainedConfig
from trl.experimental.ppo import PPOConfig, PPOTrainer

from rlvr.config import ModelConfig
from rlvr.models import load_policy
from rlvr.templates import get_template
from rlvr.training.monitor import MlflowStepLogger


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
        # what TRL's DeepSpeed preparation of a reward model reads: a config (it has no hidden size) and one
        # parameter (ZeRO-3 takes the module's dtype from its first); the grading never uses it
        self.config = PretrainedConfig()
        self.anchor = nn.Parameter(torch.zeros(1), requires_grad=False)

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


class VerifiablePPOTrainer(PPOTrainer):
    """TRL's PPOTrainer whose checkpoints hold the policy under DeepSpeed too: TRL's ``save_model`` hands the bare
    policy to transformers' DeepSpeed branch, which reads a DeepSpeed engine's config from it and fails."""

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False):
        if not self.is_deepspeed_enabled:
            return super().save_model(output_dir, _internal_call)
        engine = self.model  # the policy and the value model together (TRL's PolicyAndValueWrapper)
        state = self.accelerator.get_state_dict(engine)  # every rank takes part: ZeRO-3 gathers the shards
        if self.args.should_save:
            policy = {key.removeprefix("policy."): v for key, v in state.items() if key.startswith("policy.")}
            self.accelerator.unwrap_model(engine).policy.save_pretrained(output_dir, state_dict=policy)
            self.processing_class.save_pretrained(output_dir)
        return None


def build_ppo_trainer(
    model_dir, rows: list[dict], args: PPOConfig, prompt: ModelConfig, reward, prefix, callbacks=()
) -> PPOTrainer:
    """A PPOTrainer with TRL's ``args`` on ``rows``: policy and value model (a scalar head on the same base model)
    from ``model_dir``."""
    policy, tokenizer = load_policy(model_dir)
    template = get_template(prompt.rollout_template)
    prompt_ids = [
        tokenizer(template.render(row["problem"], prompt, tokenizer), add_special_tokens=False)["input_ids"]
        for row in rows
    ]
    # the reference policy loaded as its own model: TRL's copy of the policy (ref_model=None) refuses ZeRO-3
    reference, _ = load_policy(model_dir)
    value_model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1, dtype=policy.dtype)
    value_model.config.pad_token_id = tokenizer.pad_token_id
    dataset = Dataset.from_dict({"input_ids": prompt_ids})
    return VerifiablePPOTrainer(
        args=args,
        processing_class=tokenizer,
        model=policy,
        ref_model=reference,
        reward_model=VerifiableRewardModel(reward, tokenizer, rows, prompt_ids),
        value_model=value_model,
        train_dataset=dataset,
        eval_dataset=dataset.select(range(1)),
        callbacks=[*callbacks, MlflowStepLogger(prefix)],
    )
