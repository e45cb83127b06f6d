"""Evaluate stage: the base model (step 0) and every complete checkpoint on the held-out test set and the
benchmarks, in every grading mode; results already computed with the same settings are reused."""

from rlvr.cli import stage_main


def main(_args, params) -> None:
    from rlvr.stages import evaluate  # here: --help answers before the stage's imports load

    evaluate.run(params)


if __name__ == "__main__":
    stage_main(
        "evaluate",
        __doc__,
        {
            "--model": ("model_dir", "base model directory"),
            "--train-dir": ("train_dir", "directory holding checkpoint-*"),
            "--test": ("test", "held-out test file"),
            "--out": ("eval_dir", "output directory"),
        },
        main,
    )
