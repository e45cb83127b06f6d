"""Task runners for fanning checkpoint evaluation out: threads in this process, or a Dask cluster.

``threads`` evaluates one model at a time unless ``workers`` says otherwise: loading transformers models in
several threads at once is not safe (measured: "Cannot copy out of meta tensor"), and one GPU holds one model.

``dask`` with an ``address`` uses a running Dask scheduler, whose workers may sit on other GPUs and nodes
(start one worker per GPU, ``--nthreads 1``, so that each evaluates one checkpoint at a time); without one, a
local cluster of ``workers`` processes.
"""

from __future__ import annotations

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from flows.cli import TASK_RUNNERS
from rlvr.errors import ConfigError


def make_task_runner(kind: str = "threads", address: str | None = None, workers: int | None = None) -> TaskRunner:
    """The task runner named ``kind`` (see module docstring)."""
    if kind == "threads":
        return ThreadPoolTaskRunner(max_workers=workers or 1)
    if kind == "dask":
        from prefect_dask import DaskTaskRunner

        if address:
            return DaskTaskRunner(address=address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": workers or 1, "threads_per_worker": 1})
    raise ConfigError(f"task_runner must be one of {', '.join(TASK_RUNNERS)}, got {kind!r}")
