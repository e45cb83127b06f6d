"""The data stage: materialise the candidate pool, the held-out test set and the benchmarks in the normalised
schema, and a manifest (rows, rows left out for lack of a gold answer and their ids, SHA-256 of each file).

Datasets come from the catalogue (``rlvr.datasets``: registry names and the generated suites), from a file
(``data.pool: file`` / ``data.test: file``, or a ``{name, file}`` benchmark of the user's own), or from the
embedded generator (``generator``: word problems, the pool and test set of the embedded default).
"""

from __future__ import annotations

import logging
from pathlib import Path

from rlvr.config import BenchmarkFile, DataConfig, Params, Paths
from rlvr.datasets import Loaded, load, load_own
from rlvr.errors import InputError
from rlvr.files import file_sha256, write_json, write_rows
from rlvr.generator import generate

logger = logging.getLogger(__name__)


def _load(name: str, config: DataConfig, file: str | None = None, size: int | None = None) -> Loaded:
    loaded = load(name, file, config.local_dir, config.suite_size, config.suite_seed, config.suite_split)
    loaded.rows = loaded.rows[:size]
    return loaded


def materialise(config: DataConfig, paths: Paths) -> dict:
    """Write pool, test set and benchmarks under ``paths``; returns the manifest (also written)."""
    needs_generator = "generator" in (config.pool, config.test)
    generated = generate(config.pool_size or 0, config.test_size or 0, config.seed) if needs_generator else ([], [])
    parts = {}
    for key, rows in zip(("pool", "test"), generated, strict=True):
        name, file, size = getattr(config, key), getattr(config, f"{key}_file"), getattr(config, f"{key}_size")
        if name == "generator":
            parts[key] = Loaded("generator", rows, 0, f"generator:seed={config.seed}")
        elif name == "file":
            parts[key] = load_own(file, Path(getattr(file, "file", file)).stem, size)
        else:
            parts[key] = _load(name, config, getattr(file, "file", file), size)  # the registry's own rules
        if not parts[key].rows:
            raise InputError(f"data.{key}: {parts[key].origin} has no usable rows")
    benchmarks = {}
    for entry in config.benchmarks:
        if isinstance(entry, BenchmarkFile):
            benchmarks[entry.name] = load_own(entry, entry.name)
        else:
            benchmarks[entry] = _load(entry, config)
        if not benchmarks[DataConfig.benchmark_name(entry)].rows:
            raise InputError(f"data.benchmarks: {DataConfig.benchmark_name(entry)} has no usable rows")
    pool_problems = {row["problem"] for row in parts["pool"].rows}
    for key, loaded in {"test": parts["test"], **benchmarks}.items():
        shared = pool_problems & {row["problem"] for row in loaded.rows}
        if shared:
            raise InputError(f"the pool and {key} share {len(shared)} problems, e.g. {sorted(shared)[0]!r}")
    outputs = {"pool": (parts["pool"], Path(paths.pool)), "test": (parts["test"], Path(paths.test))}
    outputs |= {name: (loaded, Path(paths.benchmarks_dir) / f"{name}.jsonl") for name, loaded in benchmarks.items()}
    Path(paths.benchmarks_dir).mkdir(parents=True, exist_ok=True)  # an output even when there is no benchmark
    manifest = {}
    for key, (loaded, path) in outputs.items():
        write_rows(path, loaded.rows)
        manifest[key] = {
            "dataset": loaded.name,
            "origin": loaded.origin,
            "rows": len(loaded.rows),
            "missing_answer": loaded.missing_answer,
            "excluded_ids": loaded.excluded_ids,
            "path": str(path),
            "sha256": file_sha256(path),
        }
    write_json(paths.data_manifest, manifest)
    return manifest


def run(params: Params, parent_id: str | None = None) -> dict:
    """The data stage (see module docstring), tracked: row counts as metrics, datasets as MLflow inputs."""
    from rlvr import tracking

    with tracking.stage_run("data", params, parent_id) as active:
        manifest = materialise(params.data, params.paths)
        for key, entry in manifest.items():
            tracking.log_metrics({f"{key}.rows": entry["rows"], f"{key}.missing_answer": entry["missing_answer"]})
        tracking.log_artifact(params.paths.data_manifest)
        tracking.log_datasets(manifest, "data")
        if active is not None and (parent := active.data.tags.get("mlflow.parentRunId")):
            tracking.log_datasets(manifest, "data", run_id=parent)  # the pipeline run's Dataset column
        return manifest
