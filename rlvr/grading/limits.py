"""Limits of grading and their counts: answers longer than ``MAX_ANSWER_CHARS`` (no gold answer is) are refused
before any work whose cost grows faster than their length; refusals and time-outs are counted per process."""

from __future__ import annotations

import threading

MAX_ANSWER_CHARS = 1000
_LOCK = threading.Lock()
_COUNTS = {"checks": 0, "refused": 0, "timeouts": 0}


def count(key: str) -> None:
    """Count one ``checks``, ``refused`` or ``timeouts``."""
    with _LOCK:
        _COUNTS[key] += 1


def count_refusal() -> None:
    """Count an answer refused before any symbolic work."""
    count("checks")
    count("refused")


def stats() -> dict[str, int]:
    """Symbolic checks asked for in this process: ``checks``, how many were ``refused``, how many ``timeouts``."""
    with _LOCK:
        return dict(_COUNTS)
