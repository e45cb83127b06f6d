"""Serve the deployments of ``prefect.yaml`` from this process: schedules and on-demand runs on a laptop,
without a work pool or worker (``prefect deploy --all`` and a worker do the same on a cluster).

    python -m flows.serve                       # every deployment, with its schedule
    python -m flows.serve --only nightly        # some of them
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from rlvr.errors import ConfigError

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment

PROJECT_FILE = Path("prefect.yaml")


def deployments(project_file: Path = PROJECT_FILE, only: list[str] | None = None) -> list[RunnerDeployment]:
    """The deployments of ``project_file`` (name, entrypoint, parameters, cron schedules) as served ones."""
    from prefect.flows import load_flow_from_entrypoint  # here, not at the top: --help answers before Prefect loads
    from prefect.schedules import Cron

    spec = yaml.safe_load(project_file.read_text())
    served = []
    for entry in spec["deployments"]:
        if only and entry["name"] not in only:
            continue
        schedules = [Cron(s["cron"], timezone=s.get("timezone")) for s in entry.get("schedules") or []]
        served.append(
            load_flow_from_entrypoint(entry["entrypoint"]).to_deployment(
                name=entry["name"],
                description=entry.get("description"),
                parameters=entry.get("parameters") or {},
                schedules=schedules or None,
                concurrency_limit=entry.get("concurrency_limit"),
            )
        )
    if only and len(served) != len(only):
        raise ConfigError(f"{project_file}: no deployment named {sorted(set(only) - {d.name for d in served})}")
    return served


def main() -> None:
    cli = argparse.ArgumentParser(
        prog="python -m flows.serve", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    cli.add_argument("--only", nargs="+", help="deployment names (default: all)")
    args = cli.parse_args()
    try:
        served = deployments(only=args.only)
    except (OSError, ValueError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    from prefect import serve

    serve(*served)


if __name__ == "__main__":
    main()
