"""Model stage: resolve the base model into a transformers directory."""

from rlvr import stages
from rlvr.cli import parser, run

if __name__ == "__main__":
    cli = parser(__doc__)
    cli.add_argument("--out", help="output model directory (default: paths.model_dir)")
    run(lambda a, p: stages.model(p, a.out or p.paths.model_dir), cli.parse_args())
