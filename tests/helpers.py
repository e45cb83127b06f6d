"""What several test modules use (fixtures stay in ``conftest``): copies of the project, the smoke params on a
test model, the stages' environment, and the train stage's command line on a small run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import ROOT, TESTS, missing

from rlvr.config import parse_params
from rlvr.files import write_rows
from rlvr.generator import generate

# the paper presets: overlays of configs/paper/base.yaml (the base itself is the pi_1 preset's setting)
PRESETS = sorted(p for p in (ROOT / "configs" / "paper").glob("*.yaml") if p.stem != "base")
SMOKE_MATRIX = "configs/matrix/smoke.yaml"
GIT_USER = {"NAME": "rlvr tests", "EMAIL": "tests@localhost"}


def smoke_params(model: Path) -> dict:
    """The smoke profile on ``model``, with the scripted backend and a varying training reward."""
    params = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    params["model"]["source"] = str(model)
    params["history"]["reward"] = params["train"]["reward"] = "epoch_rewards:text_reward"
    params["evaluate"]["backend"] = "scripted:ScriptedBackend"
    return params


def project_copy(target: Path, params: dict, matrix_model: Path | None = None) -> Path:
    """A copy of the project's code, configs and pipeline files in ``target`` with ``params`` as params.yaml; with
    ``matrix_model``, the smoke matrix's one model is that one."""
    for name in ("rlvr", "pipelines", "tasks", "flows", "configs", "families", "scripts"):
        shutil.copytree(ROOT / name, target / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", ".dvcignore", "prefect.yaml"):
        shutil.copy(ROOT / name, target / name)
    (target / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    if matrix_model is not None:
        spec = yaml.safe_load((ROOT / SMOKE_MATRIX).read_text())
        spec["models"] = {"smollm2": {"model": {"source": str(matrix_model)}}}
        (target / SMOKE_MATRIX).write_text(yaml.safe_dump(spec))
    return target


def stage_env(work: Path) -> dict[str, str]:
    """The stages' environment: this interpreter's tools first, offline, the test helpers importable, the
    scripted backend reading the project's data files."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    git = {f"GIT_{who}_{what}": value for who in ("AUTHOR", "COMMITTER") for what, value in GIT_USER.items()}
    path = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    data = str(work / "outputs" / "data" / "**" / "*.jsonl")
    fast = {"MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL": "0.2"}  # the smoke stages last a second or two
    return {
        **env,
        **git,
        **fast,
        "PATH": path,
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(TESTS),
        "RLVR_SCRIPTED_DATA": data,
    }


def train_rows(n: int = 1) -> list[dict]:
    """Four training rows drawn from ``n`` generated pool examples."""
    pool, _ = generate(max(n, 2), 0, seed=0)
    return [pool[i % n] for i in range(4)]


def train_params(folder: Path, **train) -> None:
    """params.yaml (the smoke profile, a small GRPO run with ``train`` settings, MLflow in the folder) and
    train.jsonl in ``folder``."""
    params = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    params["mlflow"]["tracking_uri"] = f"sqlite:///{folder / 'mlflow.db'}"
    values = dict(reward="epoch_rewards:text_reward", num_generations=2, per_device_train_batch_size=4)
    values.update(max_completion_length=6, max_steps=6, save_steps=2, sample_steps=3, learning_rate=1e-3)
    params["train"].update({**values, **train})
    parse_params(params)
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    write_rows(folder / "train.jsonl", train_rows(2))


def train_command(model: Path, out: str = "run") -> list[str]:
    """The train stage on ``folder``'s params.yaml and train.jsonl (:func:`train_params`), into ``out``."""
    return [sys.executable, "-m", "pipelines.train", "--params", "params.yaml", "--model", str(model),
            "--data", "train.jsonl", "--out", out]  # fmt: skip


def train_env(extra: dict | None = None) -> dict:
    """The train stage's environment: the project and the test rewards importable, MLflow from params.yaml."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{TESTS}", **(extra or {})}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def run_train(folder: Path, model: Path, out: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The train stage run to its end in ``folder`` (see :func:`train_command`)."""
    return subprocess.run(train_command(model, out), cwd=folder, capture_output=True, text=True, timeout=600,
                          env=train_env(env))  # fmt: skip


def mlflow_runs(folder: Path):
    """The MLflow client of ``folder``'s store and the smoke experiment's runs."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("one-shot-rlvr-smoke")
    return client, client.search_runs([experiment.experiment_id])


def open_in_chromium(page: Path | str, screenshot: Path | None = None) -> tuple[str, list[str]]:
    """The DOM headless Chromium builds from ``page`` (a file, or a URL) and the console messages it logged; with
    ``screenshot``, also a picture of the page as a 1280 x 1000 window shows it."""
    url = page.as_uri() if isinstance(page, Path) else page
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        missing("chromium not installed (Debian: apt-get install chromium chromium-driver)")
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    command = [*flags, "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000", "--dump-dom", url]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    if screenshot is not None:
        shot = [*flags, "--hide-scrollbars", "--window-size=1280,1000", f"--screenshot={screenshot}", url]
        taken = subprocess.run(shot, capture_output=True, text=True, timeout=120)
        assert taken.returncode == 0, taken.stderr[-2000:]
    return result.stdout, console
