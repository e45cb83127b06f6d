"""The GPU tier (``scripts/gpu_check.sh``): bf16 GRPO steps, the evaluation backend, checkpoint and resume on
CUDA, with a tiny Qwen2-architecture model built from a config (no download). Skipped without CUDA."""

from __future__ import annotations

import pytest
import torch
from conftest import ROOT
from tiny import build_tiny_qwen2

from rlvr.config import EvaluateConfig, ModelConfig, TrainConfig
from rlvr.files import read_records, write_rows
from rlvr.generator import generate
from rlvr.training.checkpoints import checkpoints

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device (the GPU tier runs on GPU machines)"),
]


@pytest.fixture(scope="module")
def qwen2(tmp_path_factory):
    return build_tiny_qwen2(tmp_path_factory.mktemp("qwen2") / "model")


def _train(model, tmp_path, out: str, max_steps: int, crash_at: int | None = None):
    from rlvr.stages.train import run_train

    pool, _ = generate(2, 0, seed=0)
    write_rows(tmp_path / "rows.jsonl", [pool[i % 2] for i in range(4)])
    config = TrainConfig(reward="epoch_rewards:text_reward", learning_rate=1e-3, num_generations=2,
                         per_device_train_batch_size=4, max_completion_length=16, max_steps=max_steps, save_steps=2,
                         temperature=1.0, weight_decay=0.0, keep_resume_state=True)  # fmt: skip
    return run_train(config, model, tmp_path / "rows.jsonl", ModelConfig(template="chat"), tmp_path / out)


def _weights(model_dir) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return {k: v for path in sorted(model_dir.glob("*.safetensors")) for k, v in load_file(path).items()}


def test_bf16_grpo_steps_on_cuda_then_resume(qwen2, tmp_path, monkeypatch):
    """Two GRPO steps with a reward the rollouts can earn (it varies within a group, so advantages are not zero)
    change every trained weight, as TRL's own tests check; then the run resumes from its checkpoint."""
    monkeypatch.syspath_prepend(str(ROOT / "tests"))  # the test rewards
    steps = _train(qwen2, tmp_path, "run", max_steps=2)
    assert [int(s["step"]) for s in steps] == [1, 2]
    [(step, path)] = checkpoints(tmp_path / "run")
    assert step == 2 and (path / "optimizer.pt").is_file()
    before, after = _weights(qwen2), _weights(path)
    unchanged = [k for k in before if k in after and torch.equal(before[k].to(after[k].dtype), after[k])]
    assert set(after) <= set(before) and not unchanged, f"weights not trained: {unchanged}"
    from rlvr.training.algorithms import trainer_args

    assert trainer_args(TrainConfig(), tmp_path, save=False).bf16  # mixed precision on the GPU
    more = _train(qwen2, tmp_path, "run", max_steps=4)  # the same run, two more steps: resumed from step 2
    assert [int(s["step"]) for s in more] == [1, 2, 3, 4]
    assert [s for s, _ in checkpoints(tmp_path / "run")] == [2, 4]
    assert len(read_records(tmp_path / "run" / "train_log.jsonl")) == 4


def test_evaluation_backend_generates_on_cuda(qwen2):
    from rlvr.backends import TransformersBackend
    from rlvr.metrics import Protocol

    backend = TransformersBackend(qwen2, 4, EvaluateConfig().stop)
    assert backend.model.device.type == "cuda" and backend.model.dtype == torch.bfloat16
    render = backend.tokenizer.apply_chat_template
    prompts = [render([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True) for q in "123"]
    greedy = backend.generate(prompts, Protocol(), 12, seed=0)
    sampled = backend.generate(prompts, Protocol(4, 0.8), 12, seed=0)
    assert [len(s) for s in greedy] == [1, 1, 1] and [len(s) for s in sampled] == [4, 4, 4]
    assert backend.generate(prompts, Protocol(4, 0.8), 12, seed=0) == sampled  # seeded
