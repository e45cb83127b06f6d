"""The memory and batch plan of an RL run on GPUs, computed from the params before a GPU is touched: each GPU's peak
by term, the batch per optimizer step, and the disk its checkpoints need.

Per GPU (``N`` processes, ``P`` parameters, bfloat16 as DeepSpeed runs the presets; ZeRO stage from the accelerate
config file): the policy's weights (2P, ZeRO-3: 2P/N plus the layers it gathers), its gradients (ZeRO-2/3: the fp32
partition 4P/N; ZeRO-1: bf16 2P too; DDP in fp32: 8P with its buckets), the optimizer (AdamW's fp32 master, m and v:
12P/N; DDP: 8P; none on the GPU with the optimizer offloaded), the reference model where ``beta > 0`` (2P, ZeRO-3:
2P/N), PPO's value model (a second trained model), the loss's activations and logits for one micro-batch (the
micro-batch x completion length x vocabulary logits times the live copies, and what gradient checkpointing keeps:
both coefficients measured, ``rlvr/resources/memory_calibration.yaml``), PPO's rollout logits (TRL's PPO keeps the
float32 scores of every rollout of the process's batch through the step, and copies them once while padding: read
from its source, not measured), vLLM's reserved share
(``vllm_gpu_memory_utilization`` of the GPU) and a fixed allowance for the CUDA context, NCCL and fragmentation.
Disk: every checkpoint's weights, and one checkpoint's resume state (optimizer and DeepSpeed's model states).

    python -m rlvr.training.plan configs/paper/*.yaml --gpus 8 --gpu-memory-gib 79.6
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from rlvr.config import MAX_PROMPT_TOKENS, Params, RLConfig, load_params
from rlvr.errors import InputError

logger = logging.getLogger(__name__)

GIB = 2**30
BF16 = 2
CUDA_ALLOWANCE_GIB = 3.0  # CUDA context, NCCL buffers, allocator fragmentation: an allowance, not a measurement
HEADROOM = 0.9  # a suggested setting leaves a tenth of each GPU free: the plan is an estimate, calibrated on a CPU
GPU_GIB = 79.6  # an 80 GB GPU as torch reports it (an H100 80GB HBM3 has 81,559 MiB)
TERMS = ("weights", "gradients", "optimizer", "reference", "value_model", "activations", "logits", "rollout_logits",
         "vllm", "cuda")  # fmt: skip


@dataclass(frozen=True)
class ModelShape:
    """A model's name and the config.json fields the plan reads; ``params`` counted on a model built on the meta
    device (no memory, no download)."""

    name: str
    config: dict[str, Any]

    @functools.cached_property
    def params(self) -> int:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM

        values = dict(self.config)
        config = AutoConfig.for_model(values.pop("model_type"), **values)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
        return sum(p.numel() for p in model.parameters())

    @property
    def vocab_size(self) -> int:
        return self.config["vocab_size"]

    @property
    def hidden_size(self) -> int:
        return self.config["hidden_size"]

    @property
    def intermediate_size(self) -> int:
        return self.config["intermediate_size"]

    @property
    def num_hidden_layers(self) -> int:
        return self.config["num_hidden_layers"]

    @property
    def layer_params(self) -> int:
        """Parameters of one decoder layer (what ZeRO-3 gathers at a time)."""
        embeddings = self.vocab_size * self.hidden_size * (1 if self.config.get("tie_word_embeddings") else 2)
        return (self.params - embeddings) // self.num_hidden_layers


def _shapes() -> dict[str, dict]:
    return yaml.safe_load(resources.files("rlvr").joinpath("resources/model_shapes.yaml").read_text())


def model_shape(source: str, model_dir: str | Path | None = None) -> ModelShape:
    """The shape of ``source``: its local directory's config.json (``model_dir`` once the model stage has run, or
    ``source`` itself), the paper models' table (``rlvr/resources/model_shapes.yaml``), else the Hub's config."""
    for directory in (model_dir, source):
        if directory and (Path(directory) / "config.json").is_file():
            config = json.loads((Path(directory) / "config.json").read_text())
            config = config.get("text_config", config) | {"model_type": config["model_type"]}
            keys = set(next(iter(_shapes().values()))) | {"head_dim"}
            return ModelShape(source, {k: v for k, v in config.items() if k in keys})
    shapes = _shapes()
    if source in shapes:
        return ModelShape(source, shapes[source])
    try:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(source).to_dict()
    except OSError as error:
        raise InputError(f"memory plan: no shape for model {source!r} (not a local directory, not in "
                         f"rlvr/resources/model_shapes.yaml, not on the Hub: {error})") from None  # fmt: skip
    return ModelShape(source, {k: v for k, v in config.items() if k in set(next(iter(shapes.values())))})


@functools.cache
def calibration() -> dict[str, Any]:
    """The measured coefficients of the loss's logits and activation terms (``scripts/measure_loss_memory.py``)."""
    return yaml.safe_load(resources.files("rlvr").joinpath("resources/memory_calibration.yaml").read_text())


def logits_elements(micro: int, completion: int, vocab: int) -> int:
    """Elements of one micro-batch's logits over its completion positions (TRL keeps only those)."""
    return micro * completion * vocab


def activation_features(size: dict) -> list[float]:
    """Bytes of one bfloat16 hidden state per token and layer (what gradient checkpointing keeps), and per token of
    one layer's width and MLP width (what a recomputed layer holds), for the micro-batch's whole sequences."""
    tokens = size["micro"] * (size["prompt"] + size["completion"])
    return [BF16 * tokens * size["hidden"] * size["layers"], BF16 * tokens * (size["hidden"] + size["intermediate"])]


def loss_estimate(shape: ModelShape, micro: int, prompt: int, completion: int) -> dict[str, float]:
    """The loss's activations and logits (bytes) for one micro-batch, from the measured coefficients."""
    values = calibration()
    size = {"micro": micro, "prompt": prompt, "completion": completion, "hidden": shape.hidden_size,
            "layers": shape.num_hidden_layers, "intermediate": shape.intermediate_size}  # fmt: skip
    kept, working = activation_features(size)
    return {
        "activations": values["activation_kept"] * kept + values["activation_working"] * working,
        "logits": values["logits_copies"] * BF16 * logits_elements(micro, completion, shape.vocab_size),
    }


@dataclass(frozen=True)
class Machine:
    """GPUs of one node: how many and each one's memory; ``seen``: what torch sees (else given or assumed)."""

    gpus: int
    memory_gib: float
    seen: bool = False

    def describe(self) -> str:
        how = "seen by torch" if self.seen else "given (no CUDA device seen)"
        return f"{self.gpus} x {self.memory_gib:.1f} GiB, {how}"


def cuda_machine() -> Machine | None:
    """The GPUs torch sees (``CUDA_VISIBLE_DEVICES`` applied), or None without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return None
    count = torch.cuda.device_count()
    return Machine(count, torch.cuda.get_device_properties(0).total_memory / GIB, seen=True)


@dataclass(frozen=True)
class Sharding:
    """What the accelerate config file asks for: DeepSpeed's ZeRO stage (None: DDP or one plain process) and
    whether it offloads the optimizer or the parameters to the CPU."""

    zero_stage: int | None = None
    offload_optimizer: bool = False
    offload_params: bool = False

    @classmethod
    def of(cls, accelerate_config: str | None) -> Sharding:
        if not accelerate_config:
            return cls()
        values = yaml.safe_load(Path(accelerate_config).read_text()) or {}
        if values.get("distributed_type") != "DEEPSPEED":
            return cls()
        deepspeed = values.get("deepspeed_config") or {}
        return cls(
            int(deepspeed.get("zero_stage", 0)),
            deepspeed.get("offload_optimizer_device", "none") not in ("none", None),
            deepspeed.get("offload_param_device", "none") not in ("none", None),
        )


@dataclass(frozen=True)
class Plan:
    """Each GPU's peak by term (bytes), the batch, and the disk of a run (see module docstring)."""

    model: str
    params: int
    algorithm: str
    machine: Machine
    processes: int
    micro_batch: int
    accumulation: int
    prompts_per_step: int
    completions_per_step: int
    sequence: int
    zero_stage: int | None
    terms: dict[str, float]
    checkpoints: int
    checkpoint_bytes: float
    resume_bytes: float

    @property
    def peak(self) -> float:
        return sum(self.terms.values())

    @property
    def budget(self) -> float:
        return self.machine.memory_gib * GIB

    @property
    def fits(self) -> bool:
        return self.peak <= self.budget and self.processes <= self.machine.gpus

    @property
    def disk(self) -> float:
        return self.checkpoints * self.checkpoint_bytes + self.resume_bytes

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, in GiB."""
        return {
            "machine": self.machine.describe(),
            "model": self.model,
            "params_billion": round(self.params / 1e9, 2),
            "processes": self.processes,
            "zero_stage": self.zero_stage,
            "per_device_train_batch_size": self.micro_batch,
            "gradient_accumulation_steps": self.accumulation,
            "prompts_per_step": self.prompts_per_step,
            "completions_per_step": self.completions_per_step,
            "sequence_tokens": self.sequence,
            "gib_per_gpu": {term: round(value / GIB, 2) for term, value in self.terms.items()},
            "peak_gib_per_gpu": round(self.peak / GIB, 2),
            "gpu_gib": round(self.machine.memory_gib, 2),
            "fits": self.fits,
            "disk": {
                "checkpoints": self.checkpoints,
                "gib_per_checkpoint": round(self.checkpoint_bytes / GIB, 2),
                "resume_state_gib": round(self.resume_bytes / GIB, 2),
                "total_gib": round(self.disk / GIB, 1),
            },
        }


def plan(
    config: RLConfig, algorithm: str, shape: ModelShape, machine: Machine, prompt_tokens: int = MAX_PROMPT_TOKENS
) -> Plan:
    """The plan of ``config`` (a train or history section) for ``shape`` on ``machine`` (see module docstring)."""
    n, p = config.num_processes, shape.params
    sharding = Sharding.of(config.accelerate_config)
    stage = sharding.zero_stage
    ppo = algorithm == "ppo"
    trained = 2 if ppo else 1  # PPO trains the policy and a value model of the same size
    terms = dict.fromkeys(TERMS, 0.0)
    if stage is None:  # DDP (or one plain process): fp32 weights under autocast, gradients and their buckets
        terms["weights"] = 4 * p * trained
        terms["gradients"] = 8 * p * trained
        terms["optimizer"] = 8 * p * trained
        reference = 4 * p
    else:
        gathered = 2 * BF16 * shape.layer_params + BF16 * shape.vocab_size * shape.hidden_size
        terms["weights"] = (BF16 * p / n + gathered if stage == 3 else BF16 * p) * trained
        terms["gradients"] = (4 * p / n + (BF16 * p if stage < 2 else 0)) * trained
        terms["optimizer"] = 0.0 if sharding.offload_optimizer else 12 * p / n * trained
        reference = BF16 * p / n if stage == 3 else BF16 * p
    if ppo:
        terms["value_model"], terms["weights"] = terms["weights"] / 2, terms["weights"] / 2
    terms["reference"] = reference if config.beta > 0 else 0.0
    completion = config.max_completion_length
    terms |= loss_estimate(shape, config.per_device_train_batch_size, prompt_tokens, completion)
    if ppo:
        # TRL's PPO generates the process's whole batch keeping every step's float32 scores, which it holds through
        # the step's training; padding them into one tensor briefly makes a second copy, which the loss's logits and
        # activations may outgrow
        rollouts = config.per_device_train_batch_size * config.gradient_accumulation_steps
        terms["rollout_logits"] = 4 * logits_elements(rollouts, completion, shape.vocab_size)
        terms["logits"] = max(terms["logits"], terms["rollout_logits"] - terms["activations"])
    if config.use_vllm and config.vllm_mode == "colocate":
        terms["vllm"] = float(config.trl.get("vllm_gpu_memory_utilization", 0.3)) * machine.memory_gib * GIB
    terms["cuda"] = CUDA_ALLOWANCE_GIB * GIB
    saved = BF16 if stage is not None else 4  # the checkpoint's weights: DeepSpeed's bfloat16 module, else fp32
    resume = (12 + BF16) * p if stage is not None else 8 * p
    save_steps = getattr(config, "save_steps", 0)
    steps = config.max_steps if config.max_steps > 0 else 0
    return Plan(
        model=shape.name,
        params=p,
        algorithm=algorithm,
        machine=machine,
        processes=n,
        micro_batch=config.per_device_train_batch_size,
        accumulation=config.gradient_accumulation_steps,
        prompts_per_step=config.completions_per_step // config.num_generations,
        completions_per_step=config.completions_per_step,
        sequence=prompt_tokens + completion,
        zero_stage=stage,
        terms=terms,
        checkpoints=steps // save_steps if save_steps else 0,
        checkpoint_bytes=saved * p if getattr(config, "peft", None) is None else 0.0,
        resume_bytes=resume * trained if save_steps else 0.0,
    )


def rebatched(config: RLConfig, micro: int, processes: int | None = None) -> RLConfig | None:
    """``config`` with micro-batches of ``micro`` completions on ``processes`` (default: its own) and the same
    completions per optimizer step (None where they do not split so)."""
    processes = processes or config.num_processes
    if config.completions_per_step % (micro * processes):
        return None
    values = config.model_dump() | {"per_device_train_batch_size": micro, "num_processes": processes}
    accumulation = config.completions_per_step // (micro * processes)
    return type(config).model_validate(values | {"prompts_per_step": None, "gradient_accumulation_steps": accumulation})


def largest_micro_batch(config: RLConfig, algorithm: str, shape: ModelShape, machine: Machine, share: float = 1.0):
    """The largest micro-batch (with its plan) at which ``config`` keeps its batch on ``machine``'s GPUs within
    ``share`` of each one's memory, or None."""
    for micro in range(config.per_device_train_batch_size, 0, -1):
        candidate = rebatched(config, micro, machine.gpus)
        if candidate is not None:
            fitted = plan(candidate, algorithm, shape, machine)
            if fitted.peak <= share * fitted.budget:
                return micro, fitted
    return None


def advice(config: RLConfig, algorithm: str, shape: ModelShape, machine: Machine, section: str) -> str:
    """What to change so that the plan fits: the largest micro-batch that leaves ``HEADROOM`` free (else the largest
    that fits at all), else the fewest GPUs of the same memory at which one does."""
    found = largest_micro_batch(config, algorithm, shape, machine, HEADROOM)
    if found := found or largest_micro_batch(config, algorithm, shape, machine):
        micro, fitted = found
        return (f"set {section}.per_device_train_batch_size to {micro} ({fitted.peak / GIB:.1f} GiB per GPU, the "
                f"same {fitted.prompts_per_step} prompts per step)")  # fmt: skip
    for gpus in (2, 4, 8, 16, 32, 64):
        if gpus > machine.gpus and (
            found := largest_micro_batch(config, algorithm, shape, Machine(gpus, machine.memory_gib))
        ):
            return (f"no micro-batch fits {machine.gpus} GPU(s) of this memory: the same batch needs {gpus} "
                    f"({section}.num_processes: {gpus}, per_device_train_batch_size {found[0]})")  # fmt: skip
    return f"no micro-batch fits even 64 GPUs of {machine.memory_gib:.1f} GiB"


def refusal(config: RLConfig, algorithm: str, shape: ModelShape, machine: Machine, section: str) -> str | None:
    """One line refusing a run whose plan does not fit ``machine`` (None where it fits)."""
    if config.num_processes > machine.gpus:
        return (f"{section}.num_processes ({config.num_processes}) asks for more processes than the "
                f"{machine.gpus} CUDA device(s) this machine has: set it to {machine.gpus} (the batch per step is kept "
                f"where {section}.prompts_per_step is set)")  # fmt: skip
    result = plan(config, algorithm, shape, machine)
    if result.fits:
        return None
    terms = {"logits": f"at per_device_train_batch_size {result.micro_batch} x {config.max_completion_length} tokens",
             "activations": f"at per_device_train_batch_size {result.micro_batch} x {result.sequence} tokens",
             "rollout_logits": f"{config.completions_per_step // config.num_processes} rollouts of "
                               f"{config.max_completion_length} tokens per process"}  # fmt: skip
    largest = max(terms, key=lambda t: result.terms[t])
    size = f"{largest} {result.terms[largest] / GIB:.1f} GiB, {terms[largest]}"
    change = advice(config, algorithm, shape, machine, section)
    return (f"{section}: the memory plan needs {result.peak / GIB:.1f} GiB per GPU ({size}) of the "
            f"{machine.memory_gib:.1f} GiB of each GPU: {change}")  # fmt: skip


def train_plan(params: Params, machine: Machine) -> Plan:
    """The plan of ``params``'s train stage on ``machine`` (its model's shape from ``paths.model_dir`` where the
    model stage has run)."""
    shape = model_shape(params.model.source, params.paths.model_dir)
    return plan(params.train, params.train.algorithm, shape, machine)


def check_memory(params: Params, section: str) -> ModelShape:
    """Refuse (InputError, one line) a ``section`` (train, or a GRPO history) whose plan does not fit the GPUs torch
    sees; no check without CUDA (a CPU run, the rehearsal). Returns the model's shape."""
    config = getattr(params, section)
    shape = model_shape(params.model.source, params.paths.model_dir)
    machine = cuda_machine()
    if machine is not None and (line := refusal(config, config.algorithm_name, shape, machine, section)):
        raise InputError(line)
    return shape


def check_train(params: Params) -> None:
    """Before a train stage starts: :func:`check_memory`, and a warning where the disk has less room than its
    checkpoints need."""
    shape = check_memory(params, "train")
    needed = plan(params.train, params.train.algorithm, shape, cuda_machine() or Machine(1, GPU_GIB)).disk
    folder = next(p for p in (Path(params.paths.train_dir).absolute(), *Path(params.paths.train_dir).absolute().parents)
                  if p.exists())  # fmt: skip
    free = shutil.disk_usage(folder).free
    if free < needed:
        logger.warning("the run's checkpoints need %.1f GiB (max_steps / save_steps x its weights, and one resume "
                       "state); %s has %.1f GiB free", needed / GIB, folder, free / GIB)  # fmt: skip


def table(rows: list[tuple[str, Plan]]) -> str:
    """A Markdown table of plans: each GPU's peak by term (GiB), the batch and the disk."""
    header = ["params file", "processes", "micro-batch", "accumulation", "prompts/step", *TERMS, "peak", "fits",
              "checkpoints", "disk GiB"]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, result in rows:
        values = [f"{result.terms[t] / GIB:.1f}" for t in TERMS]
        cells = [name, result.processes, result.micro_batch, result.accumulation, result.prompts_per_step, *values,
                 f"{result.peak / GIB:.1f} of {result.machine.memory_gib:.1f}", "yes" if result.fits else "**no**",
                 result.checkpoints, f"{result.disk / GIB:,.0f}"]  # fmt: skip
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def main() -> None:
    cli = argparse.ArgumentParser(prog="python -m rlvr.training.plan", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    cli.add_argument("params", nargs="+", help="params files (the train section is planned)")
    cli.add_argument("--gpus", type=int, help="GPUs (train.num_processes; default: each file's own)")
    cli.add_argument("--gpu-memory-gib", type=float, default=GPU_GIB, help="memory of each GPU (default: %(default)s)")
    cli.add_argument("--json", action="store_true", help="JSON instead of a Markdown table")
    args = cli.parse_args()
    rows = []
    for path in args.params:
        overrides = {"train": {"num_processes": args.gpus}} if args.gpus else {}
        params = load_params(path, overrides)
        machine = Machine(args.gpus or params.train.num_processes, args.gpu_memory_gib)
        rows.append((Path(path).stem, train_plan(params, machine)))
    if args.json:
        print(json.dumps({name: result.as_dict() for name, result in rows}, indent=2))
    else:
        print(table(rows))


if __name__ == "__main__":
    main()
