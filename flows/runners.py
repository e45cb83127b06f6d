"""Task runners for fanning checkpoint evaluation out: threads in this process, or a Dask cluster.

``threads`` evaluates one model at a time unless ``workers`` says otherwise: loading transformers models in
several threads at once is not safe (measured: "Cannot copy out of meta tensor"), and one GPU holds one model.

``dask`` with an ``address`` uses a running Dask scheduler, whose workers may sit on other GPUs and nodes
(start one worker per GPU, ``--nthreads 1``, so that each evaluates one checkpoint at a time); without one, a
local cluster of ``workers`` processes.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from rlvr.config import ConfigError, InputError

TASK_RUNNERS = ("threads", "dask")


def make_task_runner(kind: str = "threads", address: str | None = None, workers: int | None = None) -> TaskRunner:
    """The task runner named ``kind`` (see module docstring)."""
    if kind == "threads":
        return ThreadPoolTaskRunner(max_workers=workers or 1)
    if kind == "dask":
        from prefect_dask import DaskTaskRunner

        if address:
            return DaskTaskRunner(address=address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": workers or 1, "threads_per_worker": 1})
    raise ValueError(f"task_runner must be one of {', '.join(TASK_RUNNERS)}, got {kind!r}")


def flow_cli(description: str, input_option: str, default: str, check: Callable[[str], Any]) -> argparse.ArgumentParser:
    """A flow's command line: its input file option and the fan-out options."""
    cli = argparse.ArgumentParser(description=description)
    cli.add_argument(input_option, default=default, help="input file (default: %(default)s)")
    cli.add_argument("--task-runner", choices=TASK_RUNNERS, default="threads", help="checkpoint evaluation")
    cli.add_argument("--dask-address", help="a running Dask scheduler (default: a local cluster)")
    cli.set_defaults(check=check)
    return cli


def parse_flow_args(cli: argparse.ArgumentParser, input_name: str) -> argparse.Namespace:
    """Parsed arguments, the input file checked first: a bad one exits with one line naming it, status 2."""
    args = cli.parse_args()
    try:
        args.check(getattr(args, input_name))
    except (ConfigError, InputError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    return args
