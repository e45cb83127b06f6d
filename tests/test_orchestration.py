"""Orchestration: the matrix file, stage keys, the cross-family flow, deployments, MLflow lineage and registry."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, TESTS
from helpers import SMOKE_MATRIX, project_copy, smoke_params
from mlflow.tracking import MlflowClient

from rlvr import lineage
from rlvr.config import ConfigError, load_params, merge, parse_params
from rlvr.matrix import load_matrix

SCRIPTED = {"evaluate": {"backend": "scripted:ScriptedBackend"}, "train": {"reward": "epoch_rewards:text_reward"}}


def test_matrix_cells_share_a_models_first_stages_and_keep_their_own_training():
    matrix = load_matrix(ROOT / SMOKE_MATRIX)
    first, second = matrix.cells
    assert [cell.name for cell in matrix.cells] == ["smollm2/rank1-grpo", "smollm2/rank2-grpo"]
    assert (first.params.select.ranks, second.params.select.ranks) == ("1", "2")
    for shared in ("model_dir", "pool", "test", "history", "data_manifest"):
        assert getattr(first.params.paths, shared) == getattr(second.params.paths, shared)
        assert getattr(first.params.paths, shared).startswith("outputs/matrix/smollm2/")
    for own in ("selection", "train_dir", "eval_dir", "report_dir"):
        assert getattr(first.params.paths, own) != getattr(second.params.paths, own)
    keys = [lineage.stage_keys(cell.params) for cell in matrix.cells]
    assert [keys[0][s] == keys[1][s] for s in lineage.pipeline_stages()] == [True] * 3 + [False] * 4


def test_a_models_own_cell_overrides_change_that_cell_of_that_model_only():
    matrix = load_matrix(ROOT / "configs" / "matrix" / "findings.yaml")
    steps = {cell.name: (cell.params.train.max_steps, cell.params.train.save_steps) for cell in matrix.cells}
    assert steps["gemma3-270m/top-variance"] == (18, 3) and steps["smollm2/top-variance"] == (36, 6)
    assert steps["gemma3-270m/low-variance"] == steps["smollm2/low-variance"] == (12, 12)
    gemma = matrix.cell("gemma3-270m", "top-variance").params
    assert gemma.train.learning_rate == 2.0e-6  # the model's other overrides stay


def test_every_paper_matrix_cell_is_a_valid_params_set():
    matrix = load_matrix(ROOT / "configs" / "matrix" / "paper.yaml")
    assert len(matrix.cells) == 16
    assert {cell.params.mlflow.experiment for cell in matrix.cells} == {"paper-cross-family"}
    ppo = matrix.cell("r1-distill-qwen-1.5b", "pi13", "ppo").params
    assert ppo.train.algorithm == "ppo" and ppo.train.max_completion_length == 8192  # the model's own length
    assert "vllm_gpu_memory_utilization" not in ppo.train.trl  # the algorithm's TRL options replace GRPO's


@pytest.mark.parametrize(
    ("axis", "override", "message"),
    [
        ("example_sets", {"train": {"learning_rate": 1.0}}, "example_sets.bad.train: example_sets may set select"),
        ("algorithms", {"paths": {"pool": "x"}}, "algorithms.bad.paths: algorithms may set train"),
        ("models", {"train": {"max_stepz": 3}}, "cell bad/rank1-grpo: unknown params key: train.max_stepz"),
        ("models", {"cells": {"rank3-grpo": {}}}, "models.bad.cells.rank3-grpo: no cell named 'rank3-grpo'"),
        ("models", {"cells": {"rank1-grpo": {"data": {}}}}, "cells.rank1-grpo.data: cells may set select, train"),
    ],
)
def test_matrix_errors_name_the_bad_entry(tmp_path, axis, override, message):
    spec = yaml.safe_load((ROOT / SMOKE_MATRIX).read_text())
    spec["base"] = str(ROOT / "configs" / "smoke.yaml")
    spec[axis] = {"bad": override}
    path = tmp_path / "matrix.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_matrix(path)


def test_stage_keys_change_downstream_of_what_changed_only():
    values = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    before = lineage.stage_keys(parse_params(values))
    lr = lineage.stage_keys(parse_params(merge(values, {"train": {"learning_rate": 1.0e-3}})))
    assert [s for s in before if before[s] != lr[s]] == ["train", "evaluate", "report"]
    template = lineage.stage_keys(parse_params(merge(values, {"model": {"template": "qwen25-math-cot"}})))
    assert [s for s in before if before[s] != template[s]] == ["history", "select", "train", "evaluate", "report"]
    assert lineage.stage_keys(load_params(ROOT / "configs" / "smoke.yaml")) == before  # deterministic


def test_prefect_yaml_deployments_load_with_their_schedule_and_flows():
    from flows.serve import deployments

    served = {d.name: d for d in deployments(ROOT / "prefect.yaml")}
    assert set(served) == {"nightly", "on-demand", "cross-family", "experiment-cell", "watch-training"}
    nightly = served["nightly"]
    assert nightly.flow_name == "cross-family-evaluation"
    assert [(s.schedule.cron, s.schedule.timezone) for s in nightly.schedules] == [("0 2 * * *", "UTC")]
    assert served["on-demand"].flow_name == "one-shot-rlvr" and not served["on-demand"].schedules
    assert nightly.concurrency_limit == served["watch-training"].concurrency_limit == 1
    schema = served["on-demand"]._parameter_openapi_schema.model_dump()
    assert "Overrides" in json.dumps(schema)  # typed overrides: the UI shows a form of the params sections
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    assert all(entry["work_pool"]["name"] == "rlvr-gpu" for entry in spec["deployments"])


# --- the matrix flow, on-demand runs and the served nightly deployment, on the tiny model ----------------------


@pytest.fixture(scope="module")
def matrix_project(prefect_harness, tiny_model, tmp_path_factory):
    """A project copy after the smoke matrix flow (two cells: each pool example) ran once, on the tiny model
    (orchestration is under test here) with scripted scores."""
    from flows.cross_family_flow import cross_family

    work = project_copy(tmp_path_factory.mktemp("matrix"), smoke_params(tiny_model), tiny_model)
    cwd, environ = Path.cwd(), dict(os.environ)
    os.chdir(work)
    os.environ["RLVR_SCRIPTED_DATA"] = str(work / "outputs" / "matrix" / "*" / "data" / "**" / "*.jsonl")
    sys.path.insert(0, str(TESTS))
    try:
        report = cross_family(SMOKE_MATRIX, overrides=SCRIPTED)
        yield work, report
    finally:
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(environ)
        sys.path.remove(str(TESTS))


def _runs(work: Path, **tags: str):
    client = MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("one-shot-rlvr-smoke")
    found = client.search_runs([experiment.experiment_id], max_results=1000)
    return client, [run for run in found if all(run.data.tags.get(k) == v for k, v in tags.items())]


@pytest.mark.integration
def test_matrix_flow_writes_one_report_with_both_cells(matrix_project):
    work, report = matrix_project
    assert Path(report) == Path("outputs/matrix-report/report.md")
    text = (work / report).read_text()
    assert "2 run(s), 0 partial" in text
    for cell in ("smollm2/rank1-grpo", "smollm2/rank2-grpo"):
        assert f"| {cell} | " in text
    assert (work / "outputs/matrix-report/all-runs-accuracy.png").stat().st_size > 5000
    client, matrix_runs = _runs(work, **{"rlvr.matrix": SMOKE_MATRIX})
    assert len(matrix_runs) == 1 and matrix_runs[0].info.status == "FINISHED"
    assert "report/report.md" in [a.path for a in client.list_artifacts(matrix_runs[0].info.run_id, "report")]
    cells = _runs(work, **{"mlflow.parentRunId": matrix_runs[0].info.run_id, "rlvr.runner": "prefect"})[1]
    assert sorted(run.data.tags["rlvr.cell"] for run in cells) == ["smollm2/rank1-grpo", "smollm2/rank2-grpo"]
    # the model, data and history stages ran once: the second cell found them by cache key
    assert [len(_runs(work, **{"rlvr.stage": s})[1]) for s in ("model", "history", "train", "evaluate")] == [1, 1, 2, 2]


@pytest.mark.integration
def test_every_stage_run_carries_its_lineage(matrix_project):
    work, _ = matrix_project
    matrix = load_matrix(work / SMOKE_MATRIX, SCRIPTED)
    manifest = yaml.safe_load((work / matrix.cells[0].params.paths.data_manifest).read_text())
    client, runs = _runs(work)
    stage_runs = [run for run in runs if "rlvr.stage" in run.data.tags]
    assert len(stage_runs) == 11  # 7 stages, then select, train, evaluate, report for the second cell
    cells = {cell.name: cell for cell in matrix.cells}
    for run in stage_runs:
        tags = run.data.tags
        assert {"rlvr.git_commit", "mlflow.parentRunId"} <= set(tags)
        cell = cells[client.get_run(tags["mlflow.parentRunId"]).data.tags["rlvr.cell"]]
        assert tags["rlvr.inputs_key"] == lineage.stage_keys(cell.params)[tags["rlvr.stage"]]
        assert tags["rlvr.model"] == cell.params.model.source
        if tags["rlvr.stage"] != "model":
            assert tags["rlvr.data.pool.sha256"] == manifest["pool"]["sha256"]


@pytest.mark.integration
def test_each_cells_best_checkpoint_is_registered_with_its_metrics(matrix_project):
    work, _ = matrix_project
    store = f"sqlite:///{work / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    versions = client.search_model_versions("name='one-shot-rlvr-smoke'")
    assert len(versions) == 2
    best = client.get_model_version_by_alias("one-shot-rlvr-smoke", "best")
    scores = []
    for version in versions:
        checkpoint = Path(version.tags["rlvr.checkpoint"])
        assert (checkpoint / "model.safetensors").is_file() and checkpoint.parent.name == "train"
        assert version.tags["step"] == "1"  # the scripted scores make step 1 every cell's best checkpoint
        model = client.get_logged_model(version.source.removeprefix("models:/"))
        assert {m.key for m in model.metrics} >= {"best.average.accuracy_strict", "best.test.accuracy_lenient"}
        scores.append((float(version.tags["average.accuracy_strict"]), int(version.version)))
    top = max(score for score, _ in scores)  # the alias is on the first version with the highest average
    assert int(best.version) == min(version for score, version in scores if score == top)


@pytest.mark.integration
def test_nightly_deployment_is_served_and_triggered_once(matrix_project):
    """``python -m flows.serve`` serves prefect.yaml's deployments; one run of the nightly one, on the smoke matrix."""
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL

    work, _ = matrix_project
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "PYTHONPATH": str(work)}
    server = subprocess.Popen(
        [sys.executable, "-m", "flows.serve", "--only", "nightly"],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        run = _trigger_when_served("cross-family-evaluation/nightly", run_deployment, deadline=time.monotonic() + 420)
    finally:
        server.terminate()
        output = server.communicate(timeout=60)[0]
    assert run.state.is_completed(), f"{run.state}\n{output[-3000:]}"
    evaluations = _runs(work, **{"rlvr.matrix": SMOKE_MATRIX})[1]
    assert len(evaluations) == 2  # the matrix flow's run and the nightly evaluation's


def _trigger_when_served(name: str, run_deployment, deadline: float):
    """Run deployment ``name`` once it exists, waiting for the run to end; fails past ``deadline``."""
    from prefect.exceptions import ObjectNotFound

    while True:
        try:
            return run_deployment(name, parameters={"matrix_path": SMOKE_MATRIX}, timeout=deadline - time.monotonic())
        except ObjectNotFound:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


@pytest.mark.integration
def test_two_on_demand_runs_with_different_overrides_at_once_keep_their_own_outputs(matrix_project, tiny_model):
    """After one run of the params file, two runs with other learning rates at the same time: both finish, each
    with its own checkpoints (``outputs/runs/<hash of its overrides>/``) and its own MLflow pipeline run, and the
    first run's checkpoints stay."""
    from prefect.settings import PREFECT_API_URL

    work, _ = matrix_project
    env = {
        **{k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"},
        "PREFECT_API_URL": PREFECT_API_URL.value(),
        "PYTHONPATH": f"{work}{os.pathsep}{TESTS}",
        "RLVR_SCRIPTED_DATA": str(work / "outputs" / "data" / "**" / "*.jsonl"),
    }
    command = [sys.executable, "-m", "flows.experiment", "--params", "params.yaml"]
    first = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    started = [
        subprocess.Popen([*command, "--set", f"train.learning_rate={lr}"], cwd=work, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
        for lr in ("1.0e-4", "3.0e-4")
    ]  # fmt: skip
    outputs = [process.communicate(timeout=600)[0] for process in started]
    assert [process.returncode for process in started] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    runs = sorted((work / "outputs" / "runs").iterdir())
    assert len(runs) == 2
    fingerprints = {json.loads((run / "train" / "run.json").read_text())["fingerprint"] for run in runs}
    fingerprints.add(json.loads((work / "outputs" / "train" / "run.json").read_text())["fingerprint"])
    assert len(fingerprints) == 3  # three trainings, none of them written over
    for folder in [*runs, work / "outputs"]:
        assert sorted(p.name for p in (folder / "train").glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
        assert (folder / "report" / "report.md").is_file()
    assert not (work / "outputs" / "runs" / runs[0].name / "model").exists()  # the shared stages are shared
    client, parents = _runs(work, **{"rlvr.runner": "prefect"})
    on_demand = [p for p in parents if "rlvr.cell" not in p.data.tags]
    assert len(on_demand) == 3 and all(p.info.status == "FINISHED" for p in on_demand)
    rates = {p.data.params.get("rlvr.learning_rate") for p in on_demand}
    assert rates == {"2e-05", "0.0001", "0.0003"}


def _evaluation_task_runs() -> list:
    """The checkpoint evaluation task runs on the Prefect API (``tasks.stages.evaluate_checkpoint``)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterTags

    with get_client(sync_client=True) as client:
        return client.read_task_runs(task_run_filter=TaskRunFilter(tags=TaskRunFilterTags(all_=["rlvr-evaluate"])))


@pytest.mark.integration
def test_a_findings_matrix_runs_its_cells_once_each_and_writes_the_findings_with_its_artifacts(
    prefect_harness, tiny_model, tmp_path
):
    """Named cells on the tiny model (scripted scores): each trains, the base model is evaluated once for all
    cells (the evaluation store), the findings report has a row per claim, and the matrix's MLflow run and the
    Prefect flow run hold it; a rerun skips every cell."""
    from prefect.artifacts import Artifact

    from flows.cross_family_flow import cross_family

    work = project_copy(tmp_path, smoke_params(tiny_model), tiny_model)
    spec = {
        "base": "../../params.yaml",
        "root": "outputs/findings",
        "models": {"tiny": {"model": {"source": str(tiny_model)}, "train": {"accuracy_reward": "accuracy"}}},
        "cells": {
            "top-variance": {"train": {"max_steps": 3, "save_steps": 1}},
            "format-reward": {"train": {"reward": "format"}},
            "entropy-min": {"train": {"algorithm": "entropy_min"}},
        },
        "findings": {
            "step": 2,
            "ablation": ["top-variance", "entropy-min"],
            "claims": [
                {"claim": "1-shot gains", "kind": "gain", "cell": "top-variance", "paper": "36.0 -> 72.8"},
                {"claim": "outcome beats format", "kind": "gain", "cell": "top-variance", "against": "format-reward"},
                {"claim": "post-saturation", "kind": "post_saturation", "cell": "top-variance"},
            ],
        },
    }
    (work / "configs" / "matrix" / "findings-test.yaml").write_text(yaml.safe_dump(spec))
    cwd, environ = Path.cwd(), dict(os.environ)
    os.chdir(work)
    os.environ["RLVR_SCRIPTED_DATA"] = str(work / "outputs" / "findings" / "*" / "data" / "**" / "*.jsonl")
    sys.path.insert(0, str(TESTS))
    try:
        matrix_file = "configs/matrix/findings-test.yaml"
        cross_family(matrix_file, overrides=SCRIPTED)
        findings = (work / "outputs" / "findings-report" / "findings.md").read_text()
        assert "| 1-shot gains | tiny | 36.0 -> 72.8 |" in findings and "| outcome beats format | tiny |" in findings
        assert "tiny/entropy-min: std rank 1" in findings and "wall time" in findings
        store = work / "outputs" / "findings" / "tiny" / "eval-store"
        benchmarks = 3  # the test set and two suites
        assert len(list(store.glob("*.json"))) == benchmarks * (1 + 3 + 2 + 2)  # the base model once, then each step
        client, matrix_runs = _runs(work, **{"rlvr.matrix": matrix_file})
        artifacts = [a.path for a in client.list_artifacts(matrix_runs[0].info.run_id, "report")]
        assert "report/findings.md" in artifacts and "report/findings-curves.png" in artifacts
        assert any(m.startswith("cell_minutes.") for m in client.get_run(matrix_runs[0].info.run_id).data.metrics)
        assert Artifact.get("matrix-rlvr-report-findings") is not None
        timings = json.loads((work / "outputs" / "findings-report" / "cell_seconds.json").read_text())
        cross_family(matrix_file, overrides=SCRIPTED)  # again: every stage of every cell is cached
        assert len(_runs(work, **{"rlvr.stage": "train"})[1]) == 3
        assert json.loads((work / "outputs" / "findings-report" / "cell_seconds.json").read_text()) == timings
        # a cell's deleted results are evaluated again by its checkpoint tasks, not taken from Prefect's cache
        shutil.rmtree(work / "outputs" / "findings" / "tiny" / "top-variance" / "eval")
        since = datetime.now(UTC)
        cross_family(matrix_file, overrides=SCRIPTED)
        states = sorted(run.state.name for run in _evaluation_task_runs() if run.created > since)
        assert states == ["Completed"] * 4  # steps 0-3 of that cell again; the other cells, current, are skipped
        assert (work / "outputs" / "findings" / "tiny" / "top-variance" / "eval" / "metrics.json").is_file()
    finally:
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(environ)
        sys.path.remove(str(TESTS))
