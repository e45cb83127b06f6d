"""Cross-family flows over a matrix file (``rlvr.matrix``): the whole matrix, and its (nightly) evaluation.

    python -m flows.cross_family --matrix configs/matrix/smoke.yaml
    python -m flows.cross_family --matrix configs/matrix/smoke.yaml --evaluate-only

Each cell runs as a subflow with its own MLflow parent run, nested under the matrix's run; a model's first
stages are shared by its cells through their cache keys. One report covers every cell. The flows themselves are
in ``flows/cross_family_flow.py`` (the deployments' entrypoints).
"""

from flows.cli import fan_out, flow_cli, parse_flow_args
from rlvr.matrix import load_matrix


def main() -> None:
    cli = flow_cli("python -m flows.cross_family", __doc__, "--matrix", "configs/matrix/smoke.yaml", load_matrix)
    cli.add_argument("--evaluate-only", action="store_true", help="only evaluate new checkpoints, then report")
    args = parse_flow_args(cli, "matrix")
    from flows.cross_family_flow import cross_family, cross_family_evaluation  # once the command line is checked

    run = cross_family_evaluation if args.evaluate_only else cross_family
    print("report written to", run(args.matrix, fan_out(args), args.overrides or None))


if __name__ == "__main__":
    main()
