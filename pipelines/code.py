"""Code stage: the hash of the code each stage runs, by meaning (``rlvr.codehash``: docstrings, comments and help
texts left out), one file per stage in ``paths.code_dir``; each stage of ``dvc.yaml`` depends on its file.

    python -m pipelines.code --params params.yaml"""

from rlvr.cli import stage_main


def main(args, params) -> None:
    from rlvr.codehash import write_hashes
    from rlvr.stages import NAMES

    write_hashes(params.paths.code_dir, list(NAMES))


if __name__ == "__main__":
    stage_main("code", __doc__, {}, main)
