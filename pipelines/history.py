"""History stage: every pool example's accuracy per epoch, {"<id>": [acc_epoch_0, ...]}, from GRPO on the
pool (history.source: grpo), an existing history file (file) or the base model's pass rates (pass_rate)."""

from rlvr.cli import stage_main


def main(_args, params) -> None:
    from rlvr.stages import history  # here: --help answers before the stage's imports load

    history.run(params)


if __name__ == "__main__":
    stage_main(
        "history",
        __doc__,
        {
            "--model": ("model_dir", "model directory"),
            "--pool": ("pool", "pool file"),
            "--out": ("history", "output history JSON"),
        },
        main,
    )
