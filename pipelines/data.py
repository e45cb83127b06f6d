"""Data stage: materialise the candidate pool, the held-out test set and the benchmarks (normalised rows),
with a manifest of row counts, left-out rows and SHA-256 hashes."""

from rlvr.cli import stage_main


def main(_args, params) -> None:
    from rlvr.stages import data  # here: --help answers before the stage's imports load

    data.run(params)


if __name__ == "__main__":
    stage_main("data", __doc__, {"--pool": ("pool", "output pool file"), "--test": ("test", "output test file")}, main)
