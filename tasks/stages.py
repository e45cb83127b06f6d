"""One Prefect task per pipeline stage (``rlvr.stages.STAGES``), each running the same stage as DVC does.

Results are persisted, and a stage whose inputs are unchanged is skipped by its cache key: the stage's
key from ``dvc.yaml`` (params values, code, upstream keys: ``rlvr.lineage.stage_keys``), its outputs' absolute
paths, and for the stages reading the training directory the checkpoints complete so far. A cache hit only
stands while the stage's outputs exist: :func:`run_cached` recomputes a stage whose outputs are gone, and
:func:`checkpoint_task` a checkpoint evaluation whose results are.

Flow runs on other workers (a matrix's cells on several nodes) may reach a shared stage at the same moment:
:func:`run_cached` holds a file lock per stage outputs (in ``outputs/.locks`` on the disk the workers share) while it
decides and runs, so one computes and the others wait, then take its result from the cache (Prefect's result
storage must be shared too). The lock is the operating system's: a killed holder releases it.
Retries where I/O can fail: the stages that may download from the Hub.
"""

from __future__ import annotations

from pathlib import Path

from filelock import FileLock
from prefect import Task, task

from rlvr import lineage, stages
from rlvr.config import Params
from rlvr.files import EvalDir, content_hash
from rlvr.stages.evaluate import Evaluation, suite
from rlvr.training.checkpoints import MARKER, checkpoints, is_finished

HUB_RETRIES = {"retries": 2, "retry_delay_seconds": 30}
LOCKS = Path("outputs/.locks")  # relative to the project folder, which every worker runs in


def training_state(train_dir: str | Path) -> list:
    """The complete checkpoints of a training directory (with their markers) and whether the run has ended."""
    markers = [(step, (path / MARKER).read_text()) for step, path in checkpoints(train_dir)]
    return [markers, is_finished(train_dir)]


def stage_key(stage: str, params: Params) -> str:
    """The cache key of stage ``stage`` under ``params`` (see module docstring)."""
    outputs = [str(Path(path).resolve()) for path in lineage.stage_outputs(stage, params)]
    state = training_state(params.paths.train_dir) if stages.BY_NAME[stage].reads_training else None
    return f"{stage}-{content_hash(lineage.stage_keys(params)[stage], outputs, state)}"


def stage_cache_key(context, parameters: dict) -> str:
    """A stage task's cache key; the task's name is the stage's."""
    return stage_key(context.task.name, parameters["params"])


def _all_exist(paths: list) -> bool:
    return all(Path(path).exists() for path in paths)


def _unless_missing(cached_task: Task, outputs: list) -> Task:
    """``cached_task``, recomputed rather than taken from the cache when one of its ``outputs`` is missing
    (deleted outputs give the same key as the run that first wrote them)."""
    return cached_task.with_options(refresh_cache=not _all_exist(outputs))


def run_cached(stage_task: Task, params: Params, parent_id: str) -> list[str]:
    """Run ``stage_task`` unless its cache holds a result for its key and its outputs exist, holding the stage's
    lock meanwhile (see module docstring); returns the paths it wrote."""
    outputs = lineage.stage_outputs(stage_task.name, params)
    LOCKS.mkdir(parents=True, exist_ok=True)
    lock = LOCKS / f"{stage_task.name}-{content_hash([str(Path(path).resolve()) for path in outputs])}.lock"
    with FileLock(lock):
        return _unless_missing(stage_task, outputs)(params, parent_id)


def is_current(params: Params) -> bool:
    """Whether every stage has run under ``params`` as they are now: a result under its current key (in the result
    store each stage task uses) and its outputs on disk. A finished matrix cell is current."""
    from prefect.results import get_result_store

    return all(
        get_result_store().update_for_task(TASKS[stage.name]).exists(stage_key(stage.name, params))
        and _all_exist(lineage.stage_outputs(stage.name, params))
        for stage in stages.STAGES
    )


def _stage_task(stage: stages.Stage) -> Task:
    def run_stage(params: Params, parent_id: str) -> list[str]:
        stages.run(stage.name, params, parent_id)
        return lineage.stage_outputs(stage.name, params)

    run_stage.__doc__ = f"The {stage.name} stage (``{stage.module}.run``); returns the paths it wrote."
    options = HUB_RETRIES if stage.downloads else {}
    return task(name=stage.name, cache_key_fn=stage_cache_key, persist_result=True, **options)(run_stage)


TASKS: dict[str, Task] = {stage.name: _stage_task(stage) for stage in stages.STAGES}


def checkpoint_cache_key(context, parameters: dict) -> str:
    """One model's evaluation: the evaluate stage's key, the step, its checkpoint marker and the output folder."""
    params, step, model_dir = parameters["params"], parameters["step"], Path(parameters["model_dir"])
    marker = model_dir / MARKER
    state = marker.read_text() if marker.is_file() else str(model_dir.resolve())
    eval_dir = Path(params.paths.eval_dir).resolve()
    return f"evaluate-step-{step}-{content_hash(lineage.stage_keys(params)['evaluate'], step, state, str(eval_dir))}"


def checkpoint_task(params: Params, step: int) -> Task:
    """:func:`evaluate_checkpoint` for one step, run again rather than taken from the cache when one of its
    results is missing."""
    results = EvalDir(params.paths.eval_dir)
    return _unless_missing(evaluate_checkpoint, [results.result(step, bench.name) for bench in suite(params)])


@task(name="evaluate-checkpoint", cache_key_fn=checkpoint_cache_key, persist_result=True, tags=["rlvr-evaluate"])
def evaluate_checkpoint(params: Params, step: int, model_dir: str) -> int:
    """Evaluate one model (the base as step 0, or a checkpoint) on the test set and benchmarks; returns its step.

    Writes only its own ``steps/step-N`` files: fanned out across workers, the evaluate stage then collects them.
    """
    Evaluation.of(params).evaluate([(step, Path(model_dir))])
    return step
