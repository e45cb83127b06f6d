"""Verifiable rewards in TRL's reward-function form, and grading by mode, named in every result.

Grading modes (``GRADING_MODES``):
- ``strict`` (the paper's training reward): only the last ``\\boxed{}`` of the response counts (math-verify).
- ``lenient``: the last ``\\boxed{}`` if there is one, else the text after "the answer is", else the last number.
- ``official``: the paper's evaluation harness (Qwen2.5-Math's), its extraction and equivalence rules
  (``rlvr.grading.official``; ``../shared/docs/GRADERS.md``).
Rewards by name (``REWARDS``): ``accuracy`` (strict), ``accuracy_lenient``, ``format``,
``accuracy_deepscaler`` (the paper's training scorer, ``rlvr.grading.deepscaler``) and ``random`` (a spurious
reward that ignores the answer, for the follow-up question whether any reward does as well). Grading never raises and
never hangs: symbolic checks are bounded in time (``rlvr.grading.bounded``).
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable, Sequence
from typing import Any

from rlvr.errors import ConfigError
from rlvr.grading import GRADING_MODES, bounded, deepscaler, mathverify, official
from rlvr.grading.mathverify import last_boxed

__all__ = ["GRADING_MODES", "REWARDS", "accuracy_reward", "grade", "last_boxed", "get_reward"]


def completion_text(completion: Any) -> str:
    """The text of a completion given as a string or as a list of chat messages."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return str(completion.get("content") or "")
    if isinstance(completion, Sequence) and completion:
        return completion_text(completion[-1])
    return ""


def prompt_text(prompt: Any) -> str:
    """The text of a prompt given as a string or as chat messages (their contents, in order)."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, Sequence):
        return "\n".join(completion_text(message) for message in prompt)
    return ""


def _check_mode(mode: str) -> None:
    if mode not in GRADING_MODES:
        raise ConfigError(f"grading mode must be one of {GRADING_MODES}, got {mode!r}")


def extract_answer(text: str, mode: str = "strict", dataset: str | None = None) -> str | None:
    """The final answer of a response under ``mode`` (see module docstring); None if there is none."""
    _check_mode(mode)
    if mode == "official":
        return official.extract(text, dataset)
    return mathverify.extract(text, lenient=mode == "lenient")


def answers_match(predicted: str | None, gold: str) -> bool:
    """True where math-verify finds ``predicted`` equivalent to ``gold`` (bounded in time); never raises."""
    if not predicted or not str(gold).strip():
        return False
    if predicted.strip() == str(gold).strip():
        return True
    return bounded.check("math_verify", str(gold), predicted)


def _official_symbolic(a: str, b: str) -> bool:
    return bounded.check("official_symbolic", a, b)


def _deepscaler_symbolic(gold: str, given: str) -> bool:
    return bounded.check("deepscaler_sympy", gold, given)


def grade_answer(
    text: str, gold: str, mode: str, dataset: str | None = None, choice: bool = False
) -> tuple[str | None, bool]:
    """``(extracted answer, correct)`` of a response's text under ``mode``; ``dataset`` names the benchmark
    where the official harness grades it its own way (Minerva keeps unit words); ``choice``: a multiple-choice
    question graded on its option letter (the official mode has its own letter rules)."""
    _check_mode(mode)
    if mode == "official":
        return official.grade(text, str(gold), _official_symbolic, dataset)
    if choice:
        letter = mathverify.extract_choice(text, lenient=mode == "lenient")
        return letter, letter is not None and letter.upper() == str(gold).strip().upper()
    extracted = extract_answer(text, mode)
    return extracted, answers_match(extracted, gold)


def grade(completion: Any, gold: str, mode: str = "strict", dataset: str | None = None) -> float:
    """1.0 where the completion's answer (under ``mode``) equals ``gold``, else 0.0."""
    return float(grade_answer(completion_text(completion), gold, mode, dataset)[1])


def grade_all(completions: list, answer: list[str], mode: str) -> list[float]:
    """:func:`grade` of each completion against its gold answer."""
    return [grade(completion, gold, mode) for completion, gold in zip(completions, answer, strict=True)]


def accuracy_reward(completions: list, answer: list[str], **kwargs: Any) -> list[float]:
    """TRL reward: 1.0 where the last ``\\boxed{}`` equals the gold answer (math-verify), else 0.0."""
    return grade_all(completions, answer, "strict")


def lenient_accuracy_reward(completions: list, answer: list[str], **kwargs: Any) -> list[float]:
    """TRL reward: like :func:`accuracy_reward`, graded in ``lenient`` mode (no box needed)."""
    return grade_all(completions, answer, "lenient")


def deepscaler_accuracy_reward(
    completions: list, answer: list[str], prompts: list | None = None, **kwargs: Any
) -> list[float]:
    """TRL reward: the paper's training scorer (DeepScaleR's) on the prompt followed by the completion, so a
    completion without a box is graded on the prompt's empty ``\\boxed{}`` (1.0 only for an empty gold)."""
    prompts = prompts if prompts is not None else [""] * len(completions)
    return [
        deepscaler.score(completion_text(completion), str(gold), _deepscaler_symbolic, prompt_text(prompt))[1]
        for completion, gold, prompt in zip(completions, answer, prompts, strict=True)
    ]


def format_reward(completions: list, **kwargs: Any) -> list[float]:
    """TRL reward: 1.0 for a response with a non-empty final ``\\boxed{}``, whatever its content."""
    return [float(bool(last_boxed(completion_text(completion)))) for completion in completions]


RANDOM_REWARD_RATE = 0.5  # the spurious-rewards follow-up's Bernoulli rate


def random_reward(completions: list, trainer_state: Any = None, **kwargs: Any) -> list[float]:
    """TRL reward: 1.0 with probability 0.5 whatever the response says (a spurious reward). Drawn from the training
    step, the completion's place in the batch and its text, so a resumed or repeated run draws the same rewards."""
    step = getattr(trainer_state, "global_step", 0)
    return [
        float(random.Random(f"{step}:{index}:{completion_text(completion)}").random() < RANDOM_REWARD_RATE)
        for index, completion in enumerate(completions)
    ]


REWARDS: dict[str, Callable[..., list[float]]] = {
    "accuracy": accuracy_reward,
    "accuracy_lenient": lenient_accuracy_reward,
    "accuracy_deepscaler": deepscaler_accuracy_reward,
    "format": format_reward,
    "random": random_reward,
}


def combined_reward(names: list[str], weights: list[float] | None = None) -> Callable[..., list[float]]:
    """One TRL reward function for ``names``: the reward itself where there is one, else the weighted sum of
    their rewards, as TRL combines several (``sum_i weight_i * reward_i``, weights 1 by default)."""
    functions = [get_reward(name) for name in names]
    if len(functions) == 1 and not weights:
        return functions[0]
    weights = list(weights) if weights else [1.0] * len(functions)

    def weighted(completions: list, **kwargs: Any) -> list[float]:
        columns = [function(completions, **kwargs) for function in functions]
        return [sum(w * (r or 0.0) for w, r in zip(weights, row, strict=True)) for row in zip(*columns, strict=True)]

    weighted.__name__ = "+".join(getattr(f, "__name__", "reward") for f in functions)
    return weighted


def get_reward(name: str) -> Callable[..., list[float]]:
    """The reward registered under ``name``, or a researcher's own TRL reward given as ``module:function``."""
    if ":" in name:
        module, _, function = name.partition(":")
        try:
            return getattr(importlib.import_module(module), function)
        except (ImportError, AttributeError) as error:
            raise ConfigError(f"reward {name!r}: cannot import ({error})") from error
    if name not in REWARDS:
        raise ConfigError(f"unknown reward {name!r}; choose one of {sorted(REWARDS)} or module:function")
    return REWARDS[name]
