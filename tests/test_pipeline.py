"""End to end on the embedded model with the smoke profile: ``dvc repro`` and the Prefect flow."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml
from conftest import ROOT
from mlflow.tracking import MlflowClient

STAGES = {"model", "data", "history", "select", "train", "evaluate", "report"}
GIT_USER = {"NAME": "rlvr tests", "EMAIL": "tests@localhost"}
pytestmark = pytest.mark.integration


def _project_copy(target: Path, params: dict) -> Path:
    for name in ("rlvr", "pipelines", "tasks", "flows", "configs", "families"):
        shutil.copytree(ROOT / name, target / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy(ROOT / name, target / name)
    (target / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return target


def _env() -> dict[str, str]:
    """The stages' environment: this interpreter's tools first, offline, tracking as the params say."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    git = {f"GIT_{who}_{what}": value for who in ("AUTHOR", "COMMITTER") for what, value in GIT_USER.items()}
    return {**env, **git, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}", "HF_HUB_OFFLINE": "1"}


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def _smoke_params() -> dict:
    return yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())


@pytest.fixture(scope="module")
def dvc_project(tmp_path_factory) -> Path:
    """A copy of the project with the smoke profile as params.yaml, after one ``dvc repro``."""
    work = _project_copy(tmp_path_factory.mktemp("dvc"), _smoke_params())
    _run(["git", "init", "-q"], work)
    _run(["dvc", "init", "-q"], work)
    shutil.copy(ROOT / ".dvc" / "config", work / ".dvc" / "config")  # the project's remote and cache settings
    shutil.copy(ROOT / ".gitignore", work / ".gitignore")
    _run(["dvc", "repro"], work)
    _run(["git", "add", "-A"], work)
    _run(["git", "commit", "-q", "-m", "smoke pipeline"], work)  # dvc exp run starts from a commit
    return work


def _copy_project(project: Path, target: Path) -> Path:
    """A copy of a project after ``dvc repro``, weight files and the DVC cache hard-linked (they are only ever
    replaced, never written in place) so that each copy does not take another few GB of disk."""
    cache = str(project / ".dvc" / "cache")

    def copy(source: str, destination: str) -> None:
        linked = source.endswith(".safetensors") or source.startswith(cache)
        (os.link if linked else shutil.copy2)(source, destination)

    return Path(shutil.copytree(project, target, symlinks=True, copy_function=copy))


def _stage_runs(client: MlflowClient, experiment: str, runner: str) -> tuple[mlflow.entities.Run, list]:
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    parents = client.search_runs([experiment_id], filter_string=f"tags.`rlvr.runner` = '{runner}'")
    assert len(parents) == 1
    parent = parents[0]
    children = client.search_runs([experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    return parent, children


def _check_outputs(work: Path, params: dict) -> None:
    paths = params["paths"]
    report = (work / paths["report_dir"] / "report.md").read_text()
    assert "## Main table: each run's best checkpoint" in report
    assert f"| base · {Path(params['model']['source']).name} | 0 |" in report
    assert (work / paths["report_dir"] / "run-1-accuracy.png").stat().st_size > 1000
    assert (work / paths["report_dir"] / "report.html").stat().st_size > 10000
    history = json.loads((work / paths["history"]).read_text())
    pool_ids = [json.loads(line)["id"] for line in (work / paths["pool"]).read_text().splitlines()]
    assert sorted(history) == sorted(pool_ids)
    assert all(len(v) == params["history"]["num_train_epochs"] for v in history.values())
    by_step = json.loads((work / paths["eval_dir"] / "by_step.json").read_text())
    steps = list(range(0, params["train"]["max_steps"] + 1, params["train"]["save_steps"]))
    assert [row["step"] for row in by_step] == steps
    assert all(row["num_problems"] == params["data"]["test_size"] for row in by_step)


def _check_tracking(work: Path, params: dict, runner: str) -> None:
    client = MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}")  # no global state: flows set their own
    parent, children = _stage_runs(client, params["mlflow"]["experiment"], runner)
    assert parent.info.status == "FINISHED"
    assert {run.data.tags["rlvr.stage"] for run in children} == STAGES
    assert all(run.info.status == "FINISHED" for run in children)
    train = next(run for run in children if run.data.tags["rlvr.stage"] == "train")
    assert float(train.data.params["learning_rate"]) == params["train"]["learning_rate"]
    evaluate = next(run for run in children if run.data.tags["rlvr.stage"] == "evaluate")
    history = client.get_metric_history(evaluate.info.run_id, "test.accuracy_strict")
    assert sorted(m.step for m in history) == list(
        range(0, params["train"]["max_steps"] + 1, params["train"]["save_steps"])
    )
    assert client.get_metric_history(train.info.run_id, "train.reward")
    report = next(run for run in children if run.data.tags["rlvr.stage"] == "report")
    assert "report/report.md" in [a.path for a in client.list_artifacts(report.info.run_id, "report")]


def test_dvc_repro_runs_every_stage_and_tracks_them(dvc_project):
    params = _smoke_params()
    _check_outputs(dvc_project, params)
    _check_tracking(dvc_project, params, "dvc")


def test_dvc_stage_runs_carry_the_inputs_hash_dvc_locked(dvc_project):
    """Each stage tags, when it starts, the hash of its inputs that dvc.lock records once it has run."""
    from rlvr.lineage import locked_inputs_md5

    client = MlflowClient(tracking_uri=f"sqlite:///{dvc_project / 'mlflow.db'}")
    _, children = _stage_runs(client, _smoke_params()["mlflow"]["experiment"], "dvc")
    for run in children:
        stage = run.data.tags["rlvr.stage"]
        assert run.data.tags["rlvr.dvc_inputs_md5"] == locked_inputs_md5(stage, dvc_project / "dvc.lock"), stage


def test_dvc_exp_run_with_a_set_param_is_listed_by_exp_show(dvc_project, tmp_path):
    work = _copy_project(dvc_project, tmp_path / "exp")
    _run(["dvc", "exp", "run", "-S", "train.learning_rate=3e-5", "-n", "lr-3e-5"], work)
    rows = list(csv.DictReader(io.StringIO(_run(["dvc", "exp", "show", "--csv"], work).stdout)))
    [row] = [row for row in rows if row["Experiment"] == "lr-3e-5"]
    assert float(row["train.learning_rate"]) == 3e-5
    baseline = [row for row in rows if row["rev"] not in ("workspace", "lr-3e-5") and not row["Experiment"]]
    assert float(baseline[0]["train.learning_rate"]) == _smoke_params()["train"]["learning_rate"]  # the commit
    for metric in ("best.step", "best.average.accuracy_strict", "base.average.accuracy_strict"):
        assert row[metric] not in ("", "-"), metric


def test_materialised_datasets_are_versioned_and_pushed_to_the_remote(dvc_project):
    paths = _smoke_params()["paths"]
    manifest = json.loads((dvc_project / paths["data_manifest"]).read_text())
    assert manifest["pool"]["rows"] == 2 and manifest["test"]["missing_answer"] == 0
    _run(["dvc", "push", "data"], dvc_project)
    pushed = [p for p in (dvc_project / ".dvc-storage").rglob("*") if p.is_file()]
    assert len(pushed) >= 2  # pool and test set (the benchmarks folder is empty in the smoke profile)
    _run(["dvc", "status", "--cloud", "data"], dvc_project)
    metrics = _run(["dvc", "metrics", "show", "--json"], dvc_project).stdout
    assert "accuracy_strict" in metrics


def test_dvc_repro_again_does_nothing(dvc_project):
    result = _run(["dvc", "repro"], dvc_project)
    assert "Data and pipelines are up to date" in result.stdout
    assert "Running stage" not in result.stdout


@pytest.mark.slow  # 2 minutes; the same cells run through the Prefect matrix flow in the default test run
def test_dvc_families_pipeline_runs_every_cell_then_one_report(tiny_model, tmp_path):
    """families/dvc.yaml: base@model, cell@model-examples-algorithm (DVC matrix stages), report."""
    work = _project_copy(tmp_path, _smoke_params())
    spec = yaml.safe_load((work / "families" / "matrix.yaml").read_text())
    spec["models"] = {"smollm2": {"model": {"source": str(tiny_model)}}}  # the 2-layer cut: this tests the wiring
    (work / "families" / "matrix.yaml").write_text(yaml.safe_dump(spec))
    _run(["git", "init", "-q"], work)
    _run(["dvc", "init", "-q"], work)
    listed = _run(["dvc", "stage", "list", "families/dvc.yaml"], work).stdout
    names = ["base@smollm2", "cell@smollm2-rank1-grpo", "cell@smollm2-rank2-grpo", "report"]
    assert [line.split()[0] for line in listed.splitlines()] == [f"families/dvc.yaml:{n}" for n in names]
    _run(["dvc", "repro", "families/dvc.yaml"], work)
    report = (work / "outputs" / "families-report" / "report.md").read_text()
    assert "2 run(s), 0 partial" in report
    assert "| smollm2/rank1-grpo | " in report and "| smollm2/rank2-grpo | " in report
    again = _run(["dvc", "repro", "families/dvc.yaml"], work).stdout
    assert "Running stage" not in again
    client = MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    experiment_id = client.get_experiment_by_name(spec.get("mlflow", {}).get("experiment", "one-shot-rlvr-smoke"))
    cells = client.search_runs([experiment_id.experiment_id], "tags.`rlvr.runner` = 'dvc'")
    assert sorted(run.data.tags["rlvr.cell"] for run in cells) == ["smollm2/rank1-grpo", "smollm2/rank2-grpo"]
    assert all(run.info.status == "FINISHED" for run in cells)


def test_prefect_flow_same_stages_and_outputs(dvc_project, tmp_path, monkeypatch):
    from prefect.testing.utilities import prefect_test_harness

    from flows.experiment import one_shot_rlvr

    params = _smoke_params()
    params["model"]["source"] = str(dvc_project / params["paths"]["model_dir"])  # a local directory this time
    work = _project_copy(tmp_path, params)
    monkeypatch.chdir(work)
    with prefect_test_harness():
        report = one_shot_rlvr("params.yaml")
    assert Path(report) == Path(params["paths"]["report_dir"]) / "report.md"
    _check_outputs(work, params)
    _check_tracking(work, params, "prefect")


def test_report_over_two_embedded_runs_renders_in_chromium(dvc_project, tmp_path):
    """A second run with the other pool example, reported together with the first (found in MLflow)."""
    work = _copy_project(dvc_project, tmp_path / "second")
    params = _smoke_params()
    params["select"]["ranks"] = "2"
    params["report"]["compare_experiments"] = [params["mlflow"]["experiment"]]
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _run(["dvc", "repro"], work)
    out = work / params["paths"]["report_dir"]
    report = (out / "report.md").read_text()
    first, second = (
        json.loads((d / params["paths"]["selection"]).read_text().splitlines()[0])["id"] for d in (dvc_project, work)
    )
    assert first != second and f"embedded · {first} (dvc-" in report and f"embedded · {second} |" in report
    for heading in (
        "## Main table: each run's best checkpoint",
        "## Table at each run's last evaluated step",
        "## Difference from the paper",
        "## Figures",
    ):
        assert heading in report
    figures = [
        "run-1-accuracy.png",
        "run-2-accuracy.png",
        "all-runs-accuracy.png",
        "response-shape.png",
        "response-length.png",
    ]
    assert all((out / name).stat().st_size > 5000 for name in figures)
    dom, console = _open_in_chromium(out / "report.html")
    for heading in ("1-shot RLVR report", "Main table: each run", "Difference from the paper", "Figures"):
        assert heading in dom
    assert dom.count("<img") == len(figures) and dom.count("data:image/png;base64,") == len(figures)
    assert not console, console


def _open_in_chromium(page: Path) -> tuple[str, list[str]]:
    """The DOM headless Chromium builds from ``page`` and the console messages it logged."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium not installed (Debian: apt-get install chromium chromium-driver)")
    result = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    return result.stdout, console
