"""Typed parameters: one pydantic model per ``params.yaml`` section.

Unknown keys, wrong types and out-of-range values are refused with one line naming the dotted key. Every field
carries its help text (its ``description``), the one place a parameter is documented: ``python -m rlvr.config``
prints them as the params reference, which the documentation site generates from them at build time. This
module imports no other module of the library: the names it accepts (templates, datasets, methods, backends,
grading modes) are listed here, and tests check that each registry holds exactly these names.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator, model_validator

from rlvr.errors import ConfigError, InputError

__all__ = ["ConfigError", "InputError", "Params", "load_params", "parse_params"]

TemplateName = Literal["chat", "qwen25-math-cot", "r1-distill", "paper-train", "plain"]
GradingMode = Literal["strict", "lenient", "official"]
SelectionMethod = Literal["std", "random", "lim", "pass_rate"]
BenchmarkName = Literal[
    "math500", "aime24", "aime25", "amc23", "minerva_math", "olympiadbench", "gsm8k", "arc_easy", "arc_challenge",
    "arith1", "units", "word1", "arith2", "word2",
]  # fmt: skip
PoolName = Literal["dsr_sub"]
BackendName = Literal["transformers", "vllm"]
ObjectPath = Annotated[str, Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")]  # module:attribute, a user's own
GENERATOR_SIZES = {"pool": 16, "test": 128}  # the generator's sizes where data.pool_size / test_size are null
ACCURACY_REWARDS = ("accuracy", "accuracy_lenient", "accuracy_deepscaler")  # rewards that grade correctness
# Per algorithm, TRL's config class (module, name) and the TRL field each of our settings sets where the names
# differ; our other settings that TRL's config has go to it under their own names (rlvr.training.algorithms). A
# train.trl key naming a field one of our settings sets is refused: the logged config is the config that ran.
TRL_CONFIGS = {
    "grpo": ("trl", "GRPOConfig"),
    "ppo": ("trl.experimental.ppo", "PPOConfig"),
    "entropy_min": ("trl", "GRPOConfig"),
}
TRL_NAMES = {"ppo": {"beta": "kl_coef", "max_completion_length": "response_length", "max_steps": "total_episodes"}}
NOT_TRL_SETTINGS = ("save_steps",)  # TRL's field of that name means another thing (ours: 0 is no checkpoints)
MAX_PROMPT_TOKENS = 1024  # the paper's longest prompt: vLLM engines and the memory plan are sized for it + the answer
# the stop strings of the paper's evaluation harness (its vLLM stop list; rlvr.grading.official reads them here)
OFFICIAL_STOP_STRINGS = ("</s>", "<|im_end|>", "<|endoftext|>")


class Section(BaseModel):
    """A params section: unknown keys refused, values checked on assignment too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, validate_default=True)


class Paths(Section):
    """Where every stage reads and writes (``dvc.yaml`` interpolates the same keys)."""

    model_dir: str = Field("outputs/model", description="the base model as a transformers directory (model stage)")
    pool: str = Field("outputs/data/pool.jsonl", description="the candidate pool (data stage)")
    test: str = Field("outputs/data/test.jsonl", description="the held-out test set (data stage)")
    benchmarks_dir: str = Field("outputs/data/benchmarks", description="one jsonl per benchmark (data stage)")
    data_manifest: str = Field("outputs/data/manifest.json", description="rows, hashes, left-out ids (data stage)")
    history: str = Field("outputs/history/history.json", description="accuracy per example and epoch (history)")
    history_work: str = Field("outputs/work/history", description="the history run's resumable checkpoints")
    selection: str = Field("outputs/select/train_set.jsonl", description="the selected rows, repeated (select)")
    ranking: str = Field("outputs/select/ranking.csv", description="every example's rank and score (select)")
    train_dir: str = Field("outputs/train", description="runs of the train stage: checkpoints, step log, samples")
    eval_dir: str = Field("outputs/eval", description="results per step and benchmark, by_step.json, metrics.json")
    eval_store: str = Field(
        "outputs/eval-store",
        description="evaluation results by result key, reused wherever the same model meets the same problems and "
        "settings again (a matrix's cells share their base model's)",
    )
    report_dir: str = Field("outputs/report", description="report.md, report.html, figures (report stage)")
    code_dir: str = Field("outputs/code", description="the hash of the code each stage runs (DVC's code stage)")


class TrackingConfig(Section):
    """MLflow store and experiment; ``MLFLOW_TRACKING_URI`` in the environment takes precedence."""

    tracking_uri: str = Field("sqlite:///mlflow.db", description="MLflow tracking URI (a local SQLite store)")
    experiment: str = Field("one-shot-rlvr", description="MLflow experiment of the pipeline runs")
    register_best: bool = Field(True, description="register each run's best checkpoint in the model registry")
    registered_model: str | None = Field(None, description="its registered model's name (null: the experiment's)")


class ModelConfig(Section):
    """The base model and its prompts."""

    source: str = Field(
        "embedded",
        description="embedded (SmolLM2-135M-Instruct), embedded:gemma3-270m, a Hugging Face Hub id or a local dir",
    )
    template: TemplateName = Field("chat", description="evaluation prompt template (rlvr.templates)")
    train_template: TemplateName | None = Field(
        None, description="rollout prompt template of the history and train stages (null: template)"
    )
    system_prompt: str = Field("", description="system message of the chat template (empty: the model's default)")
    instruction: str = Field(
        "Put your final answer within \\boxed{}.", description="appended to each problem by the chat template"
    )

    @property
    def rollout_template(self) -> str:
        """The template of the training rollouts."""
        return self.train_template or self.template


AnswerRule = Literal["after_hashes", "drop_unit", "strip_dollars", "integer_float"]


class OwnFile(Section):
    """A dataset file of the user's own (jsonl or parquet), described rather than guessed: the field(s) that make the
    problem, the field holding the answer and the registry's rules that clean it, or a registry dataset's format."""

    file: str = Field(description="the file")
    problem: str | list[str] | None = Field(
        None, description="the field(s) making the problem, several joined with a space (null: problem, else question)"
    )
    answer: str | None = Field(None, description="the field holding the gold answer (null: answer)")
    clean: list[AnswerRule] = Field(
        default_factory=list,
        description="rules cleaning the answer, in order: after_hashes (the text after ####), drop_unit (a trailing "
        "unit in parentheses), strip_dollars, integer_float (43.0 as 43)",
    )
    format: BenchmarkName | PoolName | None = Field(
        None, description="read the rows as this registry dataset's (its fields and rules), e.g. gsm8k"
    )

    @model_validator(mode="after")
    def _check(self) -> OwnFile:
        if self.format is not None and (self.problem or self.answer or self.clean):
            raise ValueError(
                "format borrows a registry dataset's fields and rules: give it alone, or problem/answer/clean"
            )
        return self

    @property
    def problem_fields(self) -> list[str] | None:
        """The problem's fields as given (None: the default, ``problem`` else ``question``)."""
        return [self.problem] if isinstance(self.problem, str) else self.problem


class BenchmarkFile(OwnFile):
    """A benchmark of the user's own: a named, described file (see :class:`OwnFile`)."""

    name: str = Field(description="its name in results (not a registry name)", pattern=r"^[A-Za-z0-9][\w.-]*$")


class DataConfig(Section):
    """Candidate pool, held-out test set and benchmarks (``rlvr.datasets``)."""

    pool: PoolName | Literal["generator", "file"] = Field(
        "generator", description="the candidate pool: a registry pool, generator (word problems) or file (pool_file)"
    )
    test: BenchmarkName | Literal["generator", "file"] = Field(
        "generator", description="the held-out test set: a registry benchmark, generator or file (test_file)"
    )
    benchmarks: list[BenchmarkName | BenchmarkFile] = Field(
        default_factory=list,
        description="benchmarks: registry names, or {name, file} entries of your own (and problem, answer, clean, "
        "format describing the file)",
    )
    pool_file: str | OwnFile | None = Field(
        None, description="the pool's file, or {file, problem, answer, clean, format} describing it"
    )
    test_file: str | OwnFile | None = Field(None, description="the test set's file (or its description)")
    local_dir: str | None = Field(
        None, description="local copies as benchmarks/<name>.jsonl, pools/dsr_sub.parquet (null: the Hub)"
    )
    pool_size: int | None = Field(None, ge=1, description="generator: pool size (null: 16); else the first rows kept")
    test_size: int | None = Field(None, ge=1, description="generator: test size (null: 128); else the first rows kept")
    seed: int = Field(0, description="the generator's seed (pool and test)")
    suite_size: int = Field(128, ge=1, description="problems per generated suite (arith1, units, ...)")
    suite_seed: int = Field(1, description="seed of the generated suites")
    suite_split: Literal["test", "validation"] = Field(
        "test", description="which problems of the suites: test, or validation (for tuning; never test problems)"
    )

    @model_validator(mode="after")
    def _check(self) -> DataConfig:
        for key in ("pool", "test"):
            name = getattr(self, key)
            if name == "file" and not getattr(self, f"{key}_file"):
                raise ValueError(f"data.{key}_file is required when data.{key} is 'file'")
            if name == "generator" and getattr(self, f"{key}_size") is None:
                object.__setattr__(self, f"{key}_size", GENERATOR_SIZES[key])
        names = [self.benchmark_name(b) for b in self.benchmarks]
        if len(set(names)) != len(names):
            raise ValueError(f"data.benchmarks: a name appears twice in {names}")
        if "test" in names:
            raise ValueError("data.benchmarks: 'test' names the held-out test set in results; choose another name")
        return self

    @property
    def test_name(self) -> str:
        """The held-out test set's name in results: its benchmark's name where it is a registry benchmark (so a
        test set that is also listed in ``benchmarks`` is that benchmark, once), else ``test``."""
        return "test" if self.test in ("generator", "file") else self.test

    @property
    def suite_names(self) -> list[str]:
        """The names of the evaluated sets, each once: the held-out test set, then every other benchmark."""
        return [self.test_name] + [name for name in self.benchmark_names if name != self.test_name]

    @staticmethod
    def benchmark_name(entry: str | BenchmarkFile) -> str:
        return entry if isinstance(entry, str) else entry.name

    @property
    def benchmark_names(self) -> list[str]:
        return [self.benchmark_name(entry) for entry in self.benchmarks]


class PeftConfig(Section):
    """LoRA adapters instead of full fine-tuning (PEFT's ``LoraConfig``, passed as TRL's ``peft_config``)."""

    r: int = Field(16, ge=1, description="LoRA rank")
    lora_alpha: int = Field(32, ge=1, description="LoRA alpha (scaling = alpha / r)")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="dropout on the LoRA inputs")
    target_modules: list[str] | str = Field("all-linear", description="modules to adapt (PEFT's names)")


class RLConfig(Section):
    """One RL run (TRL names). ``trl`` passes further fields of the trainer's config through unchanged."""

    reward: str | list[str] = Field(
        "accuracy",
        description="reward name(s): accuracy, accuracy_lenient, accuracy_deepscaler, format, random, module:fn",
    )
    reward_weights: list[float] | None = Field(None, description="one weight per reward (TRL's; null: all 1)")
    learning_rate: float = Field(1e-6, gt=0, description="learning rate")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay")
    beta: float = Field(0.0, ge=0, description="KL coefficient (TRL's k3 estimator)")
    entropy_coef: float = Field(0.0, ge=0, description="entropy bonus coefficient (loss - coef x entropy)")
    loss_type: str = Field("dapo", description="TRL's loss aggregation (dapo: token-level mean over the batch)")
    temperature: float = Field(1.0, gt=0, description="rollout sampling temperature")
    num_generations: int = Field(8, ge=1, description="rollouts per prompt")
    prompts_per_step: int | None = Field(
        None,
        ge=1,
        description="prompts per optimizer step over all processes (the paper's 128); set, it derives "
        "gradient_accumulation_steps from the micro-batch and num_processes, so the batch is the same on any GPU count",
    )
    per_device_train_batch_size: int = Field(8, ge=1, description="completions per device and micro-batch")
    gradient_accumulation_steps: int = Field(
        1, ge=1, description="micro-batches per optimizer step (derived where prompts_per_step is set)"
    )
    max_completion_length: int = Field(96, ge=1, description="tokens per rollout")
    max_steps: int = Field(-1, description="optimizer steps (-1: num_train_epochs)")
    num_train_epochs: float = Field(1.0, gt=0, description="epochs over the rows where max_steps is -1")
    save_steps: int = Field(0, ge=0, description="checkpoint every N steps (0: none)")
    lr_scheduler_type: str = Field("constant", description="learning-rate schedule")
    seed: int = Field(0, description="seed of the trainer")
    use_vllm: bool = Field(False, description="vLLM rollouts (GPU)")
    vllm_mode: str = Field("colocate", description="vLLM beside training (colocate) or a server")
    num_processes: int = Field(1, ge=1, description="processes (GPUs): > 1 runs the stage under accelerate launch")
    accelerate_config: str | None = Field(
        None, description="accelerate config file, e.g. configs/accelerate/zero2.yaml"
    )
    trl: dict[str, Any] = Field(default_factory=dict, description="further fields of TRL's trainer config")

    @property
    def completions_per_step(self) -> int:
        """Completions per optimizer step over all ``num_processes`` (prompts x rollouts for GRPO)."""
        return self.per_device_train_batch_size * self.gradient_accumulation_steps * self.num_processes

    @property
    def rewards(self) -> list[str]:
        return [self.reward] if isinstance(self.reward, str) else list(self.reward)

    @property
    def algorithm_name(self) -> str:
        return "grpo"

    def trainer_config_class(self) -> type:
        """TRL's config class of the algorithm (TRL imported here: it loads slowly)."""
        import importlib

        module, name = TRL_CONFIGS[self.algorithm_name]
        return getattr(importlib.import_module(module), name)

    def trl_name(self, setting: str) -> str:
        """The TRL config field ``setting`` sets."""
        return TRL_NAMES.get(self.algorithm_name, {}).get(setting, setting)

    def _section(self) -> str:
        return "history" if isinstance(self, HistoryConfig) else "train"

    def _derive_accumulation(self, section: str) -> None:
        """Where ``prompts_per_step`` is set: the micro-batches per optimizer step that give it on ``num_processes``
        (one optimizer update per generation batch, as TRL's default ``steps_per_generation``)."""
        if self.prompts_per_step is None:
            return
        completions = self.prompts_per_step * self.num_generations
        share = self.per_device_train_batch_size * self.num_processes
        if completions % share:
            fitting = [
                m
                for m in range(1, completions // self.num_processes + 1)
                if completions % (m * self.num_processes) == 0
            ]
            raise ValueError(
                f"{section}.prompts_per_step ({self.prompts_per_step}) x num_generations ({self.num_generations}) = "
                f"{completions} completions do not split into micro-batches of per_device_train_batch_size "
                f"({self.per_device_train_batch_size}) on num_processes ({self.num_processes}): choose one of "
                f"{fitting[-6:]}"
            )
        derived = completions // share
        if "gradient_accumulation_steps" in self.model_fields_set and self.gradient_accumulation_steps != derived:
            raise ValueError(
                f"{section}.gradient_accumulation_steps ({self.gradient_accumulation_steps}) contradicts "
                f"prompts_per_step ({self.prompts_per_step}), which derives {derived} on {self.num_processes} "
                "process(es): leave it out"
            )
        object.__setattr__(self, "gradient_accumulation_steps", derived)

    @model_validator(mode="after")
    def _check(self) -> RLConfig:
        section = self._section()
        self._derive_accumulation(section)
        if self.completions_per_step % self.num_generations:  # TRL's rule: whole prompt groups per generation batch
            raise ValueError(
                f"{section}: the completions per optimizer step (per_device_train_batch_size "
                f"{self.per_device_train_batch_size} x gradient_accumulation_steps {self.gradient_accumulation_steps} "
                f"x num_processes {self.num_processes} = {self.completions_per_step}) must be a multiple of "
                f"num_generations ({self.num_generations})"
            )
        if self.accelerate_config and not Path(self.accelerate_config).is_file():
            raise ValueError(f"{section}.accelerate_config: no such file {self.accelerate_config!r}")
        if not self.rewards:
            raise ValueError(f"{section}.reward: name at least one reward")
        if self.reward_weights is not None and len(self.reward_weights) != len(self.rewards):
            raise ValueError(
                f"{section}.reward_weights: {len(self.reward_weights)} weights for {len(self.rewards)} rewards"
            )
        first_class = {self.trl_name(name): name for name in type(self).model_fields if name not in ("trl", "reward")}
        for key in self.trl:
            if key in first_class:
                raise ValueError(
                    f"{section}.trl.{key} duplicates {section}.{first_class[key]}: set it there, once "
                    "(the logged config must be the one that ran)"
                )
        if self.trl:
            import dataclasses

            config_class = self.trainer_config_class()
            known = {f.name for f in dataclasses.fields(config_class)}
            unknown = [key for key in self.trl if key not in known]
            if unknown:
                raise ValueError(f"{section}.trl.{unknown[0]}: not a field of TRL's {config_class.__name__}")
        return self


class HistoryConfig(RLConfig):
    """Per-example accuracy per epoch, from ``source``: ``grpo`` over the whole pool (the paper's), an existing
    history ``file``, or the base model's ``pass_rate`` over ``num_generations`` samples."""

    source: Literal["grpo", "file", "pass_rate"] = Field("grpo", description="grpo, file or pass_rate")
    file: str | None = Field(None, description="the history file (source: file), e.g. the official acc_step_500.json")
    num_train_epochs: float = Field(2.0, gt=0, description="epochs of GRPO over the pool")

    @model_validator(mode="after")
    def _check_source(self) -> HistoryConfig:
        if self.source == "file" and not self.file:
            raise ValueError("history.file is required when history.source is 'file'")
        return self


class SelectConfig(Section):
    """Which pool examples to train on."""

    method: SelectionMethod = Field("std", description="ranking: std (the paper's), random, lim, pass_rate")
    ranks: str = Field("1", description="ranks to keep: 1, 1,13, 1-16, or last (the lowest-ranked example)")
    repeat: int = Field(16, ge=1, description="rows written: the selection repeated (the batch size)")
    seed: int = Field(0, description="seed of the random method")

    @field_validator("ranks", mode="before")
    @classmethod
    def _ranks(cls, value: Any) -> str:
        text = str(value)
        parse_ranks(text)
        return text


class TrainConfig(RLConfig):
    """RL on the selected example(s), checkpoints every ``save_steps``."""

    algorithm: Literal["grpo", "ppo", "entropy_min"] = Field(
        "grpo",
        description="grpo (the paper's), ppo (with a value model) or entropy_min (no reward: minimise the token "
        "entropy of the policy's own samples; the reward is only logged)",
    )
    policy_loss: bool = Field(True, description="the policy-gradient term (false: entropy/KL only, an ablation)")
    label: str | dict[str | int, str] | None = Field(
        None, description="train on this label instead of the gold answer: one for all rows, or {id: label}"
    )
    accuracy_reward: str | None = Field(
        None,
        description="grades the training example's accuracy, logged on its own whatever the reward (null: the "
        "first accuracy reward of train.reward, else accuracy)",
    )
    max_steps: int = Field(20, ge=1, description="optimizer steps")
    save_steps: int = Field(5, ge=1, description="checkpoint every N steps")
    sample_steps: int = Field(0, ge=0, description="save training completions every N steps (0: never)")
    keep_resume_state: bool = Field(
        False, description="keep the last checkpoint's optimizer state once the training has finished"
    )
    peft: PeftConfig | None = Field(None, description="LoRA adapters (null: full fine-tuning)")

    @property
    def algorithm_name(self) -> str:
        return self.algorithm

    @property
    def accuracy_measure(self) -> str:
        """The reward name that grades the training example's accuracy (see ``accuracy_reward``)."""
        return self.accuracy_reward or next((r for r in self.rewards if r in ACCURACY_REWARDS), "accuracy")

    @model_validator(mode="after")
    def _check_algorithm(self) -> TrainConfig:
        for name, (unsupported, reason) in ALGORITHM_LIMITS.get(self.algorithm, {}).items():
            if unsupported(self):
                raise ValueError(f"train.{name} {reason} with algorithm '{self.algorithm}'")
        return self


# What each algorithm cannot do: per setting, a check of the train section and why it is refused.
ALGORITHM_LIMITS: dict[str, dict[str, tuple[Any, str]]] = {
    "ppo": {
        "num_generations": (lambda c: c.num_generations != 1, "must be 1 (the value model is the baseline)"),
        "entropy_coef": (lambda c: c.entropy_coef != 0, "must be 0 (TRL's PPO loss has no entropy term)"),
        "policy_loss": (lambda c: not c.policy_loss, "cannot be switched off"),
        "use_vllm": (lambda c: c.use_vllm, "is not available (TRL's PPO generates with transformers)"),
        "peft": (lambda c: c.peft is not None, "is not available (LoRA is for GRPO here)"),
        "reward": (lambda c: len(c.rewards) > 1, "must be one reward (TRL's PPO reads one reward model)"),
    },
    "entropy_min": {
        "beta": (lambda c: c.beta != 0, "must be 0 (the loss is the token entropy alone)"),
        "entropy_coef": (lambda c: c.entropy_coef != 0, "must be 0 (the loss is the token entropy alone)"),
        "policy_loss": (lambda c: not c.policy_loss, "has no meaning (there is no policy-gradient term)"),
    },
}


class ProtocolOverride(Section):
    """A benchmark's sampling protocol, overriding the paper's for that name."""

    num_samples: int | None = Field(None, ge=1, description="samples per problem")
    temperature: float | None = Field(None, ge=0, description="0: greedy")
    top_p: float | None = Field(None, gt=0, le=1, description="nucleus sampling")


class EvaluateConfig(Section):
    """Every model (base as step 0, each checkpoint) on the held-out test set and ``data.benchmarks``."""

    backend: BackendName | ObjectPath = Field(
        "transformers", description="transformers (CPU/GPU), vllm, or module:Class of your own (same interface)"
    )
    max_new_tokens: int = Field(128, ge=1, description="tokens per answer")
    batch_size: int = Field(32, ge=1, description="sequences generated together (transformers backend)")
    max_num_seqs: int | None = Field(
        None,
        ge=1,
        description="sequences vLLM generates at once (null: vLLM's own default on a GPU; batch_size on a CPU, whose "
        "KV cache is sized for them)",
    )
    workers: int | None = Field(
        None,
        ge=1,
        description="processes generating at once on a CPU (transformers backend), one thread each, so samples do "
        "not depend on the core count (null: one per core)",
    )
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto",
        description="compute precision: auto is bfloat16 on a GPU or a CPU with native bfloat16 (as vLLM evaluates "
        "the paper's models), else float32",
    )
    limit: int | None = Field(None, ge=1, description="only the first N problems of each benchmark")
    seed: int = Field(0, description="sampling seed")
    protocols: dict[str, ProtocolOverride] = Field(
        default_factory=dict, description="per benchmark name, e.g. {aime24: {num_samples: 8, temperature: 0.6}}"
    )
    stop: list[str] = Field(
        default_factory=lambda: list(OFFICIAL_STOP_STRINGS),
        description="generation ends at these strings (the official evaluation's) and the model's end tokens",
    )
    loop_stop: bool = Field(
        False,
        description="end a completion whose text ends in one block repeated 4 times over 60+ characters, numbers "
        "masked (a greedy loop that would run to the budget); looked at every 16 tokens",
    )
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs per model (vllm)")
    gpu_memory_utilization: float = Field(0.85, gt=0, le=1, description="vLLM's GPU memory share")
    enforce_eager: bool = Field(
        False,
        description="vLLM without compiled graphs: on CPU an engine starts in ~30 s instead of ~90 s (embedded "
        "model), generation ~10% slower; for many short jobs (one engine per checkpoint)",
    )


class ReportConfig(Section):
    """Report options."""

    headline_mode: GradingMode = Field(
        "strict",
        description="grading of the tables and figures, and of the best checkpoint everywhere (evaluate, registry)",
    )
    step: int | None = Field(None, ge=0, description="step of the second table (null: each run's last)")
    compare_experiments: list[str] = Field(
        default_factory=list, description="MLflow experiments whose pipeline runs join the report"
    )
    compare_filter: str = Field("", description="MLflow filter on those runs, e.g. tags.family = 'qwen'")
    reference_model: str | None = Field(
        None,
        description="whose numbers in the paper the run is set against (null: model.source; a rehearsal of a "
        "preset on a stand-in model keeps the preset's)",
    )


class Params(Section):
    """The whole params file."""

    paths: Paths = Field(default_factory=Paths, description="where stages read and write")
    mlflow: TrackingConfig = Field(default_factory=TrackingConfig, description="MLflow tracking")
    model: ModelConfig = Field(default_factory=ModelConfig, description="the base model and its prompts")
    data: DataConfig = Field(default_factory=DataConfig, description="pool, test set, benchmarks")
    history: HistoryConfig = Field(default_factory=HistoryConfig, description="the history stage")
    select: SelectConfig = Field(default_factory=SelectConfig, description="the select stage")
    train: TrainConfig = Field(default_factory=TrainConfig, description="the train stage")
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig, description="the evaluate stage")
    report: ReportConfig = Field(default_factory=ReportConfig, description="the report stage")


def parse_ranks(ranks: str, last: int | None = None) -> list[int]:
    """``"1"``, ``"1,13"`` or ``"1-16"`` (and mixes such as ``"1-3,13"``) as 1-based ranks, in order; ``last`` is
    the last rank (the ranking's length, where known: without it, ``last`` reads as rank 1 for a syntax check)."""
    result: list[int] = []
    for part in str(ranks).split(","):
        part = part.strip()
        try:
            if part == "last":
                result.append(1 if last is None else last)
            elif "-" in part:
                low, high = (int(x) for x in part.split("-", 1))
                result.extend(range(low, high + 1))
            else:
                result.append(int(part))
        except ValueError as error:
            raise ValueError(f"ranks: cannot read {part!r} (use forms like 1, 1,13, 1-16 or last)") from error
    if not result or min(result) < 1:
        raise ValueError(f"ranks must be positive, got {ranks!r}")
    return result


def partial_model(model: type[BaseModel], name: str | None = None) -> type[BaseModel]:
    """``model`` with every field optional and unset by default, sections too: typed overrides (a flow's
    parameter) of which only the keys given are applied."""
    fields: dict[str, Any] = {}
    for key, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            annotation = partial_model(annotation)
        fields[key] = (annotation | None, Field(None, description=info.description))
    config = ConfigDict(extra="forbid")
    return create_model(name or f"{model.__name__}Overrides", __config__=config, **fields)


Overrides = partial_model(Params, "Overrides")


def override_values(overrides: BaseModel | dict | None) -> dict[str, Any]:
    """The nested sections an :data:`Overrides` (or a plain mapping) sets, for :func:`load_params`."""
    if overrides is None:
        return {}
    if isinstance(overrides, dict):
        return overrides
    return overrides.model_dump(mode="json", exclude_unset=True)


def describe(error: ValidationError) -> str:
    """The first problem of a validation error as one line naming the dotted key (a message of our own validators
    first: in a union, the member it came from is the one the value meant)."""
    first = next((e for e in error.errors() if e["type"] == "value_error"), error.errors()[0])
    # a union's member appears in the location as its type ("literal[...]", "BenchmarkFile"): not a key
    parts = [str(p) for p in first["loc"] if not (isinstance(p, str) and (p[:1].isupper() or "[" in p))]
    key = ".".join(parts)
    if first["type"] == "extra_forbidden":
        return f"unknown params key: {key}"
    if first["type"] == "value_error":
        message = str(first.get("ctx", {}).get("error", first["msg"]))
        if parts and message.startswith(f"{parts[-1]}: "):
            message = message[len(parts[-1]) + 2 :]
        return message if not key or message.startswith(parts[0]) else f"{key}: {message}"
    return f"{key}: {first['msg']} (got {first.get('input')!r})"


def parse_params(values: dict[str, Any]) -> Params:
    """Build :class:`Params` from a mapping; a bad key or value raises :class:`ConfigError` naming it."""
    if not isinstance(values, dict):
        raise ConfigError(f"a params file is a mapping of sections, got {type(values).__name__}")
    try:
        return Params.model_validate(values)
    except ValidationError as error:
        raise ConfigError(describe(error)) from None


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


def parse_overrides(assignments: list[str]) -> dict[str, Any]:
    """``["train.learning_rate=3e-5", ...]`` (``--set`` options) as nested sections; values read as YAML and
    then typed by the params model."""
    overrides: dict[str, Any] = {}
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        parts = key.strip().split(".")
        if not sep or len(parts) < 2 or not all(parts):
            raise ConfigError(f"--set {assignment!r}: write section.key=value, e.g. train.max_steps=10")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError as error:
            raise ConfigError(f"--set {key}: cannot read {text!r} ({error})") from error
        node = overrides
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: {part} is set to a value and to a section")
        node[parts[-1]] = value
    return overrides


# an algorithm's TRL options replace those of the file (or cell) they override: they are the trainer's own
REPLACED = ("trl",)


def read_params_file(path: str | Path, where: str = "params file") -> dict[str, Any]:
    """A params file's own values as written (a ``base:`` it names not merged in), not yet checked."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{where} not found: {path}")
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from error


def read_params_values(
    path: str | Path, where: str = "params file", whole: bool = False, _seen: tuple[Path, ...] = ()
) -> dict[str, Any]:
    """A params file's values, not yet checked. A file may name a ``base:`` params file (relative to itself) and state
    only what differs: its values are merged into the base's (mappings key by key, ``trl`` whole); ``whole``: the
    file may not name a base (DVC tracks the keys written in it)."""
    path = Path(path)
    values = read_params_file(path, where)
    if not isinstance(values, dict) or "base" not in values:
        return values
    if whole:
        raise ConfigError(
            f"{path}: base: DVC tracks only the keys written in this file, not its base's; write the params whole "
            "into it instead (python -m rlvr.config PRESET > params.yaml)"
        )
    base = values.pop("base")
    if not isinstance(base, str):
        raise ConfigError(f"{path}: base: the path of a params file, got {base!r}")
    base_path = (path.parent / base).resolve()
    if base_path in _seen or base_path == path.resolve():
        raise ConfigError(f"{path}: base: {base} names a file that is based on this one")
    parent = read_params_values(base_path, f"{path}: base", _seen=(*_seen, path.resolve()))
    return merge(parent, values, REPLACED)


def load_params(path: str | Path, overrides: dict[str, Any] | None = None, whole: bool = False) -> Params:
    """Read and validate a params YAML file (with its ``base:`` files), with ``overrides`` (nested sections)
    merged in first; ``whole``: the file may not name a base (see :func:`read_params_values`)."""
    path = Path(path)
    values = read_params_values(path, whole=whole)
    try:
        return parse_params(merge(values, overrides or {}))
    except ConfigError as error:
        raise ConfigError(f"{'--set' if overrides and _valid(values) else path}: {error}") from error


def _valid(values: dict[str, Any]) -> bool:
    """Whether ``values`` are valid params (an error then lies in the overrides)."""
    try:
        parse_params(values)
    except ConfigError:
        return False
    return True


def to_dict(config: BaseModel) -> dict[str, Any]:
    """Plain-dict view of a config (JSON-ready), for logging exactly what ran."""
    return config.model_dump(mode="json")


def reference_table() -> str:
    """The params reference (every key with its type, default and help) as Markdown, from the models."""
    lines = ["| key | default | what it is |", "|---|---|---|"]
    for section, field in Params.model_fields.items():
        model = field.annotation
        for name, info in model.model_fields.items():
            default = info.get_default(call_default_factory=True)
            if isinstance(default, BaseModel):
                default = default.model_dump(mode="json")
            shown = "null" if default is None else yaml.safe_dump(default, default_flow_style=True).strip()
            shown = shown.removesuffix("\n...").removesuffix("...").strip().replace("|", "\\|")
            lines.append(f"| `{section}.{name}` | `{shown}` | {info.description} |")
    return "\n".join(lines)


if __name__ == "__main__":
    # python -m rlvr.config: the params reference; python -m rlvr.config FILE: FILE with its base files merged in,
    # checked, every key written out (what `dvc repro` needs in params.yaml: DVC tracks the keys written there)
    import sys

    if len(sys.argv) == 1:
        print(reference_table())
    else:
        try:
            params = parse_params(read_params_values(sys.argv[1]))
        except (ConfigError, InputError) as error:
            sys.exit(f"error: {error}")
        print(yaml.safe_dump(to_dict(params), sort_keys=False), end="")
