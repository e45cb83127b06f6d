"""The train stage: paper presets, loss ablation switches, label override, monitoring, resume, PPO, launch."""

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from conftest import ROOT, free_port, mlflow_server, require, run_module, stop
from helpers import PRESETS, mlflow_runs, run_train, train_command, train_env, train_params, train_rows
from safetensors.torch import load_file

from rlvr.config import ModelConfig, TrainConfig, load_params
from rlvr.errors import InputError
from rlvr.files import read_records
from rlvr.stages.train import apply_label
from rlvr.training.algorithms import trainer_args
from rlvr.training.checkpoints import MARKER, checkpoints, resume_point, writer_lock
from rlvr.training.grpo import build_trainer
from rlvr.training.launch import launch_command, needs_launch
from rlvr.training.monitor import RolloutMonitor


def _paper_text() -> str:
    return require("docs/PAPER.md").read_text()


def _print_config(preset: str) -> dict:
    result = run_module(ROOT, "pipelines.train", "--params", f"configs/paper/{preset}.yaml", "--print-config")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_printed_config_of_the_pi1_preset_matches_the_paper():
    paper = _paper_text()
    settings = paper[paper.index("## Training (GRPO) settings") :]
    number = r"([\d.,e-]+)"

    def find(pattern: str) -> float:
        return float(re.search(pattern, settings).group(1).replace(",", ""))

    printed = _print_config("qwen25_math_1.5b_pi1")
    trainer = printed["trainer"]
    assert printed["model"] == "Qwen/Qwen2.5-Math-1.5B" and printed["template"] == "qwen25-math-cot"
    assert printed["algorithm"] == "grpo" and printed["reward"] == "accuracy_deepscaler" and printed["policy_loss"]
    # measured like the paper: its evaluation harness, its training prompt, no vLLM importance-sampling correction
    assert printed["headline_mode"] == "official" and printed["train_template"] == "paper-train"
    suffix = "Let's think step by step and output the final answer within \\boxed{}."
    assert printed["train_prompt"] == [{"role": "user", "content": f"{{problem}} {suffix}"}]
    assert trainer["vllm_importance_sampling_correction"] is False and trainer["use_bias_correction_kl"] is False
    assert trainer["learning_rate"] == find(rf"lr {number}")
    assert trainer["weight_decay"] == find(rf"weight decay {number}")
    assert printed["batch"]["prompts_per_step"] == find(rf"batch {number} prompts")
    assert printed["batch"]["rollouts_per_prompt"] == trainer["num_generations"] == find(rf"x {number} rollouts")
    # mini-batch = batch: one optimizer step per generated batch
    assert trainer["steps_per_generation"] in (None, trainer["gradient_accumulation_steps"])
    assert find(rf"mini-batch {number}") == printed["batch"]["prompts_per_step"]
    assert trainer["temperature"] == find(rf"rollout temperature {number}")
    assert trainer["beta"] == find(rf"KL loss beta {number}")
    assert trainer["entropy_coef"] == find(rf"entropy bonus coefficient {number}")
    assert "token-level loss mean" in settings and trainer["loss_type"] == "dapo"
    assert trainer["max_completion_length"] == find(rf"response {number} tokens")
    assert trainer["max_steps"] == find(rf"{number} steps \(1.5B\)")
    assert trainer["save_steps"] == find(rf"checkpoint every {number} steps")
    assert trainer["use_vllm"] and trainer["vllm_mode"] == "colocate"
    assert printed["launch"][-4:] == ["-m", "pipelines.train", "--params", "PARAMS"]


def test_every_paper_preset_builds_its_trainer_config():
    """TRL's configuration of every preset's algorithm builds (in process: the same function --print-config
    prints), with the preset's steps, reward scorer and batch."""
    from rlvr.stages.train import effective_config
    from rlvr.training.plan import GPU_GIB

    for preset in PRESETS:
        params = load_params(preset)
        assert params.train.max_steps >= 1000, preset.name
        built = effective_config(params, GPU_GIB)
        assert built["algorithm"] == params.train.algorithm, preset.name
        assert built["batch"]["prompts_per_step"] == params.train.prompts_per_step, preset.name
        trainer, train = built["trainer"], params.train
        if train.algorithm == "ppo":  # TRL's PPO counts episodes: prompts over the whole run
            assert trainer["total_episodes"] == train.max_steps * train.prompts_per_step, preset.name
        else:
            assert trainer["max_steps"] == train.max_steps, preset.name
        assert trainer["learning_rate"] == train.learning_rate, preset.name
        length = trainer.get("max_completion_length", trainer.get("response_length"))
        assert length == train.max_completion_length, preset.name
    ppo = _print_config("ppo_qwen25_math_1.5b_pi1")
    assert ppo["algorithm"] == "ppo" and ppo["trainer"]["kl_coef"] == 0.001 and ppo["trainer"]["kl_estimator"] == "k3"
    assert ppo["batch"]["prompts_per_step"] == 128 and ppo["trainer"]["response_length"] == 3072
    r1 = load_params(ROOT / "configs" / "paper" / "r1_distill_qwen_1.5b_pi1.yaml")
    assert r1.model.template == "r1-distill" and r1.train.max_completion_length == 8192 and r1.train.max_steps == 1200


def test_accelerate_configs_are_valid_accelerate_files():
    from accelerate.commands.config.config_args import ClusterConfig

    for path in sorted((ROOT / "configs" / "accelerate").glob("*.yaml")):
        config = ClusterConfig.from_yaml_file(path)
        twin = path.stem.endswith("-cpu")  # a CPU twin: float32 on the CPU, nothing else changed
        assert config.num_machines == 1 and config.mixed_precision == ("no" if twin else "bf16"), path.name
        if twin:
            gpu = yaml.safe_load(path.with_name(path.name.replace("-cpu", "")).read_text())
            cpu = yaml.safe_load(path.read_text())
            assert {k for k in gpu if gpu[k] != cpu.get(k)} == {"use_cpu", "mixed_precision"} and cpu["use_cpu"]


def test_ppo_refuses_what_trl_ppo_cannot_do():
    with pytest.raises(ValueError, match="train.entropy_coef must be 0"):
        TrainConfig(algorithm="ppo", num_generations=1, per_device_train_batch_size=2, entropy_coef=0.001)
    with pytest.raises(ValueError, match="train.num_generations must be 1"):
        TrainConfig(algorithm="ppo")
    with pytest.raises(ValueError, match="train.trl.epsilon: not a field of TRL's PPOConfig"):
        TrainConfig(algorithm="ppo", num_generations=1, trl={"epsilon": 0.2})
    with pytest.raises(ValueError, match="algorithm\n  Input should be 'grpo', 'ppo' or 'entropy_min'"):
        TrainConfig(algorithm="dpo")


def test_grpo_args_carry_each_switch():
    config = TrainConfig(beta=0.001, entropy_coef=0.002, weight_decay=0.0, temperature=0.6, use_vllm=True)
    args = trainer_args(config, "out", save=True, resumable=True)
    assert (args.beta, args.entropy_coef, args.weight_decay, args.temperature) == (0.001, 0.002, 0.0, 0.6)
    assert args.use_vllm and args.vllm_mode == "colocate" and not args.save_only_model
    assert trainer_args(TrainConfig(), "out", save=True).entropy_coef == 0.0


def test_label_override_replaces_the_answer_and_keeps_the_gold():
    rows = [{"id": "7", "problem": "p", "answer": "12.8"}, {"id": "9", "problem": "q", "answer": "4/3"}]
    assert apply_label(rows, None) is rows
    assert [r["answer"] for r in apply_label(rows, "12.7")] == ["12.7", "12.7"]
    changed = apply_label(rows, {7: "12.7"})
    assert [(r["answer"], r["gold_answer"]) for r in changed] == [("12.7", "12.8"), ("4/3", "4/3")]
    with pytest.raises(ValueError, match=r"train.label: ids \['8'\] are not in the training rows"):
        apply_label(rows, {"8": "1"})


def test_monitor_adds_boxed_share_and_writes_samples(tmp_path):
    monitor = RolloutMonitor(tmp_path, sample_steps=2)
    reward = monitor.wrap(lambda completions, **kw: [1.0, 0.0])
    assert reward(["\\boxed{1}", "no box"], completion_ids=[[1, 2, 3], [4]], id=["a", "a"]) == [1.0, 0.0]
    logs = {"step_time": 2.0}
    state = SimpleNamespace(global_step=2, log_history=[dict(logs)])
    monitor.on_log(None, state, None, logs=logs)
    assert logs["boxed_share"] == 0.5 and logs["rollout_tokens_per_second"] == 2.0 and logs["reward"] == 0.5
    assert state.log_history[-1]["boxed_share"] == 0.5
    samples = read_records(tmp_path / "samples" / "step-2.jsonl")
    assert [(s["id"], s["reward"], s["boxed"]) for s in samples] == [("a", 1.0, True), ("a", 0.0, False)]
    logs = {}
    monitor.on_log(None, SimpleNamespace(global_step=3, log_history=[]), None, logs=logs)
    assert logs == {}  # nothing graded since the last entry


def test_monitor_logs_the_training_examples_accuracy_whatever_the_reward(tmp_path):
    """A format-only reward pays for any box; the accuracy logged beside it grades the answer (the saturation
    step is read from it)."""
    from rlvr.rewards import get_reward

    monitor = RolloutMonitor(tmp_path, accuracy=get_reward("accuracy"))
    reward = monitor.wrap(get_reward("format"))
    completions = ["\\boxed{12.8}", "\\boxed{3}", "\\boxed{}", "12.8"]
    assert reward(completions, answer=["12.8"] * 4) == [1.0, 1.0, 0.0, 0.0]
    logs = {"reward": 0.5}
    monitor.on_log(None, SimpleNamespace(global_step=1, log_history=[dict(logs)]), None, logs=logs)
    assert logs["accuracy"] == 0.25 and logs["boxed_share"] == 0.5  # the echoed empty box is not a box


def test_incomplete_checkpoints_are_discarded_and_another_runs_folder_is_moved_aside(tmp_path, caplog):
    run = tmp_path / "train"
    assert resume_point(run, "a") is None
    for step in (2, 4):
        (run / f"checkpoint-{step}").mkdir()
        (run / f"checkpoint-{step}" / "model.safetensors").write_text("x")
    (run / "checkpoint-2" / MARKER).write_text("{}")  # checkpoint-4: killed while saving
    assert resume_point(run, "a") == run / "checkpoint-2"
    assert not (run / "checkpoint-4").exists() and [s for s, _ in checkpoints(run)] == [2]
    assert resume_point(run, "b") is None and not (run / "checkpoint-2").exists()  # settings changed...
    kept = tmp_path / "train-previous" / "a"
    assert (kept / "checkpoint-2" / "model.safetensors").is_file()  # ...and run a's checkpoints are kept
    assert f"moved to {kept}" in caplog.text


def test_one_writer_per_train_folder_and_a_dead_writers_lock_is_taken_over(tmp_path):
    message = rf"train is being written by process {os.getpid()} on .* \(since "
    with writer_lock(tmp_path / "train"), pytest.raises(InputError, match=message), writer_lock(tmp_path / "train"):
        pass
    assert not (tmp_path / "train" / ".writer.lock").exists()  # released
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    holder = {"pid": int(dead.stdout), "host": socket.gethostname(), "since": "earlier"}
    (tmp_path / "train" / ".writer.lock").write_text(json.dumps(holder))
    with writer_lock(tmp_path / "train"):  # its process has ended: taken over
        assert json.loads((tmp_path / "train" / ".writer.lock").read_text())["pid"] == os.getpid()


def test_launch_is_asked_for_by_num_processes(monkeypatch):
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert not needs_launch(TrainConfig())
    config = TrainConfig(num_processes=2, accelerate_config=str(ROOT / "configs" / "accelerate" / "zero2.yaml"))
    assert needs_launch(config)
    command = launch_command(config, "pipelines.train", ["--params", "p.yaml"])
    assert command[1:5] == ["-m", "accelerate.commands.launch", "--num_processes", "2"]
    assert command[5:7] == ["--config_file", config.accelerate_config]
    assert command[-4:] == ["-m", "pipelines.train", "--params", "p.yaml"]
    monkeypatch.setenv("LOCAL_RANK", "0")  # already a launched process
    assert not needs_launch(config)


# --- training runs on the embedded model cut to 2 layers ----------------------------------------------------


def _one_step(model_dir, tmp_path, **switches) -> tuple[dict, dict, object]:
    """Weights before and after one GRPO step with ``switches``, and the trainer."""
    from rlvr.rewards import get_reward

    values = dict(learning_rate=1e-2, weight_decay=0.0, num_generations=4, per_device_train_batch_size=4)
    values.update(max_completion_length=8, max_steps=1, save_steps=1, temperature=1.0)
    config = TrainConfig(reward="epoch_rewards:text_reward", **{**values, **switches})
    policy_loss = switches.get("policy_loss", True)
    args = trainer_args(config, tmp_path, save=False)
    trainer = build_trainer(
        model_dir, train_rows(), args, ModelConfig(), get_reward(config.reward), "", policy_loss=policy_loss
    )
    before = {k: v.detach().clone() for k, v in trainer.model.named_parameters()}
    trainer.train()
    after = {k: v.detach().clone() for k, v in trainer.model.named_parameters()}
    return before, after, trainer


WEIGHT = "model.layers.0.mlp.up_proj.weight"


def _changed(before: dict, after: dict) -> bool:
    return any(not torch.equal(before[k], after[k]) for k in before)


@pytest.mark.integration
def test_loss_ablation_switches_change_what_they_should(tiny_model, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "tests"))
    torch.manual_seed(0)
    # everything off: no term gives a gradient, weights unchanged
    before, after, trainer = _one_step(tiny_model, tmp_path / "off", policy_loss=False, beta=0.0, entropy_coef=0.0)
    assert not _changed(before, after) and trainer.ref_model is None
    rewards = [e["reward_std"] for e in trainer.state.log_history if "reward_std" in e]
    assert rewards and rewards[0] > 0  # the rollouts had different rewards: only the switch kept them from training
    # entropy loss only (policy gradient off): trains
    before, after, _ = _one_step(tiny_model, tmp_path / "entropy", policy_loss=False, entropy_coef=0.1)
    assert _changed(before, after)
    # policy gradient only: trains
    before, after, _ = _one_step(tiny_model, tmp_path / "pg", policy_loss=True)
    assert _changed(before, after)
    # weight decay only: every decayed matrix shrinks by (1 - lr * wd), exactly AdamW's decoupled decay
    before, after, _ = _one_step(tiny_model, tmp_path / "wd", policy_loss=False, weight_decay=0.5)
    assert torch.allclose(after[WEIGHT], before[WEIGHT] * (1 - 1e-2 * 0.5), atol=1e-7)
    # KL on: a reference model and a logged KL
    _, _, trainer = _one_step(tiny_model, tmp_path / "kl", policy_loss=False, beta=0.5)
    assert trainer.ref_model is not None and any("kl" in e for e in trainer.state.log_history)


@pytest.mark.integration
def test_entropy_minimisation_trains_without_a_reward_and_lowers_the_entropy(tiny_model, tmp_path):
    """The reward-free algorithm: no reward ever differs (the format reward is 0 on the tiny model's text), yet
    the weights move, and the policy's token entropy on a fixed text falls."""
    from transformers import AutoTokenizer

    from rlvr.rewards import get_reward
    from rlvr.training.entropy_min import EntropyMinimizationTrainer

    config = TrainConfig(reward="format", algorithm="entropy_min", learning_rate=1e-3, weight_decay=0.0,
                         num_generations=4, per_device_train_batch_size=4, max_completion_length=8, max_steps=3,
                         save_steps=3, temperature=1.0)  # fmt: skip
    args = trainer_args(config, tmp_path, save=False)
    trainer = build_trainer(tiny_model, train_rows(), args, ModelConfig(), get_reward("format"), "",
                            trainer_class=EntropyMinimizationTrainer)  # fmt: skip
    text = AutoTokenizer.from_pretrained(tiny_model)("What is 12 times 7? The answer is 84.", return_tensors="pt")

    def entropy() -> float:
        with torch.no_grad():
            logits = trainer.model(**text).logits[0]  # (T, vocab)
        return float(torch.distributions.Categorical(logits=logits).entropy().mean())

    before, weights = entropy(), {k: v.detach().clone() for k, v in trainer.model.named_parameters()}
    trainer.train()
    assert all(e["reward_std"] == 0 for e in trainer.state.log_history if "reward_std" in e)
    assert _changed(weights, dict(trainer.model.named_parameters()))
    assert entropy() < before
    with pytest.raises(ValueError, match="train.entropy_coef must be 0"):
        TrainConfig(algorithm="entropy_min", entropy_coef=0.01)


def _final_weights(run_dir: Path) -> dict:
    return load_file(checkpoints(run_dir)[-1][1] / "model.safetensors")


@pytest.mark.slow  # 7 trainings; make test runs one kill (SIGTERM) and its resume
def test_killed_training_resumes_from_its_last_complete_checkpoint(tiny_model, tmp_path):
    """A kill campaign: the run killed (like SIGKILL: no clean-up at all) at 5 seeded random points, rerun after
    each; in the end the same per-step rewards and the same final weights as an uninterrupted run."""
    train_params(tmp_path)
    whole = run_train(tmp_path, tiny_model, "whole")
    assert whole.returncode == 0, whole.stderr[-3000:]
    points = random.Random(7).choices(range(1, 4), k=5)  # the n-th reward call (= step) after each start
    for point in points:
        killed = run_train(tmp_path, tiny_model, "resumed", {"RLVR_TEST_CRASH_AT_CALL": str(point)})
        assert killed.returncode in (0, 3), killed.stderr[-3000:]  # 0: the run ended before the point
    (tmp_path / "resumed" / "checkpoint-8").mkdir(exist_ok=True)  # as if killed while writing a checkpoint
    resumed = run_train(tmp_path, tiny_model, "resumed")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    print("kill points (reward call after each start):", points)
    for run in ("whole", "resumed"):
        assert [step for step, _ in checkpoints(tmp_path / run)] == [2, 4, 6]
        assert [int(e["step"]) for e in read_records(tmp_path / run / "train_log.jsonl")] == [1, 2, 3, 4, 5, 6]
        assert not any((tmp_path / run).glob("checkpoint-*/optimizer.pt"))  # the finished run keeps models only
        assert (tmp_path / run / "samples" / "step-6.jsonl").exists()
    whole_log, resumed_log = (read_records(tmp_path / run / "train_log.jsonl") for run in ("whole", "resumed"))
    assert [e["reward"] for e in whole_log] == [e["reward"] for e in resumed_log]
    final = [_final_weights(tmp_path / run) for run in ("whole", "resumed")]
    assert all(torch.allclose(final[0][k], final[1][k], atol=1e-6) for k in final[0])


@pytest.mark.integration
def test_two_trainings_with_the_same_seed_give_identical_weights(tiny_model, tmp_path):
    """Reproducible training: the same settings and seed twice (sampled rollouts, a varying reward, Adam) end in
    bit-identical weights and the same per-step log."""
    train_params(tmp_path, max_steps=3, save_steps=3, sample_steps=0)
    for run in ("first", "second"):
        result = run_train(tmp_path, tiny_model, run)
        assert result.returncode == 0, result.stderr[-3000:]
    first, second = (_final_weights(tmp_path / run) for run in ("first", "second"))
    initial = load_file(tiny_model / "model.safetensors")
    assert any(not torch.equal(first[key], initial[key]) for key in first)  # it trained
    assert first.keys() == second.keys() and all(torch.equal(first[key], second[key]) for key in first)
    logs = [read_records(tmp_path / run / "train_log.jsonl") for run in ("first", "second")]
    assert [e["reward"] for e in logs[0]] == [e["reward"] for e in logs[1]] and len(logs[0]) == 3


@pytest.mark.integration
def test_sigterm_marks_the_runs_killed_discards_the_unfinished_checkpoint_and_the_rerun_resumes(tiny_model, tmp_path):
    train_params(tmp_path, reward="epoch_rewards:slow_text_reward", max_steps=8)
    process = subprocess.Popen(train_command(tiny_model), cwd=tmp_path, env=train_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while not checkpoints(tmp_path / "run") and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=120)[0]
    assert process.returncode == 143, output[-3000:]
    assert "stopped by SIGTERM" in output
    _, runs = mlflow_runs(tmp_path)
    statuses = {run.data.tags.get("rlvr.stage", "pipeline"): run.info.status for run in runs}
    assert statuses == {"train": "KILLED", "pipeline": "KILLED"}
    done = [step for step, _ in checkpoints(tmp_path / "run")]
    assert done and sorted(p.name for p in (tmp_path / "run").glob("checkpoint-*")) == [f"checkpoint-{s}" for s in done]
    assert not (tmp_path / "run" / ".writer.lock").exists()
    rerun = subprocess.run(train_command(tiny_model), cwd=tmp_path, env=train_env(), capture_output=True, text=True,
                           timeout=300)  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"resuming the train run from run/checkpoint-{done[-1]}" in rerun.stderr
    assert [int(e["step"]) for e in read_records(tmp_path / "run" / "train_log.jsonl")] == list(range(1, 9))


@pytest.mark.slow  # two tracking server starts and a training slowed down to be caught in the middle
def test_tracking_server_unreachable_at_start_then_gone_mid_training(tiny_model, tmp_path):
    """Unreachable at start: one line naming the URI within seconds, nothing written. Gone in the middle of a
    training: the training goes on, and its metrics reach the server once it is back."""
    from mlflow.tracking import MlflowClient

    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    train_params(tmp_path, reward="epoch_rewards:slow_text_reward", max_steps=10, save_steps=5)
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["mlflow"]["tracking_uri"] = uri
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    started = time.monotonic()
    refused = run_train(tmp_path, tiny_model, "run")
    assert refused.returncode == 2 and time.monotonic() - started < 60
    assert refused.stderr.strip().splitlines()[-1].startswith(f"error: MLflow tracking server {uri} is unreachable")
    assert not (tmp_path / "run").exists()
    server = mlflow_server(tmp_path, port)
    training = subprocess.Popen(train_command(tiny_model), cwd=tmp_path, env=train_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)  # fmt: skip
    client = MlflowClient(uri)

    def rewards() -> list:
        experiment = client.get_experiment_by_name("one-shot-rlvr-smoke")
        runs = client.search_runs([experiment.experiment_id], "tags.`rlvr.stage` = 'train'") if experiment else []
        return client.get_metric_history(runs[0].info.run_id, "train.reward") if runs else []

    try:
        deadline = time.monotonic() + 120
        while len(rewards()) < 2 and time.monotonic() < deadline:  # training is under way
            time.sleep(0.5)
        server.terminate()
        server.wait(timeout=60)
        time.sleep(4)  # steps go on while the server is down
        server = mlflow_server(tmp_path, port)
        output = training.communicate(timeout=300)[0]
        assert training.returncode == 0, output[-3000:]
        assert "MLflow unreachable" in output
        assert sorted(m.step for m in rewards()) == list(range(1, 11))  # nothing lost
    finally:
        stop(server)  # the server and its own processes
        training.kill()


@pytest.mark.integration
def test_ppo_trains_on_cpu(tiny_model, tmp_path):
    from transformers import AutoModelForCausalLM

    train_params(tmp_path, algorithm="ppo", num_generations=1, per_device_train_batch_size=2, max_steps=2)
    result = run_train(tmp_path, tiny_model, "ppo")
    assert result.returncode == 0, result.stderr[-3000:]
    log = read_records(tmp_path / "ppo" / "train_log.jsonl")
    assert [int(e["step"]) for e in log] == [1, 2]
    assert all(
        {"reward", "objective/kl", "policy/clipfrac_avg", "loss/value_avg", "boxed_share"} <= set(e) for e in log
    )
    assert [step for step, _ in checkpoints(tmp_path / "ppo")] == [2]
    policy = AutoModelForCausalLM.from_pretrained(tmp_path / "ppo" / "checkpoint-2")  # the policy, for evaluation
    initial = AutoModelForCausalLM.from_pretrained(tiny_model)
    assert not torch.equal(policy.model.layers[0].mlp.up_proj.weight, initial.model.layers[0].mlp.up_proj.weight)


def test_ppo_reward_model_grades_the_response(tiny_model):
    from trl.experimental.utils import get_reward

    from rlvr.rewards import accuracy_reward
    from rlvr.templates import get_template
    from rlvr.training.grpo import load_policy
    from rlvr.training.ppo import VerifiableRewardModel

    _, tokenizer = load_policy(tiny_model)
    rows = [{"id": "1", "problem": "2+3?", "answer": "5"}, {"id": "2", "problem": "2+2?", "answer": "4"}]
    prompts = [
        tokenizer(get_template("chat").render(r["problem"], ModelConfig(), tokenizer))["input_ids"] for r in rows
    ]
    model = VerifiableRewardModel(accuracy_reward, tokenizer, rows, prompts)
    pad = tokenizer.pad_token_id
    responses = [tokenizer(" so \\boxed{5}")["input_ids"], tokenizer(" \\boxed{5}")["input_ids"]]
    width = max(map(len, prompts))
    sequences = [[pad] * (width - len(p)) + p + r for p, r in zip(prompts, responses, strict=True)]
    length = max(map(len, sequences))
    batch = torch.tensor([s + [pad] * (length - len(s)) for s in sequences])
    _, scores, _ = get_reward(model, batch, pad, width)
    assert scores.tolist() == [1.0, 0.0]  # 5 is right for 2+3, wrong for 2+2


@pytest.mark.integration
def test_two_processes_are_launched_from_the_stage_and_track_once(tiny_model, tmp_path):
    from mlflow.tracking import MlflowClient

    train_params(tmp_path, num_processes=2, num_generations=2, per_device_train_batch_size=2, max_steps=2)
    result = run_train(tmp_path, tiny_model, "launched")
    assert result.returncode == 0, result.stderr[-3000:]
    assert [int(e["step"]) for e in read_records(tmp_path / "launched" / "train_log.jsonl")] == [1, 2]
    assert [step for step, _ in checkpoints(tmp_path / "launched")] == [2]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(
        yaml.safe_load((tmp_path / "params.yaml").read_text())["mlflow"]["experiment"]
    )
    runs = client.search_runs([experiment.experiment_id], "tags.`rlvr.stage` = 'train'")
    assert len(runs) == 1 and runs[0].data.params["num_processes"] == "2"  # rank 0 only
    assert len(client.get_metric_history(runs[0].info.run_id, "train.reward")) == 2


@pytest.mark.integration
def test_several_rewards_combine_with_their_weights_as_trl_defines(tiny_model, tmp_path, monkeypatch):
    from rlvr.rewards import combined_reward, get_reward

    monkeypatch.syspath_prepend(str(ROOT / "tests"))
    config = TrainConfig(reward=["epoch_rewards:text_reward", "format"], reward_weights=[0.5, 2.0], learning_rate=1e-3,
                         num_generations=4, per_device_train_batch_size=4, max_completion_length=6, max_steps=1,
                         save_steps=1)  # fmt: skip
    rewards = [get_reward(name) for name in config.rewards]
    args = trainer_args(config, tmp_path, save=False)
    trainer = build_trainer(tiny_model, train_rows(), args, ModelConfig(), rewards, "")
    trainer.train()
    [entry] = [e for e in trainer.state.log_history if "reward" in e]
    text, fmt = entry["rewards/text_reward/mean"], entry["rewards/format_reward/mean"]
    assert entry["reward"] == pytest.approx(0.5 * text + 2.0 * fmt)  # TRL's weighted sum
    # the history stage's single reward function combines the same way, per completion
    combined = combined_reward(config.rewards, config.reward_weights)
    completions = ["\\boxed{1}", "ab", "\\boxed{}"]
    expected = [0.5 * t + 2.0 * f for t, f in zip(get_reward("epoch_rewards:text_reward")(completions),
                                                   get_reward("format")(completions), strict=True)]  # fmt: skip
    assert combined(completions, answer=["1"] * 3) == expected


@pytest.mark.integration
def test_lora_training_writes_adapter_checkpoints_that_evaluate(tiny_model, tmp_path):
    from rlvr.config import EvaluateConfig
    from rlvr.stages.evaluate import Benchmark, Evaluation

    peft = {"r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}
    train_params(tmp_path, max_steps=2, save_steps=2, sample_steps=0, peft=peft)
    result = run_train(tmp_path, tiny_model, "lora")
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = tmp_path / "lora" / "checkpoint-2"
    assert (checkpoint / "adapter_config.json").is_file() and not (checkpoint / "model.safetensors").exists()
    suite = [Benchmark("test", "generator", tmp_path / "train.jsonl")]
    config = EvaluateConfig(max_new_tokens=4, batch_size=4)
    rows = Evaluation(config, ModelConfig(), suite, tmp_path / "eval").evaluate_training(
        tiny_model, tmp_path / "lora", "strict"
    )
    assert [row["step"] for row in rows] == [0, 2] and rows[1]["test.num_problems"] == 4
