"""The wheels the GPU check (``scripts/gpu_check.sh``) needs on a machine that has a CUDA GPU, Python 3.12, PyTorch,
transformers, accelerate and peft but no network: what the GPU tier imports beyond those (TRL, datasets, pydantic,
math-verify, MLflow's client, ...), at the versions this environment runs, as Python 3.12 wheels.

    python scripts/gpu_wheels.py gpu-wheels                 # here (make gpu-wheels): download or build them
    python scripts/gpu_wheels.py --install gpu-wheels       # there: install those whose distribution is missing

Every wheel is pure Python but pydantic-core's and orjson's (manylinux builds for CPython 3.12); a distribution the
machine already has is left as it is.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

# what the GPU tier imports beyond PyTorch, transformers, accelerate, peft and the scientific stack (numpy, pandas,
# pyarrow, scipy, sympy, pyyaml, requests, pytest), found by importing tests/test_gpu.py and
# scripts/measure_loss_memory.py with vLLM, DeepSpeed, Prefect and DVC absent
NEEDED = [
    "trl", "datasets", "dill", "multiprocess", "pydantic", "pydantic-core", "annotated-types", "typing-inspection",
    "pydantic-extra-types", "math-verify", "latex2sympy2_extended", "antlr4-python3-runtime", "word2number",
    "pylatexenc", "mlflow-skinny", "mlflow-tracing", "cachetools", "databricks-sdk", "google-auth",
    "googleapis-common-protos", "fastapi", "starlette", "python-multipart", "email-validator", "dnspython", "orjson",
    "opentelemetry-api", "opentelemetry-sdk", "opentelemetry-proto", "opentelemetry-semantic-conventions",
    "opentelemetry-semantic-conventions-ai", "opentelemetry-exporter-otlp", "opentelemetry-exporter-otlp-common",
    "opentelemetry-exporter-otlp-proto-common", "opentelemetry-exporter-otlp-proto-grpc",
    "opentelemetry-exporter-otlp-proto-http", "opentelemetry-exporter-http-transport", "importlib-metadata", "sqlparse",
    "httpx2", "httpcore2", "h2", "hpack", "hyperframe", "sniffio", "trio", "outcome", "truststore", "pysocks", "pydot",
]  # fmt: skip
PLATFORM = ["--python-version", "3.12", "--implementation", "cp", "--abi", "cp312", "--abi", "abi3", "--abi", "none",
            "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64", "--platform",
            "manylinux2014_x86_64", "--platform", "any"]  # fmt: skip


def download(folder: Path) -> None:
    """Each needed distribution at this environment's version: a binary wheel for Python 3.12, or one built here
    from its source where the index has none (pure Python)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in NEEDED:
        pinned = f"{name}=={version(name)}"
        pip = [sys.executable, "-m", "pip"]
        got = subprocess.run([*pip, "download", "-q", "--no-deps", "--only-binary=:all:", *PLATFORM, "-d", str(folder),
                              pinned], capture_output=True, text=True)  # fmt: skip
        if got.returncode:  # a source distribution only: its wheel is pure Python
            subprocess.run([*pip, "wheel", "-q", "--no-deps", "-w", str(folder), pinned], check=True)
    total = sum(path.stat().st_size for path in folder.glob("*.whl"))
    print(f"{len(list(folder.glob('*.whl')))} wheels, {total / 2**20:.1f} MiB in {folder}")


def install(folder: Path) -> None:
    """Install, without the network and without their dependencies, the wheels whose distribution is missing."""
    missing = []
    for wheel in sorted(folder.glob("*.whl")):
        try:
            version(wheel.name.split("-")[0])
        except PackageNotFoundError:
            missing.append(str(wheel))
    print(f"installing {len(missing)} of {len(list(folder.glob('*.whl')))} wheels (the others are installed)")
    if missing:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", *missing], check=True)


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("folder", type=Path, help="the wheel folder")
    cli.add_argument("--install", action="store_true", help="install the missing ones (on the GPU machine)")
    args = cli.parse_args()
    install(args.folder) if args.install else download(args.folder)


if __name__ == "__main__":
    main()
