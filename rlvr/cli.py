"""Shared command-line plumbing for the stage entry points: logging and one-line errors."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from rlvr.config import ConfigError, InputError, Params, load_params


def parser(description: str, params_default: str | None = "params.yaml") -> argparse.ArgumentParser:
    """An argument parser with the common ``--params`` option."""
    result = argparse.ArgumentParser(description=description)
    result.add_argument("--params", default=params_default, help="params YAML file (default: %(default)s)")
    return result


def run(main: Callable[[argparse.Namespace, Params | None], object], args: argparse.Namespace) -> None:
    """Run a stage: bad params or inputs print one line naming the key or file and exit with status 2."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("accelerate").setLevel(logging.WARNING)  # its INFO lines repeat on every PPO step
    try:
        params = load_params(args.params) if args.params else None
        main(args, params)
    except (ConfigError, InputError, ValueError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)
