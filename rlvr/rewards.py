"""Verifiable rewards in TRL's reward-function form, graded with math-verify.

Two grading modes, named in every result:
- ``strict`` (the paper's training reward): only the last ``\\boxed{}`` of the response counts.
- ``lenient`` (like the Qwen2.5-Math evaluation harness): the last ``\\boxed{}`` if there is one, else the
  text after "the answer is", else the last number in the response.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

logger = logging.getLogger(__name__)

GRADING_MODES = ("strict", "lenient")
# Longer answers are truncated before symbolic parsing: no gold answer is this long, and it bounds the
# work sympy can be asked to do where signal-based time limits are unavailable (non-main threads).
MAX_ANSWER_CHARS = 200
TIMEOUT_SECONDS = 3
_ANSWER_IS = re.compile(r"answer is[:\s]*\$?([^\n$]+?)\$?(?:\.\s|\.?$|\n)", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?")


def completion_text(completion: Any) -> str:
    """The text of a completion given as a string or as a list of chat messages."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return str(completion.get("content") or "")
    if isinstance(completion, Sequence) and completion:
        return completion_text(completion[-1])
    return ""


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) in ``text``, braces balanced; None if absent."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    open_at = text.find("{", start)
    if open_at < 0:
        return None
    depth = 0
    for i in range(open_at, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[open_at + 1 : i].strip()
    return None


def extract_answer(text: str, mode: str = "strict") -> str | None:
    """The final answer of a response under ``mode`` (see module docstring); None if there is none."""
    if mode not in GRADING_MODES:
        raise ValueError(f"grading mode must be one of {GRADING_MODES}, got {mode!r}")
    boxed = last_boxed(text)
    if boxed is not None or mode == "strict":
        return boxed or None
    match = _ANSWER_IS.findall(text)
    if match:
        return match[-1].strip()
    numbers = _NUMBER.findall(text)
    return numbers[-1].replace(",", "") if numbers else None


def _timeouts() -> tuple[int | None, int | None]:
    # math-verify's time limits use SIGALRM, which only the main thread may set.
    in_main = threading.current_thread() is threading.main_thread()
    return (TIMEOUT_SECONDS, TIMEOUT_SECONDS) if in_main else (None, None)


@lru_cache(maxsize=4096)
def _parse_answer(answer: str) -> tuple:
    parsing_timeout, _ = _timeouts()
    config = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
    return tuple(parse(f"\\boxed{{{answer[:MAX_ANSWER_CHARS]}}}", config, parsing_timeout=parsing_timeout))


def answers_match(predicted: str | None, gold: str) -> bool:
    """True where math-verify finds ``predicted`` equivalent to ``gold``; never raises."""
    if not predicted or not str(gold).strip():
        return False
    if predicted.strip() == str(gold).strip():
        return True
    try:
        gold_parsed, pred_parsed = _parse_answer(str(gold)), _parse_answer(predicted)
        if not gold_parsed or not pred_parsed:
            return False
        _, verify_timeout = _timeouts()
        return bool(verify(list(gold_parsed), list(pred_parsed), timeout_seconds=verify_timeout))
    except Exception as error:  # noqa: BLE001 - grading must never fail a training or evaluation run
        logger.debug("grading failed for %r vs %r: %s", predicted, gold, error)
        return False


_CHOICE_IS = re.compile(r"answer is[:\s]*\(?\$?(?:\\text\{)?([A-Ea-e])\b")
_CHOICE = re.compile(r"(?<![A-Za-z])\(?([A-E])\)?(?![A-Za-z])")


def extract_choice(text: str, mode: str = "strict") -> str | None:
    """The option letter a multiple-choice response ends on: from the last ``\\boxed{}``, or (lenient) from
    "the answer is X", else the last standalone capital A-E."""
    boxed = last_boxed(text)
    if boxed is not None:
        match = _CHOICE.search(boxed.replace("\\text{", "").replace("}", ""))
        return match.group(1) if match else None
    if mode == "strict":
        return None
    answer_is = _CHOICE_IS.findall(text)
    if answer_is:
        return answer_is[-1].upper()
    letters = _CHOICE.findall(text)
    return letters[-1] if letters else None


def grade(completion: Any, gold: str, mode: str = "strict") -> float:
    """1.0 where the completion's answer (under ``mode``) equals ``gold``, else 0.0."""
    return float(answers_match(extract_answer(completion_text(completion), mode), gold))


def grade_all(completions: list, answer: list[str], mode: str) -> list[float]:
    """:func:`grade` of each completion against its gold answer."""
    return [grade(completion, gold, mode) for completion, gold in zip(completions, answer, strict=True)]


def accuracy_reward(completions: list, answer: list[str], **kwargs: Any) -> list[float]:
    """TRL reward: 1.0 where the last ``\\boxed{}`` equals the gold answer (math-verify), else 0.0."""
    return grade_all(completions, answer, "strict")


def lenient_accuracy_reward(completions: list, answer: list[str], **kwargs: Any) -> list[float]:
    """TRL reward: like :func:`accuracy_reward`, graded in ``lenient`` mode (no box needed)."""
    return grade_all(completions, answer, "lenient")


def format_reward(completions: list, **kwargs: Any) -> list[float]:
    """TRL reward: 1.0 for a response with a non-empty final ``\\boxed{}``, whatever its content."""
    return [float(bool(last_boxed(completion_text(completion)))) for completion in completions]


REWARDS: dict[str, Callable[..., list[float]]] = {
    "accuracy": accuracy_reward,
    "accuracy_lenient": lenient_accuracy_reward,
    "format": format_reward,
}


def get_reward(name: str) -> Callable[..., list[float]]:
    """The reward registered under ``name``, or a researcher's own TRL reward given as ``module:function``."""
    if ":" in name:
        import importlib

        module, _, function = name.partition(":")
        try:
            return getattr(importlib.import_module(module), function)
        except (ImportError, AttributeError) as error:
            raise ValueError(f"reward {name!r}: cannot import ({error})") from error
    if name not in REWARDS:
        raise ValueError(f"unknown reward {name!r}; choose one of {sorted(REWARDS)} or module:function")
    return REWARDS[name]
