"""Grading modes: ``strict`` and ``lenient`` (math-verify), ``official`` (the paper's evaluation harness) and the
DeepScaleR training scorer; every symbolic check bounded in time (``bounded``)."""

GRADING_MODES = ("strict", "lenient", "official")
