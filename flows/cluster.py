"""Prepare a Prefect server for workers on many nodes (once; running it again changes nothing): the work pool the
deployments of ``prefect.yaml`` name, and the automation that marks a flow run crashed when its heartbeats stop
(its worker or node died), so that a matrix waiting for its cells is told instead of waiting forever.

    prefect server start                   # once, somewhere every node reaches (PREFECT_API_URL)
    python -m flows.cluster                # the work pool and the automation
    prefect --no-prompt deploy --all       # the deployments, from this checkout
    PREFECT_FLOWS_HEARTBEAT_FREQUENCY=30 RLVR_PROJECT_DIR=$PWD prefect worker start --pool rlvr-gpu --limit 1
"""

from __future__ import annotations

import argparse
from datetime import timedelta

POOL = "rlvr-gpu"
ZOMBIES = "rlvr: crash flow runs whose heartbeats stopped"
HEARTBEAT_SECONDS = 30  # PREFECT_FLOWS_HEARTBEAT_FREQUENCY on the workers (Prefect's minimum)
SILENCE_SECONDS = 3 * HEARTBEAT_SECONDS  # without a heartbeat before a flow run is marked crashed


def zombie_automation(silence_seconds: float):
    """Prefect's documented zombie rule: a flow run that sent a heartbeat and then, for ``silence_seconds``,
    neither another nor a final state is marked Crashed."""
    from prefect.automations import Automation
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    final = ("Completed", "Failed", "Cancelled", "Crashed")
    return Automation(
        name=ZOMBIES,
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", *(f"prefect.flow-run.{state}" for state in final)},
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=silence_seconds),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message=f"no heartbeat for {silence_seconds:.0f} s: its worker or node died",
            )
        ],
    )


def prepare(pool: str = POOL, silence_seconds: float = SILENCE_SECONDS) -> None:
    """Create the process work pool ``pool`` and the zombie automation where they are missing."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(pool)
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
            print(f"work pool {pool} created")
        if not client.read_automations_by_name(ZOMBIES):
            zombie_automation(silence_seconds).create()
            print(f"automation created: {ZOMBIES} (after {silence_seconds:.0f} s)")


def main() -> None:
    cli = argparse.ArgumentParser(
        prog="python -m flows.cluster", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    cli.add_argument("--pool", default=POOL, help="work pool name (default: %(default)s)")
    cli.add_argument(
        "--silence-seconds",
        type=float,
        default=SILENCE_SECONDS,
        help="how long without a heartbeat before a flow run is marked crashed (default: %(default)s)",
    )
    args = cli.parse_args()
    prepare(args.pool, args.silence_seconds)


if __name__ == "__main__":
    main()
