"""Peak memory of TRL's GRPO loss, forward and backward, on one micro-batch: what calibrates the logits and
activation terms of the memory plan (``rlvr.training.plan``).

    python scripts/measure_loss_memory.py --calibrate      # CPU: the sizes below, fitted, into the plan's calibration
    python scripts/measure_loss_memory.py --model qwen2.5-math-1.5b --micro 4 --prompt 1024 --completion 3072 \\
        --device cuda                                       # one micro-batch of a preset on a GPU, against the plan

The model has random weights and the shape of a model of ``rlvr/resources/model_shapes.yaml`` (built from its
config: no download) or a small shape given here; it runs in bfloat16 as DeepSpeed runs the paper presets (the module
cast, no autocast), with gradient checkpointing, through ``GRPOTrainer.compute_loss`` (TRL's own loss: temperature,
log-probabilities, the entropy bonus with its gradient, the KL term) and ``backward``. Each size runs in a fresh
process. On a CPU the peak is the resident set's high-water mark (reset before the loss, so imports and model
building do not count) above the resident set before it, every large allocation mapped on its own so that freed
memory leaves the resident set; on CUDA ``max_memory_allocated`` above the memory allocated before it. Only the input
embedding is trained (the backward still runs through every layer): the weights' gradients are the plan's gradients
term, and the embedding's are counted apart.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CALIBRATION = ROOT / "rlvr" / "resources" / "memory_calibration.yaml"
LARGE_VOCAB = 151936  # Qwen2.5's: the logits term's size


def _size(
    vocab: int, hidden: int, intermediate: int, layers: int, heads: int, micro: int, prompt: int, completion: int
):
    return {"vocab": vocab, "hidden": hidden, "intermediate": intermediate, "layers": layers, "heads": heads,
            "micro": micro, "prompt": prompt, "completion": completion}  # fmt: skip


# Large-vocabulary narrow models isolate the logits term; small-vocabulary wide ones with few attention heads the
# activations (what gradient checkpointing keeps per layer, and the recomputed layer), linear in the tokens: few heads
# keep the attention scores small, which a CPU materialises (a GPU's fused attention does not)
LOGITS_SIZES = [
    _size(LARGE_VOCAB, 64, 128, 2, 4, m, 32, t) for m, t in ((1, 256), (2, 256), (1, 512), (2, 512), (4, 512))
]
ACTIVATION_SIZES = [_size(512, 2048, 5632, n, 2, m, 64, t) for n, m, t in ((2, 2, 448), (8, 2, 448), (2, 4, 448),
                                                                          (8, 4, 448), (8, 4, 960))]  # fmt: skip


def _hwm_reset() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets the peak resident set (VmHWM) to the current one


def _status(key: str) -> int:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(key + ":"))
    return int(line.split()[1]) * 1024


def measure(shape: dict, micro: int, prompt: int, completion: int, device: str = "cpu", seed: int = 0) -> dict:
    """Peak bytes of one micro-batch's loss forward and backward above what was allocated before it."""
    import torch
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    sys.path.insert(0, str(ROOT / "tests"))
    from tiny import random_qwen2

    model, tokenizer = random_qwen2(seed, **shape)
    model = model.to(device, dtype=torch.bfloat16)
    model.config.use_cache = False
    model.requires_grad_(False)  # weight gradients are the plan's gradients term; the embedding's alone are kept, so
    model.get_input_embeddings().weight.requires_grad_(True)  # the backward still runs (and recomputes) every layer
    with tempfile.TemporaryDirectory() as tmp:
        args = GRPOConfig(output_dir=tmp, use_cpu=device == "cpu", bf16=False, report_to="none",
                          per_device_train_batch_size=micro, num_generations=2, gradient_accumulation_steps=2,
                          max_completion_length=completion, temperature=0.6, entropy_coef=0.001, beta=0.0,
                          loss_type="dapo", gradient_checkpointing=True)  # fmt: skip
        dataset = Dataset.from_list([{"prompt": "1+1="}] * 2 * micro)
        trainer = GRPOTrainer(model=model, reward_funcs=lambda completions, **_: [0.0] * len(completions), args=args,
                              train_dataset=dataset, processing_class=tokenizer)  # fmt: skip
    trainer.beta = 0.001  # the presets' KL term (its reference log-probabilities come with the batch)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    trainer.current_gradient_accumulation_steps = 1
    generator = torch.Generator().manual_seed(seed)
    ids = lambda width: torch.randint(0, len(tokenizer), (micro, width), generator=generator).to(device)  # noqa: E731
    ones = lambda width: torch.ones(micro, width, dtype=torch.long, device=device)  # noqa: E731
    inputs = {
        "prompt_ids": ids(prompt), "prompt_mask": ones(prompt), "completion_ids": ids(completion),
        "completion_mask": ones(completion), "advantages": torch.randn(micro, generator=generator).to(device),
        "num_items_in_batch": torch.tensor(float(micro * completion), device=device),
        "ref_per_token_logps": -torch.rand(micro, completion, generator=generator).to(device),
    }  # fmt: skip
    gradients = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)  # the embedding's
    if device == "cpu":
        from rlvr.machine import attention_for

        before = _status("VmRSS")
        _hwm_reset()
        with attention_for(torch.bfloat16):  # on a CPU with AMX under the portable kernels (rlvr.machine)
            trainer.compute_loss(model, inputs).backward()
        peak = _status("VmHWM") - before
    else:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        trainer.compute_loss(model, inputs).backward()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - before
    return {"peak_bytes": peak, "gradient_bytes": gradients, "loss_bytes": peak - gradients}


def measure_in_process(size: dict, device: str = "cpu") -> dict:
    """:func:`measure` of one calibration size in a fresh interpreter (the allocator's state of no earlier size)."""
    shape = {"vocab_size": size["vocab"], "hidden_size": size["hidden"], "intermediate_size": size["intermediate"],
             "num_hidden_layers": size["layers"], "num_attention_heads": size["heads"],
             "num_key_value_heads": max(1, size["heads"] // 2)}  # fmt: skip
    code = (f"import json, sys; sys.path.insert(0, {str(ROOT / 'scripts')!r}); "
            "from measure_loss_memory import measure; "
            f"print(json.dumps(measure({shape!r}, {size['micro']}, {size['prompt']}, {size['completion']}, "
            f"{device!r})))")  # fmt: skip
    # every allocation of 64 KiB or more its own mapping, returned when freed: the resident set follows the live
    # tensors (glibc otherwise serves tensors under 32 MiB from its heap, whose freed pages stay resident)
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, env=env)
    if result.returncode:
        raise RuntimeError(f"measuring {size} failed: {result.stderr.strip().splitlines()[-1]}")
    return {"size": size} | json.loads(result.stdout.strip().splitlines()[-1])


def fit(rows: list[dict], features) -> list[float]:
    """Least-squares coefficients of ``loss_bytes`` on the ``features(size)`` of each row."""
    import numpy as np

    matrix = np.array([features(row["size"]) for row in rows], dtype=float)
    target = np.array([row["loss_bytes"] for row in rows], dtype=float)
    return [float(c) for c in np.linalg.lstsq(matrix, target, rcond=None)[0]]


def calibrate(logits_rows: list[dict] | None = None, activation_rows: list[dict] | None = None) -> dict:
    """Measure every calibration size on this CPU (or take ``*_rows`` measured before) and fit the plan's
    coefficients (see rlvr.training.plan); each fit has an offset of its own (the allocator's and the autograd
    graph's fixed cost, under a megabyte per size's hundreds), which the plan leaves to its CUDA allowance."""
    import platform

    from rlvr.training.plan import BF16, activation_features, logits_elements

    logits_rows = logits_rows or [measure_in_process(size) for size in LOGITS_SIZES]
    # bytes per bfloat16 logit of the micro-batch's completion positions: the live copies at the peak
    copies, logits_offset = fit(
        logits_rows, lambda s: [2 * logits_elements(s["micro"], s["completion"], s["vocab"]), 1]
    )
    activation_rows = activation_rows or [measure_in_process(size) for size in ACTIVATION_SIZES]
    logits_part = [copies * BF16 * logits_elements(r["size"]["micro"], r["size"]["completion"], r["size"]["vocab"])
                   for r in activation_rows]  # fmt: skip
    residual = [dict(r, loss_bytes=r["loss_bytes"] - x) for r, x in zip(activation_rows, logits_part, strict=True)]
    kept, working, activation_offset = fit(residual, lambda s: [*activation_features(s), 1])
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())  # fmt: skip
    return {
        "measured_on": f"CPU ({cpu}), torch {_version('torch')}, TRL {_version('trl')}, transformers "
        f"{_version('transformers')}; python scripts/measure_loss_memory.py --calibrate",
        "logits_copies": round(copies, 3),
        "activation_kept": round(kept, 3),
        "activation_working": round(working, 3),
        "offsets_mib": {"logits": round(logits_offset / 2**20, 1), "activations": round(activation_offset / 2**20, 1)},
        "logits_measurements": logits_rows,
        "activation_measurements": activation_rows,
    }


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--calibrate", action="store_true", help="measure the calibration sizes, write the coefficients")
    cli.add_argument("--refit", action="store_true", help="fit the stored calibration measurements again")
    cli.add_argument("--model", help="a model of rlvr/resources/model_shapes.yaml (random weights of its shape)")
    cli.add_argument("--micro", type=int, default=4, help="completions in the micro-batch")
    cli.add_argument("--prompt", type=int, default=1024, help="prompt tokens")
    cli.add_argument("--completion", type=int, default=3072, help="completion tokens")
    cli.add_argument("--device", default="cpu", help="cpu or cuda")
    args = cli.parse_args()
    if args.calibrate or args.refit:
        import yaml

        stored = yaml.safe_load(CALIBRATION.read_text()) if args.refit else {}
        result = calibrate(stored.get("logits_measurements"), stored.get("activation_measurements"))
        CALIBRATION.write_text("# written by: python scripts/measure_loss_memory.py --calibrate\n"
                               + yaml.safe_dump(result, sort_keys=False))  # fmt: skip
        print(json.dumps({k: v for k, v in result.items() if not k.endswith("measurements")}, indent=2))
        return
    from rlvr.training.plan import loss_estimate, model_shape

    shape = model_shape(args.model)
    config = {key: value for key, value in shape.config.items() if key != "model_type"}  # its shape, as Qwen2
    measured = measure(config, args.micro, args.prompt, args.completion, args.device)
    terms = loss_estimate(shape, args.micro, args.prompt, args.completion)
    planned = sum(terms.values())
    gib = {key: round(value / 2**30, 3) for key, value in (measured | terms | {"planned_bytes": planned}).items()}
    ratio = round(measured["loss_bytes"] / planned, 3)
    print(json.dumps({"model": shape.name, "micro": args.micro, "prompt": args.prompt, "completion": args.completion,
                      "device": args.device, "gib": gib, "measured_over_planned": ratio}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
