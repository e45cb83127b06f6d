"""Training checkpoints that count only when complete, and the run directory they resume from.

A checkpoint ``checkpoint-N`` is complete once its marker file exists: the marker is written (atomically)
after the trainer has saved everything else, so a run killed while saving leaves a directory without marker,
which is ignored (evaluation) or removed (resume). A run directory remembers the fingerprint of the run that
wrote it; a rerun with other settings or data moves that run aside (``<dir>-previous/<fingerprint>``, named in a
warning) and starts afresh: no run deletes another's checkpoints. A run directory has one writer at a time
(:func:`writer_lock`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import time
from contextlib import contextmanager
from pathlib import Path

from transformers import TrainerCallback

from rlvr.errors import InputError
from rlvr.files import read_json, write_json

logger = logging.getLogger(__name__)

MARKER = "rlvr_checkpoint.json"
RUN_FILE = "run.json"
# Files only a resume needs: kept in the newest complete checkpoint, removed from older ones (the model stays).
RESUME_ONLY = ("optimizer.pt", "scheduler.pt", "scaler.pt", "rng_state*.pth", "global_step*")
_CHECKPOINT = re.compile(r"checkpoint-(\d+)$")


def checkpoints(run_dir: str | Path, marker: str = MARKER) -> list[tuple[int, Path]]:
    """``(step, path)`` of every checkpoint under ``run_dir`` holding ``marker`` (written last), by step."""
    found = []
    for path in Path(run_dir).glob("checkpoint-*"):
        match = _CHECKPOINT.search(path.name)
        if match and (path / marker).is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def resume_point(run_dir: str | Path, run_fingerprint: str, marker: str = MARKER) -> Path | None:
    """The newest complete checkpoint of the run ``run_fingerprint`` in ``run_dir``, or None.

    Incomplete checkpoints are removed. A directory written by another run (other fingerprint) is moved aside.
    """
    run_dir = Path(run_dir)
    recorded = read_json(run_dir / RUN_FILE).get("fingerprint") if (run_dir / RUN_FILE).is_file() else None
    if recorded != run_fingerprint and run_dir.exists() and any(p.name != LOCK_FILE for p in run_dir.iterdir()):
        aside = run_dir.with_name(f"{run_dir.name}-previous") / (recorded or time.strftime("%Y%m%d-%H%M%S"))
        aside.parent.mkdir(parents=True, exist_ok=True)
        if aside.exists():
            aside = aside.with_name(f"{aside.name}-{time.strftime('%Y%m%d-%H%M%S')}")
        aside.mkdir()
        for path in run_dir.iterdir():
            if path.name != LOCK_FILE:
                path.rename(aside / path.name)
        logger.warning("%s held another run (settings or data changed): moved to %s, starting afresh", run_dir, aside)
    run_dir.mkdir(parents=True, exist_ok=True)
    previous = read_json(run_dir / RUN_FILE) if (run_dir / RUN_FILE).is_file() else {}
    write_json(run_dir / RUN_FILE, {**previous, "fingerprint": run_fingerprint, "finished": False})
    complete = {path for _, path in checkpoints(run_dir, marker)}
    for path in run_dir.glob("checkpoint-*"):
        if path not in complete:
            logger.warning("removing incomplete checkpoint %s", path)
            shutil.rmtree(path)
    found = checkpoints(run_dir, marker)
    return found[-1][1] if found else None


LOCK_FILE = ".writer.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _held_by_ancestor(holder: dict) -> bool:
    """Whether the lock's holder is an ancestor of this process on this host: the stage process that launched this
    rank holds the folder for every rank of its run."""
    import psutil

    pid = int(holder.get("pid", 0))
    return holder.get("host") == socket.gethostname() and any(p.pid == pid for p in psutil.Process().parents())


def _take_lock(lock: Path) -> bool:
    """Take ``lock`` for this process (False where an ancestor holds it for this run); a second writer stops with a
    one-line error naming the holder; the lock of a dead process on this host is taken over."""
    me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%dT%H:%M:%S")}
    while True:
        try:
            descriptor = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                holder = json.loads(lock.read_text())
            except (OSError, ValueError):  # being written by its holder this instant
                time.sleep(0.1)
                continue
            if _held_by_ancestor(holder):
                return False
            if holder.get("host") == me["host"] and not _alive(int(holder.get("pid", 0))):
                logger.warning("%s: taking over the lock of process %s, which ended", lock.parent, holder.get("pid"))
                lock.unlink(missing_ok=True)
                continue
            raise InputError(
                f"{lock.parent} is being written by process {holder.get('pid')} on {holder.get('host')} "
                f"(since {holder.get('since')}): wait for it to end, or use another paths.train_dir"
            ) from None
        with os.fdopen(descriptor, "w") as handle:
            json.dump(me, handle)
        return True


@contextmanager
def writer_lock(run_dir: str | Path):
    """Hold ``run_dir`` for this process (and the ranks it launches): a second writer stops with a one-line error
    naming the holder (pid, host, since when); the lock of a dead process on this host is taken over."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = run_dir / LOCK_FILE
    taken = _take_lock(lock)
    try:
        yield
    finally:
        if taken:
            lock.unlink(missing_ok=True)


def shared_resume_point(run_dir: str | Path, run_fingerprint: str, marker: str = MARKER, restart: bool = False):
    """:func:`resume_point` decided once, by the main process (the only one that tidies ``run_dir``), and shared with
    every other rank, which waits for it: all ranks resume from the same checkpoint. ``restart``: the algorithm
    cannot resume, so the run's checkpoints are removed and it starts again (None)."""
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list

    state = PartialState()
    decision: list[str | None] = [None]
    if state.is_main_process:
        found = resume_point(run_dir, run_fingerprint, marker)
        if found is not None and restart:
            logger.warning("this trainer cannot resume: training %s again from step 0", run_dir)
            for _, path in checkpoints(run_dir, marker):
                shutil.rmtree(path)
            found = None
        decision = [None if found is None else str(found)]
    if state.num_processes > 1:
        broadcast_object_list(decision, from_process=0)
    return None if decision[0] is None else Path(decision[0])


def has_resume_state(checkpoint: Path) -> bool:
    """Whether ``checkpoint`` still holds what a resume needs (an optimizer state, or DeepSpeed's ``global_step*``)."""
    return (checkpoint / "optimizer.pt").is_file() or any(checkpoint.glob("global_step*"))


def every_rank_saved(state) -> bool:
    """In a checkpoint callback's ``on_save``: wait until every rank has written its part of the checkpoint (DeepSpeed
    shards, RNG states), then True in the main process only, which marks the checkpoint complete."""
    from accelerate import PartialState

    PartialState().wait_for_everyone()
    return state.is_world_process_zero


def mark_finished(run_dir: str | Path) -> None:
    """Record in the run file that the run in ``run_dir`` has ended (a watcher stops waiting for checkpoints)."""
    run_file = Path(run_dir) / RUN_FILE
    write_json(run_file, read_json(run_file) | {"finished": True})


def is_finished(run_dir: str | Path) -> bool:
    """True once the run writing ``run_dir`` has ended (see :func:`mark_finished`)."""
    run_file = Path(run_dir) / RUN_FILE
    return run_file.is_file() and bool(read_json(run_file).get("finished"))


def drop_resume_state(checkpoint: Path) -> None:
    """Remove what only a resume needs (optimizer, scheduler, RNG states) from ``checkpoint``."""
    for pattern in RESUME_ONLY:
        for path in checkpoint.glob(pattern):
            shutil.rmtree(path) if path.is_dir() else path.unlink()


class MarkCheckpoint(TrainerCallback):
    """Writes the marker into each saved checkpoint (the trainer calls ``on_save`` after saving) and keeps
    the resume state of the newest complete checkpoint only, so every checkpoint's model stays for evaluation."""

    def __init__(self, run_fingerprint: str) -> None:
        self.run_fingerprint = run_fingerprint

    def on_save(self, args, state, control, **kwargs):
        if not every_rank_saved(state):
            return
        path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        marker = {"step": state.global_step, "fingerprint": self.run_fingerprint, "written": time.time()}
        write_json(path / MARKER, marker)
        for _, older in checkpoints(args.output_dir)[:-1]:
            drop_resume_state(older)
