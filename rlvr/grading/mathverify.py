"""The project's own gradings with math-verify: ``strict`` (the last ``\\boxed{}`` only) and ``lenient`` (also
"the answer is ..." or the last number, with no box). Extraction here is linear in the text; equivalence
(math-verify's parsing and ``verify``) is unbounded and runs through ``rlvr.grading.bounded``."""

from __future__ import annotations

import re
from functools import lru_cache

MAX_PARSED_CHARS = 200  # no gold answer is this long; the rest of a longer answer is not parsed
TIMEOUT_SECONDS = 3  # math-verify's own limits, effective in the grading worker's main thread
_ANSWER_IS = re.compile(r"answer is[:\s]*\$?([^\n$]+?)\$?(?:\.\s|\.?$|\n)", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?")


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


def extract(text: str, lenient: bool) -> str | None:
    """The last box's content; ``lenient`` without a box: after the last "answer is", else the last number."""
    boxed = last_boxed(text)
    if boxed is not None or not lenient:
        return boxed or None
    at = text.lower().rfind("answer is")
    if at >= 0 and (match := _ANSWER_IS.match(text, at)):
        return match.group(1).strip()
    numbers = _NUMBER.findall(text)
    return numbers[-1].replace(",", "") if numbers else None


@lru_cache(maxsize=4096)
def _parse(answer: str) -> tuple:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    config = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
    return tuple(parse(f"\\boxed{{{answer[:MAX_PARSED_CHARS]}}}", config, parsing_timeout=TIMEOUT_SECONDS))


def equivalent(gold: str, predicted: str) -> bool:
    """math-verify finds ``predicted`` equal to ``gold`` (unbounded: call through ``rlvr.grading.bounded``)."""
    from math_verify import verify

    gold_parsed, predicted_parsed = _parse(gold), _parse(predicted)
    if not gold_parsed or not predicted_parsed:
        return False
    return bool(verify(list(gold_parsed), list(predicted_parsed), timeout_seconds=TIMEOUT_SECONDS))


_CHOICE_IS = re.compile(r"answer is[:\s]*\(?\$?(?:\\text\{)?([A-Ea-e])\b")
_CHOICE = re.compile(r"(?<![A-Za-z])\(?([A-E])\)?(?![A-Za-z])")


def extract_choice(text: str, lenient: bool) -> str | None:
    """The option letter a multiple-choice response ends on: from the last ``\\boxed{}``, or (``lenient``) from
    "the answer is X", else the last standalone capital A-E."""
    boxed = last_boxed(text)
    if boxed is not None:
        match = _CHOICE.search(boxed.replace("\\text{", "").replace("}", ""))
        return match.group(1) if match else None
    if not lenient:
        return None
    answer_is = _CHOICE_IS.findall(text)
    if answer_is:
        return answer_is[-1].upper()
    letters = _CHOICE.findall(text)
    return letters[-1] if letters else None
