"""Shared fixtures: the repository root, the reference data folder, offline Hub, the test models, one Prefect
test harness per session.

Test tiers (markers): unmarked tests need no model generation or training (``make test-fast``);
``integration`` tests run the pipeline's pieces on a tiny model (``make test``, with the fast ones); ``slow``
tests run longer (``make test-all``); ``gpu`` tests need CUDA (``scripts/gpu_check.sh``); ``distributed`` and
``cluster`` tests start several processes: DeepSpeed ranks, or servers and workers (their own ``make`` targets).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
SHARED_DATA = Path(os.environ.get("RLVR_SHARED_DATA", ROOT.parent / "shared" / "data"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def process_family(process: subprocess.Popen) -> list[psutil.Process]:
    """``process`` and every process it started (none once it has ended)."""
    try:
        return [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def stop(process: subprocess.Popen) -> None:
    """Kill ``process`` and every process it started, as a node's death would."""
    family = process_family(process)
    for member in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.kill()
    psutil.wait_procs(family, timeout=30)


def wait_for(url: str, process: subprocess.Popen, seconds: float) -> None:
    """Return once ``url`` answers; RuntimeError if ``process`` (its server) ends first or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[:3]} ended with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer in {seconds} s")


def mlflow_server(folder: Path, port: int) -> subprocess.Popen:
    """A real ``mlflow server`` (SQL store and artifact root in ``folder``) once it answers."""
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
               "--backend-store-uri", f"sqlite:///{folder / 'server.db'}", "--default-artifact-root",
               str(folder / "artifacts")]  # fmt: skip
    server = subprocess.Popen(command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(f"http://127.0.0.1:{port}/health", server, 120)
    except RuntimeError:
        stop(server)
        raise
    return server


def missing(message: str) -> None:
    """Skip the test, except under ``CI=true``, where what is missing fails it rather than hiding it."""
    if os.environ.get("CI") == "true":
        pytest.fail(message + " (CI=true: skips are not allowed)")
    pytest.skip(message)


def require(relative: str) -> Path:
    """A file of the reference folder beside the checkout (``data/...`` or ``docs/...``); where it is absent the
    test skips (fails under CI)."""
    path = SHARED_DATA.parent / relative
    if not path.exists():
        missing(f"reference file not found: {path}")
    return path


def require_vllm() -> None:
    """vLLM (its CPU build here: ``make setup-vllm``); where it is not installed the test skips (fails under CI)."""
    if importlib.util.find_spec("vllm") is None:
        missing("vLLM is not installed (make setup-vllm)")


@pytest.fixture
def shared_data() -> Path:
    """The reference data folder beside the checkout; tests using it skip where it is absent (fail under CI)."""
    return require("data")


def run_module(cwd: Path, module: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m module args`` in ``cwd`` with this checkout and the test helpers importable."""
    environment = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{TESTS}", **(env or {})}
    environment.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, capture_output=True, text=True, timeout=600, env=environment
    )


@pytest.fixture(scope="session")
def embedded_model(tmp_path_factory) -> Path:
    """The embedded model (SmolLM2-135M-Instruct) converted from its GGUF once per session: for the tests that
    need a real model's behaviour."""
    from rlvr.models import prepare_model

    return prepare_model("embedded", tmp_path_factory.mktemp("embedded") / "model")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny model with random weights and the embedded model's real tokenizer and chat template (SmolLM2's
    architecture, 2 layers of width 64): for the tests of the pipeline's wiring, fast and a few MB a checkpoint."""
    from tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect server and database for every test that runs flows."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield
