"""Many nodes, rehearsed on this machine with the real engines: a Prefect server and its automation, a process work
pool with two ``prefect worker`` processes taking a matrix's cells, an ``mlflow server`` receiving every run, and a
Dask scheduler with two worker processes evaluating checkpoints (``make test-cluster``)."""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import TESTS, free_port, mlflow_server, process_family, stop, wait_for
from helpers import SMOKE_MATRIX, project_copy, smoke_params

from rlvr.training.checkpoints import checkpoints

pytestmark = pytest.mark.cluster

SCRIPTED_SETS = ["--set", "evaluate.backend=scripted:ScriptedBackend",
                 "--set", "train.reward=epoch_rewards:text_reward"]  # fmt: skip
SILENCE_SECONDS = 40  # the zombie automation's wait after the last heartbeat (every 30 s, Prefect's minimum)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A Prefect server (its own home and database) prepared by ``python -m flows.cluster``, and an MLflow server:
    the environment that points a process at both."""
    home = tmp_path_factory.mktemp("cluster")
    (home / "tmp").mkdir()
    prefect_port, mlflow_port = free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))},
        "TMPDIR": str(home / "tmp"),  # the servers' and workers' scratch folders, removed with the test's
        "PREFECT_HOME": str(home / "prefect"),
        "PREFECT_API_URL": f"http://127.0.0.1:{prefect_port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(home / "results"),  # the result storage every worker shares
        "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30",
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{mlflow_port}",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(prefect_port)],
        env=env,
        stdout=open(home / "prefect-server.log", "w"),  # noqa: SIM115 - the server's whole life
        stderr=subprocess.STDOUT,
    )
    tracking = mlflow_server(home, mlflow_port)
    try:
        wait_for(f"{env['PREFECT_API_URL']}/health", server, 300)
        subprocess.run([sys.executable, "-m", "flows.cluster", "--silence-seconds", str(SILENCE_SECONDS)],
                       env={**env, "PYTHONPATH": str(TESTS.parent)}, check=True, timeout=120)  # fmt: skip
        yield env
    finally:
        stop(server)
        stop(tracking)


def _matrix_project(folder: Path, tiny_model: Path, env: dict) -> tuple[Path, dict]:
    """A project copy with the smoke matrix on the tiny model, the cell deployment deployed from it, and the
    environment its processes run in."""
    work = project_copy(folder, smoke_params(tiny_model), tiny_model)
    env = {
        **env,
        "RLVR_PROJECT_DIR": str(work),
        "PYTHONPATH": f"{work}{os.pathsep}{TESTS}",
        "RLVR_SCRIPTED_DATA": str(work / "outputs" / "matrix" / "*" / "data" / "**" / "*.jsonl"),
    }
    deploy = [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "-n", "experiment-cell"]
    subprocess.run(deploy, cwd=work, env=env, check=True, capture_output=True, timeout=300)
    return work, env


def _worker(work: Path, env: dict, name: str) -> subprocess.Popen:
    """``prefect worker start`` on the pool, one flow run at a time (one node's training slot)."""
    command = [sys.executable, "-m", "prefect", "worker", "start", "--pool", "rlvr-gpu", "--limit", "1", "--name",
               name]  # fmt: skip
    log = open(work / f"worker-{name}.log", "w")  # noqa: SIM115 - the worker's whole life
    return subprocess.Popen(command, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)


def _matrix(work: Path, env: dict, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "flows.cross_family", "--matrix", SMOKE_MATRIX, "--dispatch", "work-pool",
               *SCRIPTED_SETS, *extra]  # fmt: skip
    return subprocess.Popen(command, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _cell_runs(env: dict) -> list:
    """The experiment-cell flow runs on the server, oldest first."""
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    with SyncPrefectClient(env["PREFECT_API_URL"]) as client:
        found = client.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["experiment-cell"])),
            sort=FlowRunSort.START_TIME_ASC,
        )
    return found


def _who_ran(work: Path, run_id) -> list[str]:
    """The workers whose log names flow run ``run_id``."""
    logs = work.glob("worker-*.log")
    return sorted(log.stem.removeprefix("worker-") for log in logs if str(run_id) in log.read_text())


def _mlflow_runs(env: dict, experiment: str = "one-shot-rlvr-smoke") -> tuple:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    found = client.search_runs([client.get_experiment_by_name(experiment).experiment_id], max_results=1000)
    return client, found


def test_two_workers_take_the_matrix_cells_at_once_and_every_run_lands_on_the_mlflow_server(
    cluster, tiny_model, tmp_path
):
    work, env = _matrix_project(tmp_path, tiny_model, cluster)
    workers = [_worker(work, env, name) for name in ("node-a", "node-b")]
    try:
        started = time.monotonic()
        matrix = _matrix(work, env)
        output = matrix.communicate(timeout=900)[0]
        wall = time.monotonic() - started
    finally:
        for worker in workers:
            stop(worker)
    assert matrix.returncode == 0, output[-4000:]
    runs = _cell_runs(env)
    assert sorted(run.name for run in runs) == ["smollm2-rank1-grpo", "smollm2-rank2-grpo"]
    for run in runs:
        print(f"{run.name}: {_who_ran(work, run.id)} {run.start_time:%H:%M:%S} to {run.end_time:%H:%M:%S}")
    print(f"matrix wall time {wall:.0f} s")
    assert all(run.state.is_completed() for run in runs)
    assert sorted(worker for run in runs for worker in _who_ran(work, run.id)) == ["node-a", "node-b"]
    first, second = runs
    assert second.start_time < first.end_time  # at the same time, on both workers
    report = (work / "outputs/matrix-report/report.md").read_text()
    assert "2 run(s), 0 partial" in report
    assert all(f"| {cell} | " in report for cell in ("smollm2/rank1-grpo", "smollm2/rank2-grpo"))
    client, found = _mlflow_runs(env)
    stages = [run.data.tags.get("rlvr.stage") for run in found]
    # a model's first stages ran once although both cells reached them at the same moment on two workers
    assert [stages.count(s) for s in ("model", "data", "history", "select", "train", "evaluate", "report")] == [
        1, 1, 1, 2, 2, 2, 2
    ]  # fmt: skip
    assert all(run.info.status == "FINISHED" for run in found)
    (matrix_run,) = [run for run in found if run.data.tags.get("rlvr.matrix") == SMOKE_MATRIX]
    cells = [run for run in found if run.data.tags.get("mlflow.parentRunId") == matrix_run.info.run_id]
    assert sorted(run.data.tags["rlvr.cell"] for run in cells) == ["smollm2/rank1-grpo", "smollm2/rank2-grpo"]
    evaluations = [run for run in found if run.data.tags.get("rlvr.stage") == "evaluate"]
    assert all("test.accuracy_strict" in run.data.metrics for run in evaluations)
    metrics = sum(len(run.data.metrics) for run in found)
    artifacts = [a.path for a in client.list_artifacts(matrix_run.info.run_id, "report")]
    print(f"mlflow server: {len(found)} runs, {metrics} metrics, matrix report artifacts {artifacts}")
    assert "report/report.md" in artifacts


def _wait_running_past_checkpoint(work: Path, env: dict, cell: str, seconds: float):
    """The flow run of ``cell`` once its training has saved its first checkpoint completely."""
    train_dir = work / "outputs/matrix/smollm2" / cell / "train"
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        running = [run for run in _cell_runs(env) if run.name.endswith(cell) and run.state.is_running()]
        if running and checkpoints(train_dir):  # complete (its marker written), not merely begun
            return running[0]
        time.sleep(1)
    raise AssertionError(f"{cell} did not reach its first checkpoint in {seconds} s")


def test_a_cell_whose_worker_dies_is_crashed_reported_and_resumed_by_the_rerun(cluster, tiny_model, tmp_path):
    """The node running one cell dies (its worker and flow run killed) after the first checkpoint: the flow run is
    marked Crashed by the server's automation, the matrix names that cell, exits non-zero and reports the other;
    the rerun skips the finished cell and resumes the crashed one from its checkpoint."""
    work, env = _matrix_project(tmp_path, tiny_model, cluster)
    env |= {"RLVR_TEST_REWARD_SECONDS": "4"}  # a training slow enough to be caught after its first checkpoint
    slow = ["--set", "train.reward=epoch_rewards:slow_text_reward", "--set", "train.max_steps=3"]
    workers = {name: _worker(work, env, name) for name in ("node-a", "node-b")}
    try:
        matrix = _matrix(work, env, *slow)
        doomed = _wait_running_past_checkpoint(work, env, "rank1-grpo", 600)
        flow_pid = int(doomed.infrastructure_pid.split(":")[-1])
        node = next(name for name, w in workers.items() if flow_pid in {c.pid for c in process_family(w)})
        stop(workers.pop(node))  # the node dies: its worker and the cell's flow run
        output = matrix.communicate(timeout=900)[0]
    finally:
        for worker in workers.values():
            stop(worker)
    print(output[-3000:])
    assert matrix.returncode != 0
    assert "1 of 2 cells did not finish: smollm2/rank1-grpo (Crashed)" in output
    report = (work / "outputs/matrix-report/report.md").read_text()
    assert "| smollm2/rank2-grpo | " in report and "| smollm2/rank1-grpo | " not in report
    crashed = [run for run in _cell_runs(env) if run.id == doomed.id][0]
    assert crashed.state.is_crashed()
    print(f"{crashed.name}: {crashed.state.name}: {crashed.state.message}")

    worker = _worker(work, env, "node-c")
    try:
        rerun = _matrix(work, env, *slow)
        output = rerun.communicate(timeout=900)[0]
    finally:
        stop(worker)
    assert rerun.returncode == 0, output[-4000:]
    assert "cell smollm2/rank2-grpo: finished before, skipped" in output
    resumed = [run for run in _cell_runs(env) if run.name.endswith("rank1-grpo")][-1]
    assert resumed.state.is_completed()
    assert "resuming the train run from" in (work / "worker-node-c.log").read_text()
    report = (work / "outputs/matrix-report/report.md").read_text()
    assert "2 run(s), 0 partial" in report


@pytest.fixture
def dask_cluster(cluster, tmp_path):
    """A ``dask scheduler`` and two ``dask worker`` processes (one thread each, in the project folder
    ``tmp_path``, reporting to the Prefect server, not daemonic: the evaluation starts its own processes): the
    scheduler's address."""
    env = {**cluster, "PYTHONPATH": f"{tmp_path}{os.pathsep}{TESTS}", "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask = str(Path(sys.executable).parent / "dask")
    scheduler = subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                  "--dashboard-address", ":0"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)  # fmt: skip
    workers = [
        subprocess.Popen(
            [
                dask,
                "worker",
                address,
                "--nthreads",
                "1",
                "--nworkers",
                "1",
                "--name",
                name,
                "--dashboard-address",
                ":0",
            ],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for name in ("gpu0", "gpu1")
    ]
    try:
        from distributed import Client

        with Client(address, timeout=120) as client:
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for process in [*workers, scheduler]:
            stop(process)


def test_dask_workers_evaluate_a_runs_checkpoints_byte_identical_to_threads(
    cluster, dask_cluster, tiny_model, tmp_path
):
    """The smoke run's checkpoints (real generation on the tiny model) evaluated through a running Dask scheduler and
    two worker processes: every result file is byte-identical to the threads runner's."""
    from distributed import Client

    work = project_copy(tmp_path, smoke_params(tiny_model), tiny_model)
    params = smoke_params(tiny_model)
    params["evaluate"]["backend"] = "transformers"
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    elsewhere = {"eval_dir": "outputs/eval-dask", "eval_store": "outputs/store-dask", "report_dir": "outputs/rep-dask"}
    dask_params = {**params, "paths": {**params["paths"], **elsewhere}}
    (work / "params-dask.yaml").write_text(yaml.safe_dump(dask_params, sort_keys=False))
    env = {**cluster, "PYTHONPATH": f"{work}{os.pathsep}{TESTS}"}
    command = [sys.executable, "-m", "flows.experiment"]
    threads = subprocess.run([*command, "--params", "params.yaml"], cwd=work, env=env, capture_output=True, text=True,
                             timeout=900)  # fmt: skip
    assert threads.returncode == 0, threads.stderr[-3000:]
    dask = subprocess.run([*command, "--params", "params-dask.yaml", "--task-runner", "dask", "--dask-address",
                           dask_cluster], cwd=work, env=env, capture_output=True, text=True, timeout=900)  # fmt: skip
    assert dask.returncode == 0, dask.stderr[-3000:]
    with Client(dask_cluster) as client:
        executed = client.run(lambda dask_worker: dask_worker.state.executed_count)
    print(f"tasks run by each Dask worker: {executed}")
    assert sum(executed.values()) >= 3  # the base model and two checkpoints
    ours, theirs = work / "outputs/eval/steps", work / "outputs/eval-dask/steps"
    files = sorted(path.relative_to(ours) for path in ours.rglob("*") if path.is_file())
    assert files == sorted(path.relative_to(theirs) for path in theirs.rglob("*") if path.is_file())
    assert len(files) >= 3 * 2
    match, mismatch, errors = filecmp.cmpfiles(ours, theirs, [str(f) for f in files], shallow=False)
    assert not mismatch and not errors, (mismatch, errors)
    shutil.rmtree(work / "outputs")
