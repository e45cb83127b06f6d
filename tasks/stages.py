"""One Prefect task per pipeline stage, each calling the same ``rlvr.stages`` function as DVC does.

Retries only where I/O can fail (the model stage may download from the Hub). Results are not cached
here: the outputs are files at the params' paths, as in the DVC pipeline.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from rlvr import stages
from rlvr.config import Params


@task(name="model", retries=2, retry_delay_seconds=10, cache_policy=NO_CACHE)
def prepare_model(params: Params, parent_id: str) -> str:
    return str(stages.model(params, params.paths.model_dir, parent_id))


@task(name="data", cache_policy=NO_CACHE)
def make_data(params: Params, parent_id: str) -> dict:
    return stages.data(params, params.paths, parent_id)


@task(name="history", cache_policy=NO_CACHE)
def record_history(params: Params, model_dir: str, pool_path: str, parent_id: str) -> str:
    stages.history(params, model_dir, pool_path, params.paths.history, parent_id)
    return params.paths.history


@task(name="select", cache_policy=NO_CACHE)
def select_examples(params: Params, history_path: str, pool_path: str, parent_id: str) -> str:
    stages.select(params, history_path, pool_path, params.paths.selection, params.paths.ranking, parent_id)
    return params.paths.selection


@task(name="train", cache_policy=NO_CACHE)
def train_policy(params: Params, model_dir: str, selection_path: str, parent_id: str) -> str:
    stages.train(params, model_dir, selection_path, params.paths.train_dir, parent_id)
    return params.paths.train_dir


@task(name="evaluate", cache_policy=NO_CACHE)
def evaluate_checkpoints(params: Params, model_dir: str, train_dir: str, test_path: str, parent_id: str) -> str:
    stages.evaluate(params, model_dir, train_dir, test_path, params.paths.eval_dir, parent_id)
    return params.paths.eval_dir


@task(name="report", cache_policy=NO_CACHE)
def write_report(params: Params, train_dir: str, eval_dir: str, selection_path: str, parent_id: str) -> str:
    return str(stages.report(params, train_dir, eval_dir, selection_path, params.paths.report_dir, parent_id))
