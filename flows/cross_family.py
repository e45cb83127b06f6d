"""Cross-family flows over a matrix file (``rlvr.matrix``): the whole matrix, and its (nightly) evaluation.

    python -m flows.cross_family --matrix configs/matrix/smoke.yaml
    python -m flows.cross_family --matrix configs/matrix/smoke.yaml --evaluate-only
    python -m flows.cross_family --matrix configs/matrix/paper.yaml --dispatch work-pool   # cells on workers

Each cell runs as a subflow with its own MLflow parent run, nested under the matrix's run; a model's first
stages are shared by its cells through their cache keys. One report covers every cell. The flows themselves are
in ``flows/cross_family_flow.py`` (the deployments' entrypoints).
"""

import sys

from flows.cli import DISPATCH, fan_out, flow_cli, parse_flow_args
from rlvr.matrix import load_matrix


def main() -> None:
    cli = flow_cli("python -m flows.cross_family", __doc__, "--matrix", "configs/matrix/smoke.yaml", load_matrix)
    cli.add_argument("--evaluate-only", action="store_true", help="only evaluate new checkpoints, then report")
    cli.add_argument(
        "--dispatch",
        choices=DISPATCH,
        default="in-process",
        help="where the cells run: one after another here, or each as a flow run of the experiment-cell deployment "
        "on the workers of its pool (default: in-process)",
    )
    args = parse_flow_args(cli, "matrix")
    from flows.cross_family_flow import CellsFailed, cross_family, cross_family_evaluation  # once it is checked

    try:
        if args.evaluate_only:
            report = cross_family_evaluation(args.matrix, fan_out(args), args.overrides or None)
        else:
            report = cross_family(args.matrix, fan_out(args), args.overrides or None, args.dispatch)
    except CellsFailed as failed:
        print(f"error: {failed}", file=sys.stderr)  # the flow run's log above holds each cell's own error
        sys.exit(1)
    print("report written to", report)


if __name__ == "__main__":
    main()
