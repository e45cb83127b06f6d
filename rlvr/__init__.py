"""1-shot RLVR pipeline library: all stage logic, testable without Prefect, DVC or MLflow running."""
