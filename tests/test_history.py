import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import yaml
from conftest import ROOT
from epoch_rewards import expected

from rlvr.config import HistoryConfig, InputError, ModelConfig
from rlvr.files import write_rows
from rlvr.generator import generate
from rlvr.rewards import accuracy_reward
from rlvr.stages.history import AccuracyRecorder, import_history, pass_rate_history


def test_recorder_groups_rollouts_by_example_and_epoch():
    recorder = AccuracyRecorder(accuracy_reward)
    assert recorder.__name__ == "accuracy_reward"
    epoch0, epoch1 = SimpleNamespace(epoch=0.0), SimpleNamespace(epoch=1.0)
    good, bad = "\\boxed{2}", "no"
    rewards = recorder([good, bad, bad, bad], id=["1", "1", "10", "10"], answer=["2"] * 4, trainer_state=epoch0)
    assert rewards == [1.0, 0.0, 0.0, 0.0]
    recorder([good, good], id=["10", "10"], answer=["2", "2"], trainer_state=SimpleNamespace(epoch=0.5))
    recorder([good, good, good, bad], id=["1", "1", "10", "10"], answer=["2"] * 4, trainer_state=epoch1)
    assert recorder.history() == {"1": [0.5, 1.0], "10": [0.5, 0.5]}
    assert list(recorder.history()) == ["1", "10"]
    restored = AccuracyRecorder(accuracy_reward)
    restored.load_state(json.loads(json.dumps(recorder.state())))  # through JSON, as in a checkpoint
    assert restored.history() == recorder.history() and restored.rollouts() == recorder.rollouts() == 10


def test_import_validates_ids_and_values(tmp_path):
    pool = [{"id": str(i), "problem": "p", "answer": "1"} for i in range(3)]
    path = tmp_path / "acc_step_500.json"
    path.write_text(json.dumps({"0": [0, 0.5], "1": [1], "2": []}))
    assert import_history(path, pool) == {"0": [0.0, 0.5], "1": [1.0], "2": []}
    path.write_text(json.dumps({"0": [0.5], "7": [0.5], "8": [0.5], "9": [1.0]}))
    with pytest.raises(InputError, match=r"acc_step_500.json: 3 of 4 history ids are not in the pool, e.g. \['7', '8'"):
        import_history(path, pool)
    # ids of pool rows without a gold answer stay (they keep their place in the official ranking)
    assert import_history(path, pool, excluded={"7", "8", "9"}) == {"0": [0.5], "7": [0.5], "8": [0.5], "9": [1.0]}
    path.write_text(json.dumps([0.5]))
    with pytest.raises(InputError, match="a history is a JSON object"):
        import_history(path, pool)


def _history_params(tmp_path, model, **history) -> tuple[dict, list[dict]]:
    pool, _ = generate(4, 0, seed=0)
    write_rows(tmp_path / "pool.jsonl", pool)
    params = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    params["mlflow"]["tracking_uri"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    params["paths"]["history_work"] = str(tmp_path / "work")
    defaults = {"reward": "epoch_rewards:parity_reward", "num_generations": 2, "per_device_train_batch_size": 2}
    defaults.update(max_completion_length=4, num_train_epochs=3, save_steps=0)
    params["history"].update({**defaults, **history})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return params, pool


def _run_history(tmp_path, model, out, launcher=(), env=None) -> subprocess.CompletedProcess:
    command = [
        *launcher,
        "-m",
        "pipelines.history",
        "--params",
        "params.yaml",
        "--model",
        str(model),
        "--pool",
        "pool.jsonl",
        "--out",
        out,
    ]
    environment = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}", **(env or {})}
    environment.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(
        command if launcher else [sys.executable, *command],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _expected_history(pool: list[dict], epochs: int) -> dict:
    return {row["id"]: [expected(row["id"], e) for e in range(epochs)] for row in pool}


def _rollouts_logged(tmp_path) -> list[float]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("one-shot-rlvr-smoke")
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.`rlvr.stage` = 'history'")
    return [run.data.metrics.get("rollouts_recorded") for run in runs]


@pytest.mark.integration
def test_two_processes_record_the_same_history_as_one(tmp_path, tiny_model):
    _, pool = _history_params(tmp_path, tiny_model)
    single = _run_history(tmp_path, tiny_model, "one.json")
    assert single.returncode == 0, single.stderr[-3000:]
    launcher = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",  # torchrun: two processes, joined with gloo by the CPU trainer (--cpu would start one)
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
    ]
    double = _run_history(tmp_path, tiny_model, "two.json", launcher)
    assert double.returncode == 0, double.stderr[-3000:]
    one, two = (json.loads((tmp_path / name).read_text()) for name in ("one.json", "two.json"))
    assert one == two == _expected_history(pool, 3)
    # every rollout recorded once: 4 examples x 3 epochs x 2 rollouts, by one tracked run per launch
    assert _rollouts_logged(tmp_path) == [24.0, 24.0]


@pytest.mark.integration
def test_killed_history_run_resumes_from_its_last_complete_checkpoint(tmp_path, tiny_model):
    _, pool = _history_params(tmp_path, tiny_model, save_steps=2)
    crashed = _run_history(tmp_path, tiny_model, "h.json", env={"RLVR_TEST_CRASH_AT_CALL": "7"})
    assert crashed.returncode == 3 and not (tmp_path / "h.json").exists()
    assert sorted(p.name for p in (tmp_path / "work").glob("checkpoint-*")) == ["checkpoint-4", "checkpoint-6"]
    resumed = _run_history(tmp_path, tiny_model, "h.json")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming the history run from" in resumed.stderr and "checkpoint-6" in resumed.stderr
    assert json.loads((tmp_path / "h.json").read_text()) == _expected_history(pool, 3)
    assert 24.0 in _rollouts_logged(tmp_path)  # the 12 before the kill (from the checkpoint) and the 12 after
    assert not (tmp_path / "work").exists()  # checkpoints removed once the history is written


@pytest.mark.integration
def test_pass_rate_history_samples_k_completions_per_example(tiny_model):
    pool, _ = generate(3, 0, seed=0)
    config = HistoryConfig(
        source="pass_rate",
        reward="format",
        num_generations=4,
        per_device_train_batch_size=8,
        max_completion_length=6,
        temperature=1.0,
    )
    history = pass_rate_history(config, tiny_model, pool, ModelConfig())
    assert list(history) == [row["id"] for row in pool]
    assert all(len(v) == 1 and v[0] * 4 == int(v[0] * 4) for v in history.values())
