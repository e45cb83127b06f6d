"""Prefect tasks: thin wrappers of the stages in ``rlvr.stages``."""
