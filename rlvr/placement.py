"""Where the evaluation's work runs: worker processes, and on a node's GPUs several checkpoints at once, one engine
per GPU group.

The visible CUDA devices (``CUDA_VISIBLE_DEVICES`` applied) form groups of ``tensor_parallel_size`` devices. Each
model (the base model, a checkpoint) runs in a process of its own pinned to a free group (``CUDA_VISIBLE_DEVICES``
set before CUDA starts in it), as many at once as there are groups; the groups are leased process-wide, so concurrent
callers (the Prefect flow's checkpoint tasks on its thread runner) never share one. A Dask worker pinned to a GPU
(``CUDA_VISIBLE_DEVICES`` at its start) sees one group and evaluates there.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

logger = logging.getLogger(__name__)

_LEASES: dict[tuple[str, ...], queue.Queue] = {}
_LEASES_LOCK = threading.Lock()


def visible_gpus() -> list[str]:
    """The CUDA devices this process may use, as ``CUDA_VISIBLE_DEVICES`` names them (none without CUDA)."""
    import torch

    if not torch.cuda.is_available():
        return []
    count = torch.cuda.device_count()
    listed = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return (listed or [str(i) for i in range(count)])[:count]


def gpu_groups(devices: list[str], size: int) -> list[str]:
    """``devices`` in groups of ``size`` (one model's engine each), as ``CUDA_VISIBLE_DEVICES`` values; devices that
    make no whole group are left idle."""
    return [",".join(devices[i : i + size]) for i in range(0, len(devices) - size + 1, size)]


def _leases(groups: list[str]) -> queue.Queue:
    with _LEASES_LOCK:
        if tuple(groups) not in _LEASES:
            free: queue.Queue = queue.Queue()
            for group in groups:
                free.put(group)
            _LEASES[tuple(groups)] = free
        return _LEASES[tuple(groups)]


def _pin(group: str) -> None:
    """A worker's start: only ``group``'s devices visible (before CUDA starts in it), one log format."""
    os.environ["CUDA_VISIBLE_DEVICES"] = group
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def run_pinned(work: Callable[[Any], Any], items: list[Any], groups: list[str]) -> list[Any]:
    """``work(item)`` for each item (a model's jobs), each in a fresh process pinned to a free group, as many at once
    as there are groups; results in the order of ``items``. A signal or an error stops every worker."""
    free = _leases(groups)
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: CUDA not started before the pinning
    pools: list[ProcessPoolExecutor] = []

    def run(item: Any) -> Any:
        group = free.get()
        try:
            pool = ProcessPoolExecutor(1, mp_context=context, initializer=_pin, initargs=(group,))
            pools.append(pool)
            with pool:
                logger.info("evaluating on GPU(s) %s", group)
                return pool.submit(work, item).result()
        finally:
            free.put(group)

    threads = ThreadPoolExecutor(len(groups), thread_name_prefix="gpu")
    try:
        return list(threads.map(run, items))
    except BaseException:
        for pool in pools:
            terminate_workers(pool)
        raise
    finally:
        threads.shutdown(wait=False, cancel_futures=True)


def terminate_workers(pool: ProcessPoolExecutor) -> None:
    """End ``pool``'s worker processes now (an error or a signal: the jobs in flight are not waited for)."""
    for process in getattr(pool, "_processes", {}).values():
        process.terminate()
