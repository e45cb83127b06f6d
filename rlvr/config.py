"""Typed parameters: one dataclass per ``params.yaml`` section, unknown keys rejected by name."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A params file that cannot be used; the message names the file and the bad key."""


class InputError(FileNotFoundError):
    """A missing or unreadable input file; the message names the file."""


HISTORY_SOURCES = ("grpo", "file", "pass_rate")
ALGORITHMS = ("grpo", "ppo")
GENERATOR_SIZES = {"pool": 16, "test": 128}  # the generator's sizes where data.pool_size / test_size are null


@dataclass
class Paths:
    """Where every stage reads and writes; dvc.yaml interpolates the same keys."""

    model_dir: str = "outputs/model"
    pool: str = "outputs/data/pool.jsonl"
    test: str = "outputs/data/test.jsonl"
    history: str = "outputs/history/history.json"
    history_work: str = "outputs/work/history"
    selection: str = "outputs/select/train_set.jsonl"
    benchmarks_dir: str = "outputs/data/benchmarks"
    data_manifest: str = "outputs/data/manifest.json"
    ranking: str = "outputs/select/ranking.csv"
    train_dir: str = "outputs/train"
    eval_dir: str = "outputs/eval"
    report_dir: str = "outputs/report"


@dataclass
class TrackingConfig:
    """MLflow store and experiment; ``MLFLOW_TRACKING_URI`` in the environment takes precedence."""

    tracking_uri: str = "sqlite:///mlflow.db"
    experiment: str = "one-shot-rlvr"
    register_best: bool = True  # register each run's best checkpoint in the MLflow model registry
    registered_model: str | None = None  # its registered model's name; null: the experiment's name


@dataclass
class ModelConfig:
    """The base model: ``embedded`` (SmolLM2-135M-Instruct GGUF), a Hub id, or a local directory; and its prompt.

    ``template`` names the evaluation prompt template (``rlvr.templates``): ``chat`` (the model's own chat
    template with ``system_prompt`` and ``instruction``), ``qwen25-math-cot``, ``r1-distill`` or ``paper-train``;
    ``train_template`` the rollouts' (history and train stages; null: the same as ``template``).
    """

    source: str = "embedded"
    template: str = "chat"
    train_template: str | None = None
    system_prompt: str = ""
    instruction: str = "Put your final answer within \\boxed{}."

    @property
    def rollout_template(self) -> str:
        """The template of the training rollouts."""
        return self.train_template or self.template

    def __post_init__(self) -> None:
        from rlvr.templates import TEMPLATES

        for key in ("template", "train_template"):
            name = getattr(self, key)
            if name is not None and name not in TEMPLATES:
                raise ConfigError(f"model.{key} must be one of {', '.join(TEMPLATES)}, got {name!r}")


@dataclass
class DataConfig:
    """Candidate pool, held-out test set and benchmarks, each a dataset of the registry (``rlvr.registry``).

    ``pool`` / ``test``: a registry name, ``generator`` (embedded arithmetic problems) or ``file`` (a file in
    any supported format, given as ``pool_file`` / ``test_file``). A ``*_file`` given with a registry name is
    read with that entry's field rules. ``local_dir`` holds local copies laid out like the registry's paths
    (``benchmarks/math500.jsonl``, ``pools/dsr_sub.parquet``); without one, datasets come from the Hub.
    ``pool_size`` / ``test_size``: the generator's sizes (null: 16 / 128); for other datasets the first rows
    kept (null: all).
    """

    pool: str = "generator"
    test: str = "generator"
    benchmarks: list[str] = field(default_factory=list)
    pool_file: str | None = None
    test_file: str | None = None
    local_dir: str | None = None
    pool_size: int | None = None
    test_size: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        from rlvr.registry import BENCHMARKS, REGISTRY

        for key in ("pool", "test"):
            name = getattr(self, key)
            if name not in REGISTRY and name not in ("generator", "file"):
                known = ", ".join(["generator", "file", *REGISTRY])
                raise ConfigError(f"data.{key}: unknown dataset {name!r}; known: {known}")
            if name == "file" and not getattr(self, f"{key}_file"):
                raise ConfigError(f"data.{key}_file is required when data.{key} is 'file'")
            if name == "generator" and getattr(self, f"{key}_size") is None:
                setattr(self, f"{key}_size", GENERATOR_SIZES[key])
        unknown = [name for name in self.benchmarks if name not in BENCHMARKS]
        if unknown:
            raise ConfigError(f"data.benchmarks: unknown benchmark(s) {unknown}; known: {', '.join(BENCHMARKS)}")


@dataclass
class RLConfig:
    """One RL run (TRL names). ``trl`` passes any further field of the trainer's config through unchanged.

    ``use_vllm`` generates rollouts with vLLM (GPU; ``vllm_mode`` ``colocate`` shares the training GPUs).
    ``num_processes`` > 1 runs the stage under ``accelerate launch`` (one process per GPU), with
    ``accelerate_config`` (e.g. ``configs/accelerate/zero2.yaml``) if given.
    """

    reward: str = "accuracy"
    learning_rate: float = 1e-6
    weight_decay: float = 0.01
    beta: float = 0.0
    entropy_coef: float = 0.0
    loss_type: str = "dapo"
    temperature: float = 1.0
    num_generations: int = 8
    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    max_completion_length: int = 96
    max_steps: int = -1
    num_train_epochs: float = 1.0
    save_steps: int = 0
    lr_scheduler_type: str = "constant"
    seed: int = 0
    use_vllm: bool = False
    vllm_mode: str = "colocate"
    num_processes: int = 1
    accelerate_config: str | None = None
    trl: dict[str, Any] = field(default_factory=dict)

    @property
    def completions_per_step(self) -> int:
        """Completions per optimizer step over all ``num_processes`` (prompts x rollouts for GRPO)."""
        return self.per_device_train_batch_size * self.gradient_accumulation_steps * self.num_processes

    def trainer_config_class(self) -> type:
        from trl import GRPOConfig

        return GRPOConfig

    def __post_init__(self) -> None:
        config_class = self.trainer_config_class()
        known = {f.name for f in dataclasses.fields(config_class)}
        for key in self.trl:
            if key not in known:
                raise ConfigError(f"unknown {config_class.__name__} field in trl: {key!r}")
        if self.num_processes < 1:
            raise ConfigError(f"num_processes must be >= 1, got {self.num_processes}")
        if self.accelerate_config and not Path(self.accelerate_config).is_file():
            raise ConfigError(f"accelerate_config: no such file {self.accelerate_config!r}")
        if self.per_device_train_batch_size % self.num_generations:
            raise ConfigError(
                f"per_device_train_batch_size ({self.per_device_train_batch_size}) must be a multiple "
                f"of num_generations ({self.num_generations})"
            )


@dataclass
class HistoryConfig(RLConfig):
    """Per-example accuracy per epoch, from ``source``: ``grpo`` over the whole pool for ``num_train_epochs``
    epochs (the paper's), an existing history ``file``, or the base model's ``pass_rate`` over
    ``num_generations`` samples. With ``save_steps`` a ``grpo`` run checkpoints and resumes."""

    source: str = "grpo"
    file: str | None = None
    num_train_epochs: float = 2.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.source not in HISTORY_SOURCES:
            raise ConfigError(f"history.source must be one of {', '.join(HISTORY_SOURCES)}, got {self.source!r}")
        if self.source == "file" and not self.file:
            raise ConfigError("history.file is required when history.source is 'file'")


@dataclass
class SelectConfig:
    """Ranking method (``rlvr.select.METHODS``), the ranks to keep (``1``, ``1,13``, ``1-16``), the rows the
    selection is repeated to (the batch size), and the seed of the ``random`` method."""

    method: str = "std"
    ranks: str = "1"
    repeat: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        from rlvr.select import METHODS, parse_ranks

        if self.method not in METHODS:
            raise ConfigError(f"select.method must be one of {', '.join(METHODS)}, got {self.method!r}")
        parse_ranks(self.ranks)
        if self.repeat < 1:
            raise ConfigError(f"select.repeat must be >= 1, got {self.repeat}")


@dataclass
class TrainConfig(RLConfig):
    """RL on the selected example(s); checkpoints every ``save_steps``, a sample of the training completions
    every ``sample_steps`` (0: none).

    ``algorithm``: ``grpo`` (the paper's) or ``ppo`` (TRL's PPO with a value model; ``trl`` then takes
    ``PPOConfig`` fields). Loss ablations: ``policy_loss`` (the policy-gradient term; off = entropy/KL only),
    ``beta`` (KL), ``entropy_coef``, ``weight_decay``. ``label`` trains on a given label instead of the gold
    answer: one string for every row, or ``{id: label}``.
    """

    algorithm: str = "grpo"
    policy_loss: bool = True
    label: str | dict[str, str] | None = None
    max_steps: int = 20
    save_steps: int = 5
    sample_steps: int = 0

    def trainer_config_class(self) -> type:
        if self.algorithm == "ppo":
            from trl.experimental.ppo import PPOConfig

            return PPOConfig
        return super().trainer_config_class()

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ConfigError(f"train.algorithm must be one of {', '.join(ALGORITHMS)}, got {self.algorithm!r}")
        super().__post_init__()
        if self.max_steps < 1 or self.save_steps < 1:
            raise ConfigError("train.max_steps and train.save_steps must be >= 1")
        if self.sample_steps < 0:
            raise ConfigError(f"train.sample_steps must be >= 0, got {self.sample_steps}")
        if self.label is not None and not isinstance(self.label, (str, dict)):
            raise ConfigError("train.label must be a string or a mapping {id: label}")
        if self.algorithm == "ppo":
            unsupported = {
                "num_generations": (self.num_generations != 1, "must be 1 (the value model is the baseline)"),
                "entropy_coef": (self.entropy_coef != 0, "must be 0 (TRL's PPO loss has no entropy term)"),
                "policy_loss": (not self.policy_loss, "cannot be switched off"),
                "use_vllm": (self.use_vllm, "is not available (TRL's PPO generates with transformers)"),
            }
            for name, (bad, reason) in unsupported.items():
                if bad:
                    raise ConfigError(f"train.{name} {reason} with algorithm 'ppo'")


@dataclass
class EvaluateConfig:
    """Every model (base as step 0, each checkpoint) on the held-out test set and ``data.benchmarks``.

    Each benchmark has a protocol (samples per problem, temperature, top_p): the paper's by default (greedy;
    8 samples at 0.6 for AIME24, AIME25, AMC23), overridden per benchmark name in ``protocols``. ``backend``:
    ``transformers`` (CPU or GPU, batched) or ``vllm`` (GPU; ``tensor_parallel_size``). ``limit``: the first
    problems of each benchmark only. ``batch_size`` counts generated sequences (transformers backend). ``stop``:
    generation ends at these strings (the official evaluation's) and at the model's end-of-turn/-text tokens.
    """

    backend: str = "transformers"
    max_new_tokens: int = 128
    stop: list[str] = field(default_factory=lambda: ["</s>", "<|im_end|>", "<|endoftext|>"])
    batch_size: int = 32
    limit: int | None = None
    seed: int = 0
    protocols: dict[str, dict[str, Any]] = field(default_factory=dict)
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.85

    def __post_init__(self) -> None:
        from rlvr.backends import BACKENDS
        from rlvr.metrics import Protocol

        if self.backend not in BACKENDS:
            raise ConfigError(f"evaluate.backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        known = {f.name for f in dataclasses.fields(Protocol)}
        for name, values in self.protocols.items():
            unknown = set(values or {}) - known
            if unknown:
                raise ConfigError(
                    f"evaluate.protocols.{name}: unknown key(s) {sorted(unknown)}; known: {sorted(known)}"
                )


@dataclass
class ReportConfig:
    """Report options. ``headline_mode``: the grading the tables and figures use, and the one the best checkpoint
    is chosen by everywhere (evaluate stage, model registry, report, ``dvc exp show``). ``step``: the step of the
    second table (null: each run's last evaluated step). ``compare_experiments``: MLflow experiments whose
    pipeline runs join this run in the report, optionally narrowed by ``compare_filter`` (an MLflow filter
    on the pipeline (parent) runs, e.g. ``tags.family = 'qwen'``)."""

    headline_mode: str = "strict"
    step: int | None = None
    compare_experiments: list[str] = field(default_factory=list)
    compare_filter: str = ""

    def __post_init__(self) -> None:
        from rlvr.grading import GRADING_MODES

        if self.headline_mode not in GRADING_MODES:
            modes = ", ".join(GRADING_MODES)
            raise ConfigError(f"report.headline_mode must be one of {modes}, got {self.headline_mode!r}")


@dataclass
class Params:
    """The whole params file."""

    paths: Paths = field(default_factory=Paths)
    mlflow: TrackingConfig = field(default_factory=TrackingConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    history: HistoryConfig = field(default_factory=HistoryConfig)
    select: SelectConfig = field(default_factory=SelectConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    report: ReportConfig = field(default_factory=ReportConfig)


def _build(cls: type, values: Any, where: str) -> Any:
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"unknown params key: {where}.{key}" if where else f"unknown params key: {key}")
        sub = fields[key].type
        sub_cls = globals().get(sub) if isinstance(sub, str) else sub
        if dataclasses.is_dataclass(sub_cls):
            value = _build(sub_cls, value, f"{where}.{key}" if where else key)
        elif sub == "float" and isinstance(value, (int, str)) and not isinstance(value, bool):
            try:
                value = float(value)  # YAML 1.1 reads 2e-5 as a string
            except ValueError as error:
                raise ConfigError(f"{where}.{key} must be a number, got {value!r}") from error
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{where or 'params'}: {error}") from error


def parse_params(values: dict[str, Any]) -> Params:
    """Build :class:`Params` from a mapping, rejecting unknown keys with their dotted name."""
    return _build(Params, values, "")


def merge(base: dict, override: dict, replace: tuple[str, ...] = ()) -> dict:
    """``base`` with ``override`` merged in, mappings recursively except those under a key in ``replace``,
    which ``override`` replaces whole (neither argument is changed)."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key not in replace:
            merged[key] = merge(merged[key], value, replace)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_params(path: str | Path, overrides: dict[str, Any] | None = None) -> Params:
    """Read and validate a params YAML file, with ``overrides`` (nested sections) merged in first."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"params file not found: {path}")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error})") from error
    try:
        return parse_params(merge(values, overrides or {}))
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from error


def to_dict(params: Any) -> dict[str, Any]:
    """Plain-dict view of a config dataclass, for logging exactly what ran."""
    return dataclasses.asdict(params)
