"""Grading modes: ``strict`` and ``lenient`` (math-verify), ``official`` (the paper's evaluation harness) and the
DeepScaleR training scorer; every symbolic check bounded in time (``bounded``)."""

GRADING_MODES = ("strict", "lenient", "official")
CHOICE_DATASETS = ("arc_easy", "arc_challenge")  # multiple choice: graded on the option letter
