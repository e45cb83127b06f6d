"""The GPU node's distributed engines rehearsed on 2 CPU processes (``make test-distributed``, also in ``make
test-all``): DeepSpeed ZeRO-2/3 (its CPU accelerator, gloo) for GRPO and PPO through ``accelerate launch`` as the
stage starts it, resume decided once and taken by every rank, signals reaching every rank, rollout metrics over
every rank, and the same result on one process and on two."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
import torch
import yaml
from conftest import ROOT
from helpers import mlflow_runs, run_train, train_command, train_env, train_params
from safetensors.torch import load_file

from rlvr.files import read_records, write_rows
from rlvr.generator import generate
from rlvr.training.checkpoints import LOCK_FILE, MARKER, checkpoints

pytestmark = pytest.mark.distributed

ZERO = {stage: str(ROOT / "configs" / "accelerate" / f"zero{stage}-cpu.yaml") for stage in (2, 3)}


@pytest.fixture(autouse=True)
def _deepspeed():
    pytest.importorskip("deepspeed", reason="DeepSpeed is not installed (make setup-deepspeed)")


def _weights(run_dir: Path, step: int | None = None) -> dict:
    done = dict(checkpoints(run_dir))
    return load_file(done[step if step is not None else max(done)] / "model.safetensors")


def _close(first: dict, second: dict, atol: float = 1e-6) -> bool:
    return first.keys() == second.keys() and all(torch.allclose(first[k], second[k], atol=atol) for k in first)


def _log(run_dir: Path) -> list[dict]:
    return read_records(run_dir / "train_log.jsonl")


@pytest.mark.parametrize("algorithm", ["grpo", "ppo"])
@pytest.mark.parametrize("stage", [2, 3])
def test_deepspeed_zero_trains_on_two_cpu_processes_and_its_checkpoint_evaluates(
    stage, algorithm, tiny_model, tmp_path
):
    from rlvr.config import EvaluateConfig, ModelConfig
    from rlvr.stages.evaluate import Benchmark, Evaluation

    generations = 1 if algorithm == "ppo" else 2
    train_params(tmp_path, algorithm=algorithm, num_generations=generations, per_device_train_batch_size=2,
                  max_steps=2, save_steps=2, num_processes=2, accelerate_config=ZERO[stage],
                  entropy_coef=0.0 if algorithm == "ppo" else 0.001, beta=0.001)  # fmt: skip
    started = time.monotonic()
    result = run_train(tmp_path, tiny_model, "run")
    print(f"ZeRO-{stage} {algorithm}: 2 steps on 2 CPU processes in {time.monotonic() - started:.1f} s")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "DeepSpeed" in result.stdout + result.stderr  # the engine that ran (its ops built for this CPU)
    assert [int(e["step"]) for e in _log(tmp_path / "run")] == [1, 2]
    assert [step for step, _ in checkpoints(tmp_path / "run")] == [2]
    assert not _close(_weights(tmp_path / "run"), load_file(tiny_model / "model.safetensors"), atol=0)  # it trained
    if algorithm == "grpo":  # DeepSpeed cannot continue from weights alone: the last checkpoint keeps its state
        assert list((tmp_path / "run" / "checkpoint-2").glob("global_step*"))
    suite = [Benchmark("test", "generator", tmp_path / "train.jsonl")]
    config = EvaluateConfig(max_new_tokens=4, batch_size=4, workers=1)
    rows = Evaluation(config, ModelConfig(), suite, tmp_path / "eval").evaluate_training(
        tiny_model, tmp_path / "run", "strict"
    )
    assert [row["step"] for row in rows] == [0, 2] and rows[1]["test.num_problems"] == 4


def test_every_rank_resumes_from_the_same_checkpoint_after_kills_and_a_finished_run_extends(tiny_model, tmp_path):
    """2 processes: killed between checkpoints (the reward's 3rd call ends every rank abruptly), then as if killed
    while saving (an incomplete checkpoint-4: discarded once, by rank 0), resumed to 4 steps, then extended to 6;
    the per-step rewards and the final weights are an uninterrupted 6-step run's."""
    train_params(tmp_path, num_processes=2, num_generations=2, per_device_train_batch_size=2, max_steps=6,
                  save_steps=2, sample_steps=0, keep_resume_state=True)  # fmt: skip
    whole = run_train(tmp_path, tiny_model, "whole")
    assert whole.returncode == 0, whole.stderr[-3000:]
    train_params(tmp_path, num_processes=2, num_generations=2, per_device_train_batch_size=2, max_steps=4,
                  save_steps=2, sample_steps=0, keep_resume_state=True)  # fmt: skip
    killed = run_train(tmp_path, tiny_model, "resumed", {"RLVR_TEST_CRASH_AT_CALL": "3"})
    assert killed.returncode != 0 and [s for s, _ in checkpoints(tmp_path / "resumed")] == [2]
    assert not (tmp_path / "resumed" / LOCK_FILE).exists()  # the stage that launched the ranks released it
    partial = tmp_path / "resumed" / "checkpoint-4"
    partial.mkdir()
    for path in (tmp_path / "resumed" / "checkpoint-2").iterdir():  # a save that stopped before its marker
        if path.is_file() and path.name != MARKER:
            (partial / path.name).write_bytes(path.read_bytes())
    resumed = run_train(tmp_path, tiny_model, "resumed")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stderr.count("removing incomplete checkpoint") == 1  # rank 0 tidies; the other rank waits
    assert resumed.stderr.count("resuming the train run from resumed/checkpoint-2") == 2  # every rank, the same
    train_params(tmp_path, num_processes=2, num_generations=2, per_device_train_batch_size=2, max_steps=6,
                  save_steps=2, sample_steps=0, keep_resume_state=True)  # fmt: skip
    extended = run_train(tmp_path, tiny_model, "resumed")
    assert extended.returncode == 0, extended.stderr[-3000:]
    assert extended.stderr.count("resuming the train run from resumed/checkpoint-4") == 2
    assert [int(e["step"]) for e in _log(tmp_path / "resumed")] == list(range(1, 7))
    assert [e["reward"] for e in _log(tmp_path / "resumed")] == [e["reward"] for e in _log(tmp_path / "whole")]
    assert _close(_weights(tmp_path / "whole"), _weights(tmp_path / "resumed"))


def test_a_finished_zero2_run_extends_by_max_steps_as_an_uninterrupted_one(tiny_model, tmp_path):
    values = dict(num_processes=2, num_generations=2, per_device_train_batch_size=2, save_steps=2, sample_steps=0,
                  accelerate_config=ZERO[2])  # fmt: skip
    train_params(tmp_path, max_steps=4, **values)
    whole = run_train(tmp_path, tiny_model, "whole")
    assert whole.returncode == 0, whole.stderr[-3000:]
    train_params(tmp_path, max_steps=2, **values)
    first = run_train(tmp_path, tiny_model, "extended")
    assert first.returncode == 0, first.stderr[-3000:]
    train_params(tmp_path, max_steps=4, **values)  # the finished run, 2 steps more
    more = run_train(tmp_path, tiny_model, "extended")
    assert more.returncode == 0, more.stderr[-3000:]
    assert "no optimizer state" not in more.stderr  # DeepSpeed's state is its global_step folder, kept
    assert [e["reward"] for e in _log(tmp_path / "extended")] == [e["reward"] for e in _log(tmp_path / "whole")]
    assert _close(_weights(tmp_path / "whole"), _weights(tmp_path / "extended"))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_signal_to_the_stage_reaches_every_rank_and_the_rerun_resumes(signum, tiny_model, tmp_path):
    """The stage in a process group of its own, as a shell starts ``dvc repro``'s command (a Ctrl-C goes to the
    whole group, a SIGTERM to the stage): within 30 s no process of the run remains, the writer lock is free, the
    MLflow runs are KILLED, and the rerun resumes from the last complete checkpoint."""
    train_params(tmp_path, reward="epoch_rewards:slow_text_reward", num_processes=2, num_generations=2,
                  per_device_train_batch_size=2, max_steps=40, save_steps=2, sample_steps=0)  # fmt: skip
    # a terminal's foreground job: Ctrl-C not ignored (a shell's background jobs inherit SIGINT ignored)
    process = subprocess.Popen(train_command(tiny_model), cwd=tmp_path, env=train_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    deadline = time.monotonic() + 240
    while not checkpoints(tmp_path / "run") and time.monotonic() < deadline:
        time.sleep(0.2)
    tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    ranks = [p for p in tree if "pipelines.train" in " ".join(p.cmdline()) and p.pid != process.pid]
    assert len(ranks) >= 2, [p.cmdline() for p in tree]  # the two ranks (and the launcher)
    started = time.monotonic()
    if signum == signal.SIGINT:
        os.killpg(process.pid, signum)  # a terminal's Ctrl-C: the stage's whole group (the ranks have their own)
    else:
        process.send_signal(signum)
    output = process.communicate(timeout=60)[0]
    _, alive = psutil.wait_procs(tree, timeout=max(0.0, 30 - (time.monotonic() - started)))
    assert not alive, f"still running 30 s after the signal: processes {[p.pid for p in alive]}"
    print(f"{signal.Signals(signum).name}: every process of the run ended {time.monotonic() - started:.1f} s after it")
    assert process.returncode == (143 if signum == signal.SIGTERM else 130), output[-3000:]
    assert not (tmp_path / "run" / LOCK_FILE).exists()
    _, runs = mlflow_runs(tmp_path)
    statuses = {run.data.tags.get("rlvr.stage", "pipeline"): run.info.status for run in runs}
    assert statuses == {"train": "KILLED", "pipeline": "KILLED"}, statuses
    done = [step for step, _ in checkpoints(tmp_path / "run")]
    fast = train_env() | {"RLVR_TEST_REWARD_SECONDS": "0"}  # steps of 1 s would have outlived the 30 s above
    rerun = subprocess.run(train_command(tiny_model), cwd=tmp_path, env=fast, capture_output=True, text=True,
                           timeout=600)  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"resuming the train run from run/checkpoint-{done[-1]}" in rerun.stderr
    assert [int(e["step"]) for e in _log(tmp_path / "run")] == list(range(1, 41))


def _one_or_two(tmp_path: Path, tiny_model: Path, processes: int) -> Path:
    """Greedy rollouts of two examples whose rewards differ (by id), the same global batch of 2 prompts x 2
    rollouts on one process (2 micro-batches) or two (one each)."""
    pool, _ = generate(2, 0, seed=0)
    train_params(tmp_path, reward="epoch_rewards:id_reward", accuracy_reward="epoch_rewards:id_reward",
                  num_processes=processes, num_generations=2, prompts_per_step=2, per_device_train_batch_size=2,
                  max_steps=3, save_steps=3, sample_steps=1, beta=0.01, entropy_coef=0.01, learning_rate=1e-2,
                  trl={"generation_kwargs": {"do_sample": False}})  # fmt: skip
    write_rows(tmp_path / "train.jsonl", pool)
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    assert params["train"].get("gradient_accumulation_steps") is None  # derived: 2 on one process, 1 on two
    result = run_train(tmp_path, tiny_model, f"p{processes}")
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp_path / f"p{processes}"


def test_two_processes_log_the_rollouts_of_every_rank_and_train_as_one(tiny_model, tmp_path):
    one, two = _one_or_two(tmp_path, tiny_model, 1), _one_or_two(tmp_path, tiny_model, 2)
    logs = [_log(one), _log(two)]
    for single, double in zip(*logs, strict=True):
        # the training example's accuracy and the samples cover both ranks: one example right, one wrong; rank 0's
        # rollouts alone would say 0 or 1
        assert single["accuracy"] == double["accuracy"] == single["reward"] == double["reward"] == 0.5
        assert single["boxed_share"] == double["boxed_share"]
        # the same loss, entropy and KL, within the float32 rounding of gloo's all-reduce against one process's sum
        for key in ("loss", "entropy", "kl", "grad_norm"):
            assert double[key] == pytest.approx(single[key], rel=1e-4, abs=1e-6), key
    for step in (1, 2, 3):
        samples = [read_records(run / "samples" / f"step-{step}.jsonl") for run in (one, two)]
        assert [(s["id"], s["completion"]) for s in samples[0]] == [(s["id"], s["completion"]) for s in samples[1]]
        assert len({s["id"] for s in samples[1]}) == 2
    # the weights: the same except where a gradient is at rounding level, which Adam turns into a step of up to the
    # learning rate (1e-2) either way: 99.9% of them within 1e-6, all within 3e-4
    first, second = _weights(one), _weights(two)
    differences = torch.cat([(first[key] - second[key]).abs().flatten() for key in first])
    assert float((differences > 1e-6).float().mean()) < 1e-3 and float(differences.max()) < 3e-4
    assert not _close(first, load_file(tiny_model / "model.safetensors"), atol=1e-4)  # and they trained
