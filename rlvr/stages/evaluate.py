"""Evaluate the base model (as step 0) and every checkpoint on the held-out test set and the benchmarks.

Per model and benchmark: ``steps/step-N/<benchmark>.json`` (metrics, protocol, MATH500-style breakdowns) and
``samples/step-N/<benchmark>.jsonl`` (one line per sample: id, prompt, completion, extracted answer, gold,
correct, shape flags). A model and benchmark already evaluated with the same weights, problems, prompt, protocol
and settings is skipped, so rerunning the stage evaluates only new checkpoints (or changed settings).
``by_step.json`` holds one row per step (every benchmark's metrics as ``<benchmark>.<metric>``, and their average
over every evaluated benchmark as ``average.<metric>``); ``metrics.json`` the headline numbers of the base model
and the best step (:func:`headline_metrics`).
"""

from __future__ import annotations

import functools
import logging
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from rlvr import tracking
from rlvr.backends import Completion, as_completion, compute_dtype, make_backend
from rlvr.config import EvaluateConfig, ModelConfig, Params, to_dict
from rlvr.errors import InputError
from rlvr.files import (
    EvalDir,
    atomic_write_text,
    content_hash,
    file_sha256,
    read_json,
    read_records,
    read_rows,
    write_json,
    write_rows,
)
from rlvr.grading import CHOICE_DATASETS, bounded
from rlvr.machine import description, kernels
from rlvr.metrics import (
    AVERAGE,
    Protocol,
    average_metrics,
    best_row,
    breakdown,
    ends_in_loop,
    metric_name,
    paired_test,
    problem_scores,
    protocol_for,
    scoped,
    self_reflects,
    summarise,
)
from rlvr.models import load_tokenizer
from rlvr.placement import gpu_groups, run_pinned, terminate_workers, visible_gpus
from rlvr.rewards import GRADING_MODES, grade_answer, last_boxed
from rlvr.templates import Template, get_template
from rlvr.training.checkpoints import MARKER, checkpoints, is_finished

logger = logging.getLogger(__name__)

GRADING_VERSION = 4  # part of every result key: bump when grading changes, so results are recomputed
BREAKDOWN_FIELDS = ("subject", "level")
SAMPLE_COLUMNS = ("id", "sample", "prompt", "completion", "gold") + tuple(
    f"{what}_{mode}" for mode in GRADING_MODES for what in ("extracted", "correct")
)
_NOT_IN_METRIC_NAMES = re.compile(r"[^\w\-.:/]")


@dataclass(frozen=True)
class Benchmark:
    """One evaluation set: ``name`` keys its outputs, ``dataset`` (a registry name) picks protocol and grading."""

    name: str
    dataset: str
    path: Path


def suite(params: Params) -> list[Benchmark]:
    """Every evaluated set, each once: the held-out test set (``data.test``) under its dataset's name where that is
    a registry benchmark (``test`` for a generated set or a file of one's own), then every other benchmark. A test
    set that is also a listed benchmark is that benchmark, once."""
    paths, (test_name, *others) = params.paths, params.data.suite_names
    benchmarks = [Benchmark(test_name, params.data.test, Path(paths.test))]
    return benchmarks + [Benchmark(n, n, Path(paths.benchmarks_dir) / f"{n}.jsonl") for n in others]


def grade_sample(completion: str, gold: str, template: Template, dataset: str) -> dict:
    """Extracted answer and correctness under each grading mode (never raises, never hangs)."""
    text = template.answer_text(completion)
    record = {}
    for mode in GRADING_MODES:
        extracted, correct = grade_answer(text, gold, mode, dataset, choice=dataset in CHOICE_DATASETS)
        record[f"extracted_{mode}"] = extracted
        record[f"correct_{mode}"] = bool(correct)
    return record


def sample_records(
    rows: list[dict],
    prompts: list[str],
    completions: list[list[Completion]],
    dataset: str,
    template: Template,
) -> list[dict]:
    """One record per generated sample, graded, with its shape flags: ``boxed`` (a final ``\\boxed{}`` with
    content: the prompt's empty box echoed does not count), ``finish`` (stop, length or loop), ``cut`` (the token
    budget ended it), ``loop_stopped``, ``length`` (tokens generated), ``repetition``, ``reflection``."""
    records = []
    for index, (row, prompt, samples) in enumerate(zip(rows, prompts, completions, strict=True)):
        for number, sample in enumerate(samples):
            completion = sample.text
            record = {"id": row["id"], "sample": number, "problem_index": index, "prompt": prompt}
            record |= {"completion": completion, "gold": row["answer"]}
            record |= grade_sample(completion, row["answer"], template, dataset)
            record["boxed"] = bool(last_boxed(template.answer_text(completion)))
            record["finish"], record["cut"], record["loop_stopped"] = sample.finish, sample.cut, sample.finish == "loop"
            record["length"] = sample.tokens
            record["repetition"] = ends_in_loop(completion)
            record["reflection"] = self_reflects(completion)
            record |= {field: row[field] for field in BREAKDOWN_FIELDS if field in row}
            records.append(record)
    return records


def benchmark_metrics(samples: list[dict]) -> dict:
    """Summary metrics, plus accuracy by subject and level where the rows have them (MATH500)."""
    metrics = summarise(samples, GRADING_MODES)
    for field in BREAKDOWN_FIELDS:
        if any(field in s for s in samples):
            metrics[f"by_{field}"] = breakdown(samples, field, GRADING_MODES)
    return metrics


@functools.cache
def _weights_hash(model_dir: Path) -> str:
    return content_hash(*(file_sha256(path) for path in sorted(model_dir.glob("*.safetensors"))))


def model_identity(model_dir: Path) -> str:
    """What identifies a model's weights: a checkpoint's marker (its run, step and time of writing), else a hash
    of the weight files. Not their modification times: DVC copies persisted outputs before a stage runs again."""
    marker = model_dir / MARKER
    return marker.read_text() if marker.is_file() else _weights_hash(model_dir.resolve())


# EvaluateConfig settings that are not part of a result's key, each because it cannot change the samples; every
# other setting is (a new one too, so that a result is never served from a key that does not know it)
NOT_IN_RESULT_KEY = {
    "workers": "single-threaded processes on a CPU: the same samples with 1 or 2 (test)",
    "limit": "the problems it keeps are in the key",
    "protocols": "each benchmark's own protocol is in the key",
}


def result_key(
    model_dir: Path, rows: list[dict], prompts: list[str], protocol: Protocol, config: EvaluateConfig
) -> str:
    """Identifies one evaluation result: the model's weight files, the problems, the prompts as the model sees
    them (so any change of template, its code or the tokenizer counts), the protocol, every evaluation setting
    but ``NOT_IN_RESULT_KEY`` (``dtype`` as it resolves on this machine), the grading's version and a CPU's
    kernels; a stored result with the same key is reused instead of generated again."""
    settings = {k: v for k, v in to_dict(config).items() if k not in NOT_IN_RESULT_KEY}
    settings |= {"dtype": compute_dtype(config.dtype, config.backend), "grading": GRADING_VERSION}
    if (cpu_kernels := kernels()) is not None:
        settings["kernels"] = cpu_kernels  # other CPU kernels round otherwise (rlvr.machine)
    return content_hash(model_identity(model_dir), rows, prompts, asdict(protocol), settings)


def _metric_name(name: str) -> str:
    """``name`` with the characters MLflow does not allow in metric names (such as ``&``) as ``_``."""
    return _NOT_IN_METRIC_NAMES.sub("_", name)


def flat_metrics(name: str, metrics: dict) -> dict[str, float]:
    """The numeric metrics of one benchmark as ``<name>.<metric>`` (breakdowns as ``<name>.<field>.<value>...``)."""
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        if key.startswith("by_"):
            for group, numbers in value.items():
                for metric, number in numbers.items():
                    flat[_metric_name(f"{name}.{key}.{group}.{metric}")] = float(number)
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and key != "step":
            flat[scoped(name, key)] = float(value)
    return flat


def step_row(step: int, results: dict[str, dict]) -> dict:
    """The ``by_step.json`` row of a step: every benchmark's metrics as ``<benchmark>.<metric>``, and their average
    over every evaluated benchmark, the test set included (``average.*``, see :func:`average_metrics`)."""
    row: dict = {"step": step}
    for name, metrics in results.items():
        row |= {k: v for k, v in flat_metrics(name, metrics).items() if ".by_" not in k}
    return row | {scoped(AVERAGE, key): value for key, value in average_metrics(list(results.values())).items()}


def models_to_evaluate(base_model_dir: str | Path, train_dir: str | Path) -> list[tuple[int, Path]]:
    """``(step, directory)`` of the base model (step 0) and of every complete checkpoint."""
    return [(0, Path(base_model_dir)), *checkpoints(train_dir)]


@dataclass(frozen=True)
class Job:
    """One model on one benchmark, to generate, grade and write (in this process or a worker's)."""

    step: int
    model_dir: Path
    bench: Benchmark
    rows: list[dict]
    prompts: list[str]
    protocol: Protocol
    key: str


_BACKEND: dict = {}  # this process's loaded backend, kept while its jobs are for the same model


def load_backend(model_dir: Path, config: EvaluateConfig):
    """This process's backend for ``model_dir``: the loaded one, or (after freeing it) a new one."""
    if _BACKEND.get("dir") != Path(model_dir):
        close_backend()
        _BACKEND.update(dir=Path(model_dir), backend=make_backend(config.backend, model_dir, config))
    return _BACKEND["backend"]


def close_backend() -> None:
    """Free this process's loaded backend (a GPU's memory before the next model's engine starts)."""
    backend = _BACKEND.pop("backend", None)
    _BACKEND.clear()
    if hasattr(backend, "close"):
        backend.close()


def workers(config: EvaluateConfig) -> int:
    """How many processes generate at once: with the transformers backend on a CPU, ``evaluate.workers`` (null:
    one per core this process may use), each with one thread, so that the samples never depend on the machine's
    core count (bfloat16 kernels sum in another order with other thread counts); else 0, this process (a GPU,
    vLLM, a backend of one's own)."""
    import torch

    if config.backend != "transformers" or torch.cuda.is_available():
        return 0
    return config.workers or len(os.sched_getaffinity(0))


def _single_threaded() -> None:
    import torch

    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _may_start_processes() -> None:
    """Fail with the fix where this process cannot start evaluation processes: a daemonic one (a Dask worker's
    default) may not have children."""
    import multiprocessing

    if multiprocessing.current_process().daemon:
        raise RuntimeError(
            "evaluation runs in a daemonic process (a Dask worker?), which cannot start its worker processes: start "
            "the Dask workers with DASK_DISTRIBUTED__WORKER__DAEMON=False, or set evaluate.workers: 1"
        )


@dataclass(frozen=True)
class Evaluation:
    """The evaluate stage's work on a suite: its settings (``config``), the prompts' settings (``model``), the
    folder its results go to (``out_dir``) and the store of results by key shared by runs (``store``, or None).

    :meth:`plan` finds what is still to generate (a result with the same key, here or in the store, is reused),
    :meth:`run` generates, grades and writes it (on GPUs, worker processes or here), :meth:`collect` adds the
    paired tests and writes ``by_step.json`` and ``metrics.json``; :meth:`evaluate` is plan and run, and
    :meth:`evaluate_training` the whole stage."""

    config: EvaluateConfig
    model: ModelConfig
    benchmarks: list[Benchmark]
    out_dir: Path
    store: Path | None = None

    @classmethod
    def of(cls, params: Params) -> Evaluation:
        """The stage's evaluation of ``params``: its suite, ``paths.eval_dir`` and ``paths.eval_store``."""
        paths = params.paths
        return cls(params.evaluate, params.model, suite(params), Path(paths.eval_dir), Path(paths.eval_store))

    def load_data(self) -> dict[str, list[dict]]:
        """The rows of each benchmark (the first ``config.limit``); an empty one is an error naming its file."""
        data = {}
        for bench in self.benchmarks:
            data[bench.name] = read_rows(bench.path)[: self.config.limit]
            if not data[bench.name]:
                raise InputError(f"benchmark {bench.name} is empty: {bench.path}")
        return data

    def paths(self, step: int, name: str) -> tuple[Path, Path]:
        """Where a result lives: its metrics file (written last: its key marks the pair as done) and its samples."""
        layout = EvalDir(self.out_dir)
        return layout.result(step, name), layout.samples(step, name)

    def stored(self, key: str) -> tuple[Path, Path] | None:
        """A result's copy in the store (metrics, samples), where there is one."""
        if self.store is None or not (self.store / f"{key}.json").is_file():
            return None
        return self.store / f"{key}.json", self.store / f"{key}.jsonl"

    def keep(self, job: Job) -> None:
        """Keep a copy of a job's result in the store under its key (samples first: the metrics mark it complete)."""
        if self.store is not None:
            metrics_path, samples_path = self.paths(job.step, job.bench.name)
            self.store.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.store / f"{job.key}.jsonl", samples_path.read_text())
            atomic_write_text(self.store / f"{job.key}.json", metrics_path.read_text())

    def restore(self, stored: tuple[Path, Path], step: int, name: str) -> dict:
        """A stored result written as ``step``'s result of benchmark ``name``; returns its metrics."""
        metrics = read_json(stored[0]) | {"step": step, "benchmark": name}
        metrics_path, samples_path = self.paths(step, name)
        atomic_write_text(samples_path, stored[1].read_text())
        write_json(metrics_path, metrics)
        return metrics

    def plan(
        self, models: list[tuple[int, Path]], data: dict[str, list[dict]]
    ) -> tuple[list[Job], dict[int, dict[str, dict]]]:
        """The jobs still to do, and the results already written with the same key, in ``out_dir`` or in the
        store (reused, not generated again)."""
        template, jobs, done = get_template(self.model.template), [], {}
        for step, model_dir in models:
            tokenizer = load_tokenizer(model_dir)
            for bench in self.benchmarks:
                rows, protocol = data[bench.name], protocol_for(bench.dataset, self.config.protocols)
                prompts = [template.render(r["problem"], self.model, tokenizer) for r in rows]
                key = result_key(model_dir, rows, prompts, protocol, self.config)
                metrics_path, _ = self.paths(step, bench.name)
                previous = read_json(metrics_path) if metrics_path.is_file() else {}
                if previous.get("result_key") == key:
                    logger.info("step %d, %s: already evaluated, skipping", step, bench.name)
                    done.setdefault(step, {})[bench.name] = previous
                elif stored := self.stored(key):
                    logger.info("step %d, %s: evaluated before (%s), reused", step, bench.name, stored[0])
                    done.setdefault(step, {})[bench.name] = self.restore(stored, step, bench.name)
                else:
                    count = protocol.num_samples
                    logger.info("step %d, %s: %d problems x %d samples", step, bench.name, len(rows), count)
                    jobs.append(Job(step, Path(model_dir), bench, rows, prompts, protocol, key))
        return jobs, done

    def run_job(self, job: Job) -> dict:
        """Generate, grade and write one job's samples and metrics; returns the metrics."""
        config = self.config
        backend = load_backend(job.model_dir, config)
        generated = backend.generate(job.prompts, job.protocol, config.max_new_tokens, config.seed)
        completions = [[as_completion(s, backend.tokenizer, config.max_new_tokens) for s in g] for g in generated]
        before = bounded.stats()
        template = get_template(self.model.template)
        samples = sample_records(job.rows, job.prompts, completions, job.bench.dataset, template)
        after = bounded.stats()
        metrics = {"step": job.step, "benchmark": job.bench.name, "dataset": job.bench.dataset}
        ran = getattr(backend, "dtype", None) or compute_dtype(config.dtype, config.backend)  # the precision that ran
        metrics |= {"protocol": asdict(job.protocol), "dtype": ran, "computed_on": description(ran)}
        metrics["generation"] = {"max_new_tokens": config.max_new_tokens, "stop": config.stop}
        metrics["generation"] |= {"loop_stop": config.loop_stop, "backend": config.backend}
        metrics["generation"] |= {"batch_size": config.batch_size}
        metrics |= benchmark_metrics(samples)
        metrics |= {f"grading_{key}": after[key] - before[key] for key in ("refused", "timeouts")}
        metrics["result_key"] = job.key
        metrics_path, samples_path = self.paths(job.step, job.bench.name)
        write_rows(samples_path, samples)
        write_json(metrics_path, metrics)  # last: its key marks the pair as done
        return metrics

    def run_here(self, jobs: list[Job]) -> list[dict]:
        """Every job's metrics, in this process, one after the other (one model's jobs share its loaded backend);
        the backend is freed at the end."""
        try:
            return [self.run_job(job) for job in jobs]
        finally:
            close_backend()

    def run_on_gpus(self, jobs: list[Job], groups: list[str]) -> list[dict]:
        """Every job's metrics, each model's jobs in a process pinned to a GPU group, models on several groups at
        once (``rlvr.placement``)."""
        by_model: dict[Path, list[int]] = {}
        for index, job in enumerate(jobs):
            by_model.setdefault(job.model_dir, []).append(index)
        results = run_pinned(self.run_here, [[jobs[i] for i in indices] for indices in by_model.values()], groups)
        ordered: dict[int, dict] = {}
        for indices, metrics in zip(by_model.values(), results, strict=True):
            ordered |= dict(zip(indices, metrics, strict=True))
        return [ordered[i] for i in range(len(jobs))]

    def run(self, jobs: list[Job]) -> list[dict]:
        """Every job's metrics: on a node's GPUs several models at once (one engine per GPU group of
        ``tensor_parallel_size``); on a CPU with the transformers backend on ``workers(config)`` single-threaded
        processes; else here (one at a time)."""
        config = self.config
        size = config.tensor_parallel_size if config.backend == "vllm" else 1
        groups = gpu_groups(visible_gpus(), size)
        if len(groups) > 1 and jobs:
            _may_start_processes()
            return self.run_on_gpus(jobs, groups)
        count = min(workers(config), len(jobs))
        if count > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            _may_start_processes()

            context = multiprocessing.get_context("spawn")  # a fresh interpreter: no OpenMP state inherited
            pool = ProcessPoolExecutor(count, mp_context=context, initializer=_single_threaded)
            try:
                futures = [pool.submit(self.run_job, job) for job in jobs]
                return [future.result() for future in futures]  # a worker that cannot start: BrokenProcessPool
            except BaseException:
                terminate_workers(pool)
                raise
            finally:
                pool.shutdown(cancel_futures=True)
        import torch

        threads = torch.get_num_threads()
        if count == 1:
            torch.set_num_threads(1)  # as a worker process would: the same samples
        try:
            return self.run_here(jobs)
        finally:
            torch.set_num_threads(threads)

    def evaluate(self, models: list[tuple[int, Path]]) -> dict[int, dict[str, dict]]:
        """Metrics per step (the base model as step 0, checkpoints) and benchmark: planned, then run; each new
        result is also kept in the store."""
        data = self.load_data()
        if self.store is not None:
            self.store.mkdir(parents=True, exist_ok=True)
        jobs, results = self.plan(models, data)
        for job, metrics in zip(jobs, self.run(jobs), strict=True):
            results.setdefault(job.step, {})[job.bench.name] = metrics
            self.keep(job)
        return {step: {b.name: results[step][b.name] for b in self.benchmarks} for step, _ in models}

    def scores(self, step: int, name: str, mode: str) -> dict[str, float]:
        """Per problem, the share of its samples graded correct under ``mode`` at ``step``."""
        return problem_scores(read_records(self.paths(step, name)[1]), mode)

    def collect(self, evaluated: dict[int, dict[str, dict]], headline_mode: str, on_result=None) -> list[dict]:
        """The stage's rows, one per step, after adding each checkpoint's paired tests against the base model
        (``gain_<mode>``, ``p_value_<mode>``); writes ``by_step.json`` and ``metrics.json`` (the best checkpoint
        under ``headline_mode``); ``on_result(step, flat_metrics)`` is called per step."""
        rows_by_step = []
        for step, results in evaluated.items():
            if step > 0:
                for name, metrics in results.items():
                    for mode in GRADING_MODES:
                        test = paired_test(self.scores(0, name, mode), self.scores(step, name, mode))
                        metrics |= {metric_name(key, mode): value for key, value in test.items()}
            row = step_row(step, results)
            if on_result is not None:
                flat = {k: v for name, m in results.items() for k, v in flat_metrics(name, m).items()}
                on_result(step, flat | {k: v for k, v in row.items() if k.startswith(scoped(AVERAGE, ""))})
            rows_by_step.append(row)
        columns = list(dict.fromkeys(key for row in rows_by_step for key in row))  # every row has every key (null
        rows_by_step = [{key: row.get(key) for key in columns} for row in rows_by_step]  # where none, as gains at
        layout = EvalDir(self.out_dir)  # step 0): DVC's plots draw nothing from rows of different keys
        write_json(layout.by_step, rows_by_step)
        names = [b.name for b in self.benchmarks]
        write_json(layout.metrics, headline_metrics(rows_by_step, names, headline_mode))
        return rows_by_step

    def evaluate_training(
        self, base_model_dir: str | Path, train_dir: str | Path, headline_mode: str, on_result=None
    ) -> list[dict]:
        """The evaluate stage (see module docstring): the base model and every complete checkpoint of
        ``train_dir``, then :meth:`collect`."""
        models = models_to_evaluate(base_model_dir, train_dir)
        if len(models) == 1:
            logger.warning("no checkpoint under %s: evaluating the base model only", train_dir)
        return self.collect(self.evaluate(models), headline_mode, on_result)


def headline_metrics(rows: list[dict], names: list[str], mode: str) -> dict:
    """``metrics.json`` (what ``dvc metrics show`` and ``dvc exp show`` list): for the base model and the best
    checkpoint, the step, the benchmark average under each grading mode and each benchmark's accuracy under
    ``mode``; every other number is in ``by_step.json``."""
    keys = [metric_name("accuracy", m, scope=AVERAGE) for m in GRADING_MODES]
    keys += [metric_name("accuracy", mode, scope=name) for name in names]

    def short(row: dict | None) -> dict | None:
        return None if row is None else {"step": row["step"]} | {key: row[key] for key in keys if key in row}

    best = best_row(rows, mode)
    return {"headline_mode": mode, "average_of": names, "num_checkpoints": len(rows) - 1} | {
        "base": short(rows[0]),
        "best": short(best),
    }


def register_best(params: Params, best: dict | None) -> None:
    """Register the run's best checkpoint (``rlvr.metrics.best_row`` under the headline grading) with its metrics,
    once its training has ended."""
    train_dir = params.paths.train_dir
    if best is None or not is_finished(train_dir):  # a training still running registers once it has ended
        return
    checkpoint = dict(checkpoints(train_dir))[best["step"]]
    metrics = {key: value for key, value in best.items() if isinstance(value, int | float) and key != "step"}
    name = params.mlflow.registered_model or params.mlflow.experiment
    key_metric = metric_name("accuracy", params.report.headline_mode, scope=AVERAGE)
    tracking.register_checkpoint(name, checkpoint, best["step"], metrics, key_metric)


def run(params: Params, parent_id: str | None = None) -> list[dict]:
    """The evaluate stage: the base model and every complete checkpoint of ``paths.train_dir`` on the suite,
    results in ``paths.eval_dir``; the best checkpoint registered."""
    eval_dir = Path(params.paths.eval_dir)
    with tracking.stage_run("evaluate", params, parent_id):
        rows = Evaluation.of(params).evaluate_training(
            params.paths.model_dir,
            params.paths.train_dir,
            params.report.headline_mode,
            on_result=lambda step, metrics: tracking.log_metrics(metrics, step),
        )
        layout = EvalDir(eval_dir)
        tracking.set_tag("rlvr.computed_on", "; ".join(layout.computed_on()))
        tracking.log_artifact(layout.metrics)
        tracking.log_artifact(layout.by_step)
        for path in layout.sample_files():  # browsable in MLflow's UI
            table = [{key: row.get(key) for key in SAMPLE_COLUMNS} for row in read_records(path)]
            tracking.log_table(table, f"samples/{path.parent.name}/{path.stem}.json")
        if params.mlflow.register_best:
            register_best(params, best_row(rows, params.report.headline_mode))
        return rows
