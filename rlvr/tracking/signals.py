"""Signals for tracked work: SIGTERM (Prefect cancellation, a preemption) and Ctrl-C end the stage's and the
pipeline's MLflow runs as KILLED; other errors end them as FAILED."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Terminated(BaseException):
    """SIGTERM received: unwinds like KeyboardInterrupt (which generic ``except Exception`` does not catch)."""


INTERRUPTS = (KeyboardInterrupt, Terminated)


def _raise_terminated(signum, frame) -> None:
    raise Terminated(f"signal {signum}")


@contextmanager
def interruptible() -> Iterator[None]:
    """In the main thread, SIGTERM raises :class:`Terminated` inside the block (so runs end as KILLED and
    files being written are left incomplete, to be discarded on resume); elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def end_status(error: BaseException | None) -> str:
    """The MLflow status of a run whose block ended with ``error``."""
    if error is None:
        return "FINISHED"
    return "KILLED" if isinstance(error, INTERRUPTS) else "FAILED"
