"""The experiment flow (one model x one example set): the same stages, params and outputs as ``dvc repro``.

    python -m flows.experiment --params params.yaml

Each stage is a cached task (``tasks.stages``): a rerun with unchanged inputs skips it. Checkpoint evaluation
fans out, one task per model, on the task runner ``--task-runner`` names (threads, or a Dask cluster). The flows
themselves are in ``flows/experiment_flow.py`` (the deployments' entrypoints).
"""

from flows.cli import fan_out, flow_cli, parse_flow_args
from rlvr.config import load_params


def main() -> None:
    cli = flow_cli("python -m flows.experiment", __doc__, "--params", "params.yaml", load_params)
    args = parse_flow_args(cli, "params")
    from flows.experiment_flow import one_shot_rlvr  # once the command line is checked: Prefect loads slowly

    print("report written to", one_shot_rlvr(args.params, args.overrides or None, fan_out=fan_out(args)))


if __name__ == "__main__":
    main()
