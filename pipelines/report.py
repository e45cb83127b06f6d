"""Report stage: tables (with 95% intervals and paired tests against the base model), figures and findings,
as report.md, report.html and PNGs, for this run and the MLflow runs it is compared with."""

from rlvr.cli import stage_main


def main(_args, params) -> None:
    from rlvr.stages import report  # here: --help answers before the stage's imports load

    report.run(params)


if __name__ == "__main__":
    stage_main(
        "report",
        __doc__,
        {
            "--train-dir": ("train_dir", "train stage output"),
            "--eval-dir": ("eval_dir", "evaluate stage output"),
            "--selection": ("selection", "selected training rows"),
            "--out": ("report_dir", "output directory"),
        },
        main,
    )
