"""Command lines of the stages (``python -m pipelines.<stage>``): params file, ``--set`` overrides, path flags,
logging, and one-line errors.

Every stage reads its paths from ``params.paths``; a path flag (``--out`` ...) replaces that path before the
stage runs. ``--set section.key=value`` (repeatable) overrides a params value before validation.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable

from rlvr.config import Params, load_params, parse_overrides
from rlvr.errors import ConfigError, InputError

EXIT_BAD_INPUT = 2
EXIT_TERMINATED = 143


def parser(prog: str, description: str, params_default: str | None = "params.yaml") -> argparse.ArgumentParser:
    """An argument parser with ``--params`` and ``--set``; ``description`` shown as written."""
    result = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    result.add_argument("--params", default=params_default, help="params YAML file (default: %(default)s)")
    add_set_option(result)
    return result


def add_set_option(cli: argparse.ArgumentParser, dest: str = "overrides", what: str = "a params value") -> None:
    """``--set SECTION.KEY=VALUE`` (repeatable), the one override option of every command; its values are read by
    ``rlvr.config.parse_overrides``."""
    cli.add_argument(
        "--set",
        dest=dest,
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help=f"override {what} (repeatable), e.g. --set train.max_steps=10; the value is read as YAML",
    )


def add_path_flags(cli: argparse.ArgumentParser, flags: dict[str, tuple[str, str]]) -> None:
    """Options replacing ``params.paths`` entries: ``{"--out": ("report_dir", "output directory")}``."""
    for flag, (key, what) in flags.items():
        cli.add_argument(flag, dest=f"path_{key}", metavar="PATH", help=f"{what} (default: paths.{key})")


def load(args: argparse.Namespace) -> Params | None:
    """The params of ``args``: the file, its ``--set`` overrides, then its path flags."""
    if not args.params:
        if args.overrides:
            raise ConfigError("--set needs a params file (--params)")
        return None
    # under dvc repro (DVC_STAGE set) the params file must hold every key: DVC tracks those written in it
    params = load_params(args.params, parse_overrides(args.overrides), whole="DVC_STAGE" in os.environ)
    paths = {key[len("path_") :]: value for key, value in vars(args).items() if key.startswith("path_") and value}
    return params.model_copy(update={"paths": params.paths.model_copy(update=paths)}) if paths else params


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("accelerate").setLevel(logging.WARNING)  # its INFO lines repeat on every PPO step


def run(main: Callable[[argparse.Namespace, Params | None], object], args: argparse.Namespace) -> None:
    """Run a command: bad params or inputs (the project's :class:`ConfigError` and :class:`InputError`) print one
    line naming the key or file and exit with status 2; any other error is a bug and keeps its traceback (status 1);
    a SIGTERM or Ctrl-C ends it (tracked runs marked KILLED) with status 143 or 130."""
    from rlvr.tracking import Terminated, interruptible

    setup_logging()
    try:
        with interruptible():
            main(args, load(args))
    except (ConfigError, InputError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"error: {message}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except Terminated:
        print("stopped by SIGTERM", file=sys.stderr)
        sys.exit(EXIT_TERMINATED)
    except KeyboardInterrupt:
        print("stopped by Ctrl-C", file=sys.stderr)
        sys.exit(130)


def stage_main(
    name: str, description: str, flags: dict[str, tuple[str, str]], main: Callable[[argparse.Namespace, Params], object]
) -> None:
    """The entry point of stage ``name`` (``python -m pipelines.<name>``): parse the command line, then
    ``main(args, params)``, which imports the stage's module itself (so that ``--help`` and a bad params file
    answer before torch, TRL and MLflow load, and the stage's code is the entry point's)."""
    cli = parser(f"python -m pipelines.{name}", description)
    add_path_flags(cli, flags)
    run(main, cli.parse_args())
