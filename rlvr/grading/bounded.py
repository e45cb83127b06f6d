"""Symbolic checks that return within a bound, whatever the text and whichever thread asks.

sympy can run for ever on an answer such as ``9^{9^{9^{99}}}`` (exact integer powers, in C, holding the
interpreter lock), and signal-based time limits only work in the main thread. So every symbolic check runs in
a grading worker: a child process of this one, fed one check at a time over a pipe; a check that takes longer
than ``TIMEOUT_SECONDS`` counts as not equal, the worker is killed and a fresh one starts with the next check.
Answers that are certainly too costly (power towers, large factorials, huge numbers, deep nesting, control
characters, very long text) are refused before any work. Both outcomes are counted (:func:`stats`).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

from rlvr.grading.limits import MAX_ANSWER_CHARS, count, stats

__all__ = ["MAX_ANSWER_CHARS", "check", "refusal", "stats"]

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 3.0  # the official harness's limit per check
STARTUP_SECONDS = 120.0  # importing sympy and math-verify in a fresh process (slow, loaded machines)
MAX_DEPTH = 20
MAX_EXPONENT = 10_000
MAX_FACTORIAL = 1_000
MAX_DIGITS = 300
READY = "ready"
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_DIGITS = re.compile(rf"\d{{{MAX_DIGITS + 1},}}")
_FACTORIAL = re.compile(r"(\d*)\s*!")
_EXPONENT_TOKEN = re.compile(r"\s*(-?[\w.]+|\\\w+)")


def _exponents(text: str) -> list[str]:
    """The exponent of every ``^`` (or ``**``): a braced group, or the token after it."""
    text = text.replace("**", "^")
    found = []
    for at in (i for i, char in enumerate(text) if char == "^"):
        rest = text[at + 1 :].lstrip()
        if rest.startswith(("{", "(")):
            closing = {"{": "}", "(": ")"}[rest[0]]
            depth = 0
            for i, char in enumerate(rest):
                depth += (char == rest[0]) - (char == closing)
                if depth == 0:
                    found.append(rest[1:i] + "".join(rest[i + 1 : i + 2].split()))
                    break
            else:
                found.append(rest[1:])
        elif match := _EXPONENT_TOKEN.match(rest):
            found.append(match.group(1) + rest[match.end() : match.end() + 1].strip())
    return found


def refusal(text: str) -> str | None:
    """Why symbolic work on ``text`` is refused outright, or None (see module docstring)."""
    if len(text) > MAX_ANSWER_CHARS:
        return "too long"
    if _CONTROL.search(text):
        return "control characters"
    depth = deepest = 0
    for char in text:
        depth += (char in "({[") - (char in ")}]")
        deepest = max(deepest, depth)
    if deepest > MAX_DEPTH:
        return "nested too deeply"
    if _DIGITS.search(text):
        return "a huge number"
    for exponent in _exponents(text):
        if "^" in exponent:  # a tower: the exponent has an exponent, or a^b^c
            return "a power tower"
        digits = re.sub(r"[\s{}()]", "", exponent).lstrip("-")
        if digits.isdigit() and int(digits) > MAX_EXPONENT:
            return "a huge power"
    for match in _FACTORIAL.finditer(text.replace("\\!", "")):
        if not match.group(1) or int(match.group(1)) > MAX_FACTORIAL:
            return "a large factorial"
    return None


class Worker:
    """The grading worker process (one per process, shared by its threads, one check at a time)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.process: subprocess.Popen | None = None
        self.owner = os.getpid()
        self.buffer = b""

    def _start(self) -> None:
        from rlvr.grading import worker  # the module the child runs (imported here too: it is this code's)

        root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        self.process = subprocess.Popen(
            [sys.executable, "-m", worker.__name__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        self.owner, self.buffer = os.getpid(), b""
        if self._read(time.monotonic() + STARTUP_SECONDS) != READY:
            self.stop()
            raise RuntimeError("the grading worker did not start")

    def _read(self, deadline: float):
        fd = self.process.stdout.fileno()
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk:  # the worker died
                return None
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return json.loads(line)

    def stop(self) -> None:
        if self.process is not None and self.owner == os.getpid():
            self.process.kill()
            self.process.wait()
        self.process = None

    def call(self, name: str, args: list[str], timeout: float) -> bool | None:
        """The check's result, or None when it did not answer within ``timeout`` seconds (then killed)."""
        with self.lock:
            if self.process is None or self.owner != os.getpid() or self.process.poll() is not None:
                self.process = None  # a worker inherited through fork belongs to the parent
                self._start()
            self.process.stdin.write((json.dumps([name, args]) + "\n").encode())
            self.process.stdin.flush()
            result = self._read(time.monotonic() + timeout)
            if result is None:
                self.stop()
            return result


_WORKER = Worker()
atexit.register(_WORKER.stop)


def check(name: str, *texts: str, timeout: float = TIMEOUT_SECONDS) -> bool:
    """Run the worker's check ``name`` on ``texts`` within ``timeout`` seconds: refused, timed out or failed
    checks are False (and counted)."""
    count("checks")
    if any(refusal(text) for text in texts):
        count("refused")
        return False
    try:
        result = _WORKER.call(name, list(texts), timeout)
    except (OSError, RuntimeError) as error:  # a broken pipe, a worker that cannot start
        logger.warning("grading worker failed (%s): counted as not equal", error)
        _WORKER.stop()
        result = None
    if result is None:
        count("timeouts")
        logger.warning("symbolic check %s took over %.0f s: counted as not equal", name, timeout)
        return False
    return bool(result)
