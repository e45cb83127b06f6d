"""The RL algorithms, one entry each: its trainer (built on TRL's), the TRL settings it fixes itself, and whether
a run resumes from a checkpoint. TRL's config class of each algorithm and the TRL names of our settings are facts
of the params (``rlvr.config``: ``TRL_CONFIGS``, ``TRL_NAMES``): every setting of ours that TRL's config has goes to
it unchanged (:func:`trainer_args`), then the algorithm's own, then ``train.trl`` last.

To add an algorithm: a builder ``(model_dir, rows, config, args, prompt, rewards, prefix, callbacks) -> trainer``,
an entry here, its name in ``TrainConfig.algorithm`` and ``TRL_CONFIGS``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlvr.config import MAX_PROMPT_TOKENS, NOT_TRL_SETTINGS, RLConfig
from rlvr.errors import ConfigError


@dataclass(frozen=True)
class Algorithm:
    """An RL algorithm on a TRL trainer.

    ``build(model_dir, rows, config, args, prompt, rewards, prefix, callbacks)`` returns the trainer with TRL's
    ``args`` (``rewards``: the reward functions, the first one seen by the rollout monitor); ``fixed(config, save,
    resumable, keep)``: the TRL settings the algorithm sets itself; ``resumable``: whether a killed run continues
    from its last checkpoint.
    """

    name: str
    build: Callable[..., Any]
    fixed: Callable[[RLConfig, bool, bool, int | None], dict[str, Any]]
    resumable: bool = True


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _common(out_dir: str | Path) -> dict[str, Any]:
    """What every trainer here runs with: one log entry a step (each to MLflow), on the GPU in bfloat16."""
    cuda = _cuda()
    return {"output_dir": str(out_dir), "logging_steps": 1, "report_to": "none", "bf16": cuda, "use_cpu": not cuda,
            "disable_tqdm": False}  # fmt: skip


def _grpo_fixed(config: RLConfig, save: bool, resumable: bool, keep: int | None) -> dict[str, Any]:
    """Checkpoints every ``save_steps`` (``resumable`` ones keep the optimizer, scheduler and RNG states; ``keep``
    of them kept, None: all); vLLM's context of prompt and completion."""
    fixed = {
        "save_strategy": "steps" if save else "no",
        "save_steps": config.save_steps if save else 500,
        "save_only_model": not resumable,
        "save_total_limit": keep,
        "gradient_checkpointing": _cuda(),  # saves GPU memory; on a CPU it only recomputes
    }
    if config.use_vllm:  # vLLM sized for prompt + completion (else for the model's longest context: 131,072 for Llama)
        fixed["vllm_max_model_length"] = MAX_PROMPT_TOKENS + config.max_completion_length
    return fixed


def _ppo_fixed(config: RLConfig, save: bool, resumable: bool, keep: int | None) -> dict[str, Any]:
    """``beta`` is the KL coefficient with the k3 estimator (the paper's KL loss); ``max_steps`` PPO batches."""
    return {
        "kl_estimator": "k3",
        "total_episodes": config.max_steps * config.completions_per_step,
        "stop_token": "eos",
        "num_sample_generations": 0,
        "save_strategy": "steps",
        "save_steps": config.save_steps,
        "save_only_model": True,  # TRL's PPO loop cannot resume from a checkpoint
    }


def _build_grpo(model_dir, rows, config, args, prompt, rewards, prefix, callbacks):
    from rlvr.training.grpo import build_trainer

    reward = rewards if len(rewards) > 1 else rewards[0]
    return build_trainer(model_dir, rows, args, prompt, reward, prefix, callbacks, config.policy_loss, config.peft)


def _build_entropy_min(model_dir, rows, config, args, prompt, rewards, prefix, callbacks):
    from rlvr.training.entropy_min import EntropyMinimizationTrainer
    from rlvr.training.grpo import build_trainer

    reward = rewards if len(rewards) > 1 else rewards[0]
    return build_trainer(
        model_dir, rows, args, prompt, reward, prefix, callbacks, peft=config.peft,
        trainer_class=EntropyMinimizationTrainer,
    )  # fmt: skip


def _build_ppo(model_dir, rows, config, args, prompt, rewards, prefix, callbacks):
    from rlvr.training.ppo import build_ppo_trainer

    return build_ppo_trainer(model_dir, rows, args, prompt, rewards[0], prefix, callbacks)


ALGORITHMS = {
    algorithm.name: algorithm
    for algorithm in (
        Algorithm("grpo", _build_grpo, _grpo_fixed),
        Algorithm("ppo", _build_ppo, _ppo_fixed, resumable=False),
        Algorithm("entropy_min", _build_entropy_min, _grpo_fixed),
    )
}


def get_algorithm(name: str) -> Algorithm:
    if name not in ALGORITHMS:
        raise ConfigError(f"unknown algorithm {name!r}; choose one of {sorted(ALGORITHMS)}")
    return ALGORITHMS[name]


def trainer_args(
    config: RLConfig, out_dir: str | Path, save: bool = True, resumable: bool = True, keep: int | None = None
):
    """TRL's config object for ``config``'s algorithm: every setting of ours that TRL's config has (under its TRL
    name), the settings every trainer here and the algorithm fix, then ``config.trl`` passed through last."""
    config_class = config.trainer_config_class()
    known = {field.name for field in dataclasses.fields(config_class)}
    values = {}
    for setting in type(config).model_fields:
        name, value = config.trl_name(setting), getattr(config, setting)
        if setting not in NOT_TRL_SETTINGS and name in known and value is not None:
            values[name] = list(value) if isinstance(value, tuple) else value
    values |= _common(out_dir) | get_algorithm(config.algorithm_name).fixed(config, save, resumable, keep)
    return config_class(**(values | config.trl))
