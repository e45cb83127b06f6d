"""End to end with the smoke profile on the tiny model: ``dvc repro``, ``dvc exp run``, the Prefect flow and the
report, with scores that are known in advance (``scripted``: each model answers right on a known share of the
problems; ``epoch_rewards.text_reward``: a training reward that varies), so every number that reaches a table,
the best step, the model registry, the pipeline run's summary and ``dvc metrics`` is checked against its input."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import pytest
import yaml
from conftest import ROOT, TESTS, free_port, missing
from helpers import open_in_chromium, project_copy, smoke_params, stage_env
from mlflow.tracking import MlflowClient
from scripted import expected_accuracy

from rlvr import codehash, lineage, stages
from rlvr.config import parse_params
from rlvr.files import read_records, read_rows
from rlvr.metrics import wilson_interval

STAGES = set(stages.NAMES)
pytestmark = pytest.mark.integration


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, env=stage_env(cwd), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def dvc_project(tiny_model, tmp_path_factory) -> Path:
    """A copy of the project with the smoke profile on the tiny model as params.yaml, after one ``dvc repro``."""
    work = project_copy(tmp_path_factory.mktemp("dvc"), smoke_params(tiny_model))
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
    replaced, never written in place) so that copies take almost no disk; everything else copied."""
    cache = str(project / ".dvc" / "cache")

    def copy(source: str, destination: str) -> None:
        linked = source.endswith((".safetensors", ".pt", ".pth")) or source.startswith(cache)
        (os.link if linked else shutil.copy2)(source, destination)

    return Path(shutil.copytree(project, target, symlinks=True, copy_function=copy))


def _stage_runs(client: MlflowClient, experiment: str, runner: str) -> tuple[mlflow.entities.Run, list]:
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    parents = client.search_runs([experiment_id], filter_string=f"tags.`rlvr.runner` = '{runner}'")
    assert len(parents) == 1
    parent = parents[0]
    children = client.search_runs([experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    return parent, children


def expected(work: Path, params: dict) -> dict:
    """What the scores must be: per step, each benchmark's accuracy and the benchmark average (the held-out test
    set, generated here, is one of the benchmarks it averages)."""
    paths = params["paths"]
    suites = {
        name: read_rows(work / paths["benchmarks_dir"] / f"{name}.jsonl") for name in params["data"]["benchmarks"]
    }
    test = read_rows(work / paths["test"])
    steps = list(range(0, params["train"]["max_steps"] + 1, params["train"]["save_steps"]))
    table = {}
    for step in steps:
        scores = {"test": expected_accuracy(test, step)}
        scores |= {name: expected_accuracy(rows, step) for name, rows in suites.items()}
        table[step] = {**scores, "average": sum(scores.values()) / len(scores)}
    best = max(steps[1:], key=lambda s: (table[s]["average"], -s))
    return {"steps": steps, "by_step": table, "best": best, "suites": suites, "test_rows": len(test)}


def _cell(rows: list[dict], accuracy: float) -> str:
    low, high = wilson_interval(round(accuracy * len(rows)), len(rows))
    return f"{100 * accuracy:.1f} ± {100 * (high - low) / 2:.1f}"


def _check_outputs(work: Path, params: dict) -> None:
    paths, want = params["paths"], expected(work, params)
    assert want["best"] == 1 and len({round(want["by_step"][s]["average"], 6) for s in want["steps"]}) == 3
    by_step = json.loads((work / paths["eval_dir"] / "by_step.json").read_text())
    assert [row["step"] for row in by_step] == want["steps"]
    for row in by_step:
        scores = want["by_step"][row["step"]]
        assert row["test.accuracy_strict"] == pytest.approx(scores["test"]) and "accuracy_strict" not in row
        for name in want["suites"]:
            assert row[f"{name}.accuracy_strict"] == pytest.approx(scores[name])
            assert row[f"{name}.accuracy_strict_low"] < scores[name] < row[f"{name}.accuracy_strict_high"]
        assert row["average.accuracy_strict"] == pytest.approx(scores["average"])
        if row["step"] > 0:
            assert {f"{n}.p_value_strict" for n in want["suites"]} <= set(row)
    metrics = json.loads((work / paths["eval_dir"] / "metrics.json").read_text())
    assert metrics["best"]["step"] == want["best"] and metrics["headline_mode"] == params["report"]["headline_mode"]
    report = (work / paths["report_dir"] / "report.md").read_text()
    main_table = report.split("## Main table")[1].split("##")[0]
    best_scores = want["by_step"][want["best"]]
    cells = [_cell(rows, best_scores[name]) for name, rows in want["suites"].items()]
    test_cell = _cell(read_rows(work / paths["test"]), best_scores["test"])
    assert f"| {want['best']} | {test_cell} | {' | '.join(cells)} |" in main_table, main_table
    history = json.loads((work / paths["history"]).read_text())
    pool_ids = [json.loads(line)["id"] for line in (work / paths["pool"]).read_text().splitlines()]
    assert sorted(history) == sorted(pool_ids)
    assert all(len(v) == params["history"]["num_train_epochs"] for v in history.values())
    assert (work / paths["report_dir"] / "report.html").stat().st_size > 10000


def _check_tracking(work: Path, params: dict, runner: str) -> None:
    store = f"sqlite:///{work / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=store, registry_uri=store)  # no global state: flows set their own
    want = expected(work, params)
    parent, children = _stage_runs(client, params["mlflow"]["experiment"], runner)
    assert parent.info.status == "FINISHED"
    assert {run.data.tags["rlvr.stage"] for run in children} == STAGES
    assert all(run.info.status == "FINISHED" for run in children)
    train = next(run for run in children if run.data.tags["rlvr.stage"] == "train")
    assert float(train.data.params["learning_rate"]) == params["train"]["learning_rate"]
    rewards = client.get_metric_history(train.info.run_id, "train.reward")
    assert len(rewards) == params["train"]["max_steps"] and any(m.value > 0 for m in rewards)
    evaluate = next(run for run in children if run.data.tags["rlvr.stage"] == "evaluate")
    history = client.get_metric_history(evaluate.info.run_id, "average.accuracy_strict")
    assert {m.step: m.value for m in history} == pytest.approx(
        {s: want["by_step"][s]["average"] for s in want["steps"]}
    )
    report = next(run for run in children if run.data.tags["rlvr.stage"] == "report")
    assert "report/report.md" in [a.path for a in client.list_artifacts(report.info.run_id, "report")]
    # the pipeline run carries the experiment's key params and summary metrics (the runs table's columns)
    summary = parent.data
    assert summary.params["rlvr.learning_rate"] == str(params["train"]["learning_rate"])
    assert summary.params["rlvr.family"] == "llama" and summary.params["rlvr.reward"] == "epoch_rewards:text_reward"
    assert summary.metrics["best.step"] == want["best"]
    assert summary.metrics["best.average.accuracy_strict"] == pytest.approx(want["by_step"][want["best"]]["average"])
    assert summary.metrics["base.average.accuracy_strict"] == pytest.approx(want["by_step"][0]["average"])
    assert summary.tags["mlflow.source.name"] == runner  # the runs table's Source column
    mode = params["report"]["headline_mode"]
    best_fraction, base_fraction = (summary.metrics[f"{k}.average.accuracy_{mode}"] for k in ("best", "base"))
    assert summary.metrics["best_pct"] == pytest.approx(100 * best_fraction, abs=0.005)  # the runs table: percent
    assert summary.metrics["gain_pts"] == pytest.approx(100 * (best_fraction - base_fraction), abs=0.005)
    view = json.loads(client.get_experiment(parent.info.experiment_id).tags["mlflow.sharedViewState.rlvr"])
    assert {"params.`rlvr.learning_rate`", "metrics.`best_pct`", "metrics.`best.step`"} <= set(view["selectedColumns"])
    assert "report/report.md" in [a.path for a in client.list_artifacts(parent.info.run_id, "report")]
    # one name per benchmark everywhere: DVC's metrics, MLflow's metrics and tables, the samples, the report
    names = json.loads((work / params["paths"]["eval_dir"] / "metrics.json").read_text())["average_of"]
    not_benchmarks = ("average.", "best.", "system/")
    logged = {key.split(".")[0] for key in evaluate.data.metrics if not key.startswith(not_benchmarks)}
    tables = {Path(a.path).stem for a in client.list_artifacts(evaluate.info.run_id, "samples/step-1")}
    files = {path.stem for path in (work / params["paths"]["eval_dir"] / "samples" / "step-1").glob("*.jsonl")}
    header = json.loads((work / params["paths"]["report_dir"] / "summary.json").read_text())["main_table"]["header"]
    assert set(names) == logged == tables == files and header[2:-1] == names, (names, logged, tables, files, header)
    # the curated chart view: held-out accuracy of each benchmark with its interval, training accuracy; every
    # series one the runs logged
    tags = client.get_experiment(parent.info.experiment_id).tags
    charts = json.loads(tags["mlflow.sharedViewState.rlvr-charts"])["compareRunCharts"]
    series = {key for chart in charts for key in chart["selectedMetricKeys"]}
    assert {f"{n}.accuracy_{mode}{end}" for n in names for end in ("", "_low", "_high")} | {"train.accuracy"} <= series
    assert series <= set(evaluate.data.metrics) | set(train.data.metrics), series - set(evaluate.data.metrics)
    assert series <= set(parent.data.metrics)  # the runs it compares are the pipeline runs: theirs too, by step
    assert len(client.get_metric_history(parent.info.run_id, f"average.accuracy_{mode}")) == len(want["steps"])
    # evaluation samples as MLflow tables: one row per sample, a column per field
    suite = next(iter(want["suites"]))
    tables = [a.path for a in client.list_artifacts(evaluate.info.run_id, "samples/step-1")]
    assert f"samples/step-1/{suite}.json" in tables
    table_file = client.download_artifacts(evaluate.info.run_id, f"samples/step-1/{suite}.json")
    table = json.loads(Path(table_file).read_text())
    samples = read_records(work / params["paths"]["eval_dir"] / "samples" / "step-1" / f"{suite}.jsonl")
    assert {"prompt", "completion", "gold", f"extracted_{mode}", f"correct_{mode}"} <= set(table["columns"])
    assert len(table["data"]) == len(samples) and all(len(row) == len(table["columns"]) for row in table["data"])
    assert any(key.startswith("system/") for key in train.data.metrics)  # system metrics of the training
    data = next(run for run in children if run.data.tags["rlvr.stage"] == "data")
    assert {d.dataset.name for d in data.inputs.dataset_inputs} == {"pool", "test", *want["suites"]}
    parent = client.get_run(parent.info.run_id)  # the runs table's Dataset and Model columns of the pipeline run
    assert {d.dataset.name for d in parent.inputs.dataset_inputs} == {"pool", "test", *want["suites"]}
    assert parent.outputs and parent.outputs.model_outputs
    model = client.get_logged_model(parent.outputs.model_outputs[0].model_id)
    assert model.source_run_id == parent.info.run_id  # the runs table's Models column of the pipeline run
    # the registry's alias points to the best checkpoint
    best = client.get_model_version_by_alias(params["mlflow"]["experiment"], "best")
    assert best.tags["step"] == str(want["best"])
    experiment = client.get_experiment_by_name(params["mlflow"]["experiment"])
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_dvc_repro_runs_every_stage_and_every_number_is_the_one_that_went_in(dvc_project, tiny_model):
    params = smoke_params(tiny_model)
    _check_outputs(dvc_project, params)
    _check_tracking(dvc_project, params, "dvc")
    metrics = json.loads(_run(["dvc", "metrics", "show", "--json"], dvc_project).stdout)
    shown = next(iter(metrics.values()))["data"]
    values = next(iter(shown.values()))["data"]
    assert values["best"]["step"] == expected(dvc_project, params)["best"]


def test_dvc_plots_show_draws_every_declared_plot_offline(dvc_project, tmp_path, tiny_model):
    """Each plot of dvc.yaml gets a spec with the steps' rows (rows of one shape: DVC draws nothing otherwise),
    and the page, on the template with Vega inlined (``make plots``), draws each in Chromium with no network."""
    declared = yaml.safe_load((dvc_project / "dvc.yaml").read_text())["plots"]
    shown = json.loads(_run(["dvc", "plots", "show", "--json"], dvc_project).stdout)["data"]
    eval_dir = dvc_project / smoke_params(tiny_model)["paths"]["eval_dir"]
    steps = len(json.loads((eval_dir / "by_step.json").read_text()))
    vega = [next(iter(plot)) for plot in declared if isinstance(plot, dict)]  # the others are images (PNGs)
    for title in vega:
        [entry] = shown[title]
        assert entry["type"] == "vega" and len(entry["content"]["data"]["values"]) >= steps, title
    images = [Path(plot).name for plot in declared if isinstance(plot, str)]
    assert all(any(name.endswith(image) for name in shown) for image in images), (images, list(shown))
    assert len(vega) == 4
    page = Path(sys.prefix) / "share" / "vega" / "page.html"
    if not page.is_file():
        missing(f"{page} not found (make plots builds it)")
    out = tmp_path / "plots"
    _run(["dvc", "plots", "show", "--html-template", str(page), "-o", str(out)], dvc_project)
    html = (out / "index.html").read_text()
    assert "var spec = {}" not in html and "https://cdn" not in html
    dom, console = open_in_chromium(out / "index.html")
    drawn = re.findall(r'<canvas width="(\d+)" height="(\d+)" class="marks"', dom)
    assert len(drawn) == len(vega) and all(int(w) > 100 and int(h) > 100 for w, h in drawn), drawn
    # no script error and nothing it failed to load (Vega's notices and warnings, as on DVC's own page, aside)
    assert not [line for line in console if re.search(r"Uncaught|Error|ERR_|Failed", line)], console


def test_dvc_stage_runs_carry_the_inputs_hash_dvc_locked(dvc_project, tiny_model):
    """Each stage tags, when it starts, the hash of its inputs that dvc.lock records once it has run."""
    client = MlflowClient(tracking_uri=f"sqlite:///{dvc_project / 'mlflow.db'}")
    _, children = _stage_runs(client, smoke_params(tiny_model)["mlflow"]["experiment"], "dvc")
    for run in children:
        stage = run.data.tags["rlvr.stage"]
        assert run.data.tags["rlvr.dvc_inputs_md5"] == lineage.locked_inputs_md5(stage, dvc_project / "dvc.lock")


def test_dvc_exp_run_with_a_set_param_is_listed_by_exp_show(dvc_project, tmp_path, tiny_model):
    work = _copy_project(dvc_project, tmp_path / "exp")
    _run(["dvc", "exp", "run", "-S", "train.learning_rate=3e-5", "-n", "lr-3e-5"], work)
    rows = list(csv.DictReader(io.StringIO(_run(["dvc", "exp", "show", "--csv"], work).stdout)))
    [row] = [row for row in rows if row["Experiment"] == "lr-3e-5"]
    assert float(row["train.learning_rate"]) == 3e-5
    baseline = [row for row in rows if row["rev"] not in ("workspace", "lr-3e-5") and not row["Experiment"]]
    assert float(baseline[0]["train.learning_rate"]) == smoke_params(tiny_model)["train"]["learning_rate"]
    assert float(row["best.step"]) == 1.0  # the scripted scores: the best checkpoint is step 1
    for metric in ("best.average.accuracy_strict", "base.average.accuracy_strict"):
        assert row[metric] not in ("", "-"), metric
    # the documentation's narrowed view shows the experiment's name, its learning rate and its best average
    page = (ROOT / "docs" / "orchestration.md").read_text()
    [command] = [line.strip() for line in page.splitlines() if "dvc exp show --md" in line]
    table = _run(["bash", "-c", command], work).stdout
    [line] = [line for line in table.splitlines() if "[lr-3e-5]" in line]
    header = [cell.strip() for cell in table.splitlines()[0].strip("|").split("|")]
    assert header == ["Experiment", "best.step", "best.average.accuracy_official", "train.learning_rate"]
    _, step, average, learning_rate = (cell.strip() for cell in line.strip("|").split("|"))
    assert (step, learning_rate) == ("1", "3e-05")
    assert float(average) == pytest.approx(float(row["best.average.accuracy_official"]), rel=1e-3)


def test_materialised_datasets_are_versioned_and_pushed_to_the_remote(dvc_project, tiny_model):
    paths = smoke_params(tiny_model)["paths"]
    manifest = json.loads((dvc_project / paths["data_manifest"]).read_text())
    assert manifest["pool"]["rows"] == 2 and manifest["test"]["missing_answer"] == 0
    _run(["dvc", "push", "data"], dvc_project)
    pushed = [p for p in (dvc_project / ".dvc-storage").rglob("*") if p.is_file()]
    assert len(pushed) >= 3  # pool, test set and the benchmarks folder
    _run(["dvc", "status", "--cloud", "data"], dvc_project)


def test_dvc_runs_the_projects_interpreter_with_a_path_that_lacks_the_venv(dvc_project, tmp_path):
    """``.venv/bin/dvc repro`` from a shell where the venv is not activated (its PATH has no .venv/bin): the
    stages' ``scripts/python`` still runs the project's interpreter, not the system's (which has no pandas)."""
    work = _copy_project(dvc_project, tmp_path / "bare")
    (work / ".venv").symlink_to(Path(sys.executable).parents[1])  # the project's venv, as make setup leaves it
    env = {k: v for k, v in stage_env(work).items() if k != "VIRTUAL_ENV"} | {"PATH": "/usr/local/bin:/usr/bin:/bin"}
    dvc = str(Path(sys.executable).parent / "dvc")
    result = subprocess.run([dvc, "repro", "--force", "-s", "select"], cwd=work, env=env, capture_output=True,
                            text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Running stage 'select'" in result.stdout and "scripts/python -m pipelines.select" in result.stdout


def test_dvc_repro_again_does_nothing(dvc_project):
    result = _run(["dvc", "repro"], dvc_project)
    assert "Data and pipelines are up to date" in result.stdout
    assert "Running stage" not in result.stdout
    # and dvc status says so in one line: no stage of another pipeline (the opt-in families one) in it
    assert _run(["dvc", "status"], dvc_project).stdout.strip() == "Data and pipelines are up to date."


def _downstream(changed: set[str]) -> list[str]:
    """The stages whose code changed and every stage after one of them in the pipeline (which reads its outputs)."""
    first = min(stages.NAMES.index(name) for name in changed)
    return [name for name in stages.NAMES[first:]]


@pytest.mark.parametrize(
    "module", ["rlvr/stages/report/tables.py", "rlvr/selection.py", "rlvr/metrics.py", "rlvr/templates.py"]
)
def test_editing_a_module_invalidates_exactly_the_stages_downstream_of_it(dvc_project, tmp_path, tiny_model, module):
    """Once the code stage has hashed the edited code, ``dvc status`` and the Prefect stage keys name the same
    stages: those that import the module (inside functions too), and those after them."""
    work = _copy_project(dvc_project, tmp_path / "edit")
    params = parse_params(yaml.safe_load((work / "params.yaml").read_text()))
    keys_before = lineage.stage_keys(params, work / "dvc.yaml")
    importing = {name for name in stages.NAMES if module in codehash.stage_code(name)}
    with (work / module).open("a") as handle:
        handle.write("\nEDITED = True  # an edit of the code\n")
    _run(["dvc", "repro", lineage.CODE_STAGE], work)
    status = json.loads(_run(["dvc", "status", "--json"], work).stdout)
    keys_after = lineage.stage_keys(params, work / "dvc.yaml")
    changed_keys = [name for name in stages.NAMES if keys_before[name] != keys_after[name]]
    stale = [name for name in stages.NAMES if name in status]
    assert importing and set(stale) >= importing
    assert all(stage in _downstream(importing) for stage in stale)  # nothing upstream of the edit
    assert set(changed_keys) == set(_downstream(importing))  # the keys chain every downstream stage
    if module.startswith("rlvr/report"):
        assert stale == ["report"] and changed_keys == ["report"]  # editing report code reruns no training


def test_docs_and_help_edits_rerun_no_stage_and_a_changed_default_reruns_the_stages_using_it(dvc_project, tmp_path):
    """Code deps by meaning: a docstring and a help text edited in ``rlvr/config.py`` leave ``dvc status`` clean
    once the code stage has run (the only stage that reruns), and the Prefect keys equal; a changed default value
    in it reruns every stage that imports it (all of them)."""
    work = _copy_project(dvc_project, tmp_path / "meaning")
    params = parse_params(yaml.safe_load((work / "params.yaml").read_text()))
    keys = lineage.stage_keys(params, work / "dvc.yaml")
    config = work / "rlvr" / "config.py"
    text = config.read_text()
    edited = text.replace('"""Typed parameters:', '"""Typed parameters (an edited docstring):', 1)
    edited = edited.replace('description="learning rate")', 'description="the optimizer\'s learning rate")', 1)
    assert edited.count("an edited docstring") == 1 and edited.count("the optimizer's learning rate") == 1
    config.write_text(edited)
    assert list(json.loads(_run(["dvc", "status", "--json"], work).stdout)) == [lineage.CODE_STAGE]
    ran = re.findall(r"Running stage '(\w+)'", _run(["dvc", "repro"], work).stdout)
    assert ran == [lineage.CODE_STAGE]
    assert _run(["dvc", "status"], work).stdout.strip() == "Data and pipelines are up to date."
    assert lineage.stage_keys(params, work / "dvc.yaml") == keys
    config.write_text(edited.replace("learning_rate: float = Field(1e-6,", "learning_rate: float = Field(2e-6,", 1))
    _run(["dvc", "repro", lineage.CODE_STAGE], work)
    status = json.loads(_run(["dvc", "status", "--json"], work).stdout)
    assert sorted(status) == sorted(stages.NAMES)
    changed = lineage.stage_keys(params, work / "dvc.yaml")
    assert [name for name in stages.NAMES if changed[name] == keys[name]] == []


def test_new_checkpoints_are_the_only_ones_evaluated(dvc_project, tmp_path, tiny_model):
    """After more training steps, evaluation generates for the new checkpoint only; other settings re-evaluate."""
    work = _copy_project(dvc_project, tmp_path / "more")
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["train"]["max_steps"] = 3
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    started = time.monotonic()
    result = _run(["dvc", "repro", "evaluate"], work)
    elapsed = time.monotonic() - started
    log = result.stdout + result.stderr
    assert "resuming the train run from" in log and "checkpoint-2" in log  # the same run, continued
    for step in (0, 1, 2):
        assert f"step {step}, test: already evaluated, skipping" in log
    assert "step 3, test: 8 problems x 1 samples" in log
    print(f"more steps: train + evaluate of the new checkpoint only: {elapsed:.1f} s")
    params["evaluate"]["max_new_tokens"] = 9
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    again = _run(["dvc", "repro", "evaluate"], work)
    log = again.stdout + again.stderr
    assert "already evaluated" not in log and "step 0, test: 8 problems x 1 samples" in log


def test_prefect_flow_same_stages_and_outputs(dvc_project, tmp_path, monkeypatch, prefect_harness, tiny_model):
    from prefect.client.orchestration import get_client

    from flows.experiment_flow import one_shot_rlvr

    params = smoke_params(dvc_project / "outputs" / "model")  # a local directory this time
    work = project_copy(tmp_path, params)
    monkeypatch.chdir(work)
    for key, value in stage_env(work).items():
        monkeypatch.setenv(key, value)
    monkeypatch.syspath_prepend(str(TESTS))
    state = one_shot_rlvr("params.yaml", return_state=True)
    report = state.result()
    assert Path(report) == Path(params["paths"]["report_dir"]) / "report.md"
    _check_outputs(work, params)
    _check_tracking(work, params, "prefect")
    # the report as artifacts of the flow run, read back from the Prefect API

    async def artifacts():
        async with get_client() as client:
            from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

            found = await client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])
                )
            )
            return {a.key: a for a in found}

    import asyncio

    found = asyncio.run(artifacts())

    async def logs():
        from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
        from prefect.logging.handlers import APILogHandler

        await APILogHandler.aflush()  # log lines are sent in batches, in the background
        async with get_client() as client:
            flow_run = LogFilterFlowRunId(any_=[state.state_details.flow_run_id])
            return [log.name for log in await client.read_logs(log_filter=LogFilter(flow_run_id=flow_run))]

    assert any(name.startswith("rlvr.") for name in asyncio.run(logs()))  # the library's log lines
    assert {"rlvr-report", "rlvr-report-table", "rlvr-report-html", "rlvr-report-mlflow"} <= set(found)
    assert "### Findings" in found["rlvr-report"].data and "| run | step |" in found["rlvr-report"].data


def test_report_over_two_runs_renders_in_chromium(dvc_project, tmp_path, tiny_model):
    """A second run with the other pool example, reported together with the first (found in MLflow)."""
    work = _copy_project(dvc_project, tmp_path / "second")
    params = smoke_params(tiny_model)
    params["select"]["ranks"] = "2"
    params["report"]["compare_experiments"] = [params["mlflow"]["experiment"]]
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = _run(["dvc", "repro"], work)
    assert "Stage 'data' didn't change, skipping" in result.stdout
    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    experiment_id = client.get_experiment_by_name(params["mlflow"]["experiment"]).experiment_id
    runs = client.search_runs([experiment_id], "tags.`rlvr.runner` = 'dvc'", order_by=["attributes.start_time DESC"])
    assert {d.dataset.name for d in runs[0].inputs.dataset_inputs} >= {"pool", "test"}  # logged by the report stage
    out = work / params["paths"]["report_dir"]
    report = (out / "report.md").read_text()
    first, second = (
        json.loads((d / params["paths"]["selection"]).read_text().splitlines()[0])["id"] for d in (dvc_project, work)
    )
    model = Path(params["model"]["source"]).name
    assert first != second and f"{model} · {first} (dvc-" in report and f"{model} · {second} |" in report
    for heading in ("## Main table", "## Gains over the base model", "## Benchmark average by grading mode",
                    "## Difference from the paper", "## Figures"):  # fmt: skip
        assert heading in report
    figures = ["run-1-accuracy.png", "run-2-accuracy.png", "all-runs-accuracy.png", "response-shape.png",
               "response-length.png"]  # fmt: skip
    assert all((out / name).stat().st_size > 5000 for name in figures)
    dom, console = open_in_chromium(out / "report.html")
    for heading in ("1-shot RLVR report", "Main table: each run", "Difference from the paper", "Figures"):
        assert heading in dom
    assert dom.count("<img") == len(figures) and dom.count("data:image/png;base64,") == len(figures)
    assert not console, console


def _mlflow_ui(work: Path) -> tuple[subprocess.Popen, str]:
    """``mlflow ui`` on the project's store, once it answers: the process and its address."""
    port = free_port()
    store = f"sqlite:///{work / 'mlflow.db'}"
    command = [str(Path(sys.executable).parent / "mlflow"), "ui", "--backend-store-uri", store, "--host", "127.0.0.1",
               "--port", str(port)]  # fmt: skip
    server = subprocess.Popen(command, cwd=work, env=stage_env(work), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    address, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{address}/health", timeout=2)
            return server, address
        except OSError:
            time.sleep(1)
    server.kill()
    raise AssertionError("mlflow ui did not answer within 120 s")


def _texts(parent, selector: str) -> list[str]:
    """The text of each element under ``parent`` (a Selenium page or element) that ``selector`` matches."""
    from selenium.webdriver.common.by import By

    return [element.get_attribute("textContent") for element in parent.find_elements(By.CSS_SELECTOR, selector)]


def test_mlflow_ui_shows_an_evaluation_samples_table_one_row_per_sample(dvc_project, tiny_model):
    """In the MLflow UI (headless Chromium), the evaluate run's samples table of a benchmark has one row per sample
    with its prompt, completion, extracted answer, correctness and gold: what the model answered, per problem."""
    browser, driver = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")
    if browser is None or driver is None:
        missing("chromium or chromedriver not installed (Debian: apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    params = smoke_params(tiny_model)
    client = MlflowClient(tracking_uri=f"sqlite:///{dvc_project / 'mlflow.db'}")
    _, children = _stage_runs(client, params["mlflow"]["experiment"], "dvc")
    run = next(run for run in children if run.data.tags["rlvr.stage"] == "evaluate")
    suite, mode = next(iter(expected(dvc_project, params)["suites"])), params["report"]["headline_mode"]
    samples = read_records(dvc_project / params["paths"]["eval_dir"] / "samples" / "step-1" / f"{suite}.jsonl")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--window-size=1600,1000"):
        options.add_argument(flag)
    server, address = _mlflow_ui(dvc_project)
    page = webdriver.Chrome(service=Service(driver), options=options)
    try:
        page.get(f"{address}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}/artifacts/"
                 f"samples/step-1/{suite}.json")  # fmt: skip
        WebDriverWait(page, 60).until(lambda p: p.find_elements(By.CSS_SELECTOR, "[role=columnheader]"))
        header, rows = _texts(page, "[role=columnheader]"), []
        while True:  # every page of the table
            for row in page.find_elements(By.CSS_SELECTOR, "[role=row]")[1:]:
                rows.append(dict(zip(header, _texts(row, "[role=cell]"), strict=True)))
            following = page.find_elements(By.CSS_SELECTOR, "li[title='Next Page']")
            if not following or following[0].get_attribute("aria-disabled") == "true":
                break
            following[0].click()
    finally:
        page.quit()
        server.terminate()
        server.wait(timeout=30)
    assert {"id", "prompt", "completion", "gold", f"extracted_{mode}", f"correct_{mode}"} <= set(header)
    assert len(rows) == len(samples)
    for row, sample in zip(rows, samples, strict=True):
        assert row["id"] == str(sample["id"]) and row["gold"] == str(sample["gold"])
        assert " ".join(row["completion"].split()) == " ".join(sample["completion"].split())
        assert row[f"correct_{mode}"] == str(sample[f"correct_{mode}"]).lower()
        assert row[f"extracted_{mode}"] == ("null" if sample[f"extracted_{mode}"] is None else str(
            sample[f"extracted_{mode}"]))  # fmt: skip


@pytest.mark.slow  # the same cells run through the Prefect matrix flow in the default test run
def test_dvc_families_pipeline_runs_every_cell_then_one_report(tiny_model, tmp_path):
    """families/stages.yaml in place as families/dvc.yaml: base@model, cell@model-examples-algorithm (DVC matrix
    stages), report."""
    work = project_copy(tmp_path, smoke_params(tiny_model))
    shutil.copy(work / "families" / "stages.yaml", work / "families" / "dvc.yaml")  # make families-pipeline
    spec = yaml.safe_load((work / "families" / "matrix.yaml").read_text())
    spec["models"] = {"smollm2": {"model": {"source": str(tiny_model)}}}
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
