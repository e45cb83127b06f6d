"""1-shot RLVR pipeline library: all stage logic, testable without Prefect, DVC or MLflow running."""

from rlvr.machine import pin_portable_kernels

pin_portable_kernels()  # before any torch computation: the same float32 numbers on any x86 CPU (rlvr.machine)
