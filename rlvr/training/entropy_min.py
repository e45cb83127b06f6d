"""One-shot entropy minimisation on TRL's GRPO trainer: the reward-free algorithm ``entropy_min``."""

from __future__ import annotations

import torch

from rlvr.training.grpo import ResumableGRPOTrainer


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
