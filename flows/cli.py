"""The flows' command lines, kept apart from the flows themselves: ``--help`` and a bad input file answer before
Prefect, MLflow and the stages are imported (seconds on a small machine)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any, Literal, get_args

from pydantic import BaseModel

from rlvr.cli import add_set_option
from rlvr.config import parse_overrides
from rlvr.errors import ConfigError, InputError

TASK_RUNNERS = ("threads", "dask")
Dispatch = Literal["in-process", "work-pool"]  # where a matrix's cells run (flows.cross_family_flow)
DISPATCH = get_args(Dispatch)


class FanOut(BaseModel):
    """Where checkpoint evaluation runs: ``threads`` here, or ``dask`` (a scheduler ``dask_address``, or a
    local cluster of ``workers`` processes)."""

    task_runner: Literal["threads", "dask"] = "threads"
    dask_address: str | None = None
    workers: int | None = None


def flow_cli(
    prog: str, description: str, input_option: str, default: str, check: Callable[..., Any]
) -> argparse.ArgumentParser:
    """A flow's command line: its input file, ``--set`` overrides and the fan-out options."""
    cli = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    cli.add_argument(input_option, default=default, help="input file (default: %(default)s)")
    add_set_option(cli, "assignments")
    cli.add_argument(
        "--task-runner",
        choices=TASK_RUNNERS,
        default="threads",
        help="where checkpoints are evaluated (default: threads)",
    )
    cli.add_argument("--dask-address", help="a running Dask scheduler (default: a local cluster)")
    cli.set_defaults(check=check)
    return cli


def parse_flow_args(cli: argparse.ArgumentParser, input_name: str) -> argparse.Namespace:
    """Parsed arguments, the input file and overrides checked first: a bad one exits with one line naming it,
    status 2. ``args.overrides`` holds the ``--set`` values as nested sections."""
    args = cli.parse_args()
    try:
        args.overrides = parse_overrides(args.assignments)
        args.check(getattr(args, input_name), args.overrides)
    except (ConfigError, InputError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    return args


def fan_out(args: argparse.Namespace) -> FanOut:
    return FanOut(task_runner=args.task_runner, dask_address=args.dask_address)
