"""Where a result came from: stage input keys, the git commit, DVC's hash of the inputs, dataset hashes.

``dvc.yaml`` is the one declaration of each stage's inputs (params keys, its code's hash file, other files,
upstream outputs). From it, :func:`stage_keys` derives a key per stage that changes whenever the stage's params,
its code (by meaning: ``rlvr.codehash``) or any upstream key changes (a chain, like DVC's, without hashing model
weights): the Prefect tasks' cache key and the ``rlvr.inputs_key`` tag of every MLflow stage run, so both runners
name the same inputs alike.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from rlvr.codehash import stage_hash
from rlvr.config import Params, to_dict
from rlvr.files import content_hash, read_json

PIPELINE = Path(__file__).resolve().parents[1] / "dvc.yaml"
CODE_STAGE = "code"  # DVC's first stage: it writes each stage's code hash (rlvr.codehash); not a pipeline stage
_TEMPLATE = re.compile(r"\$\{([\w.]+)\}")


def _lookup(values: dict, dotted: str) -> Any:
    for part in dotted.split("."):
        values = values[part]
    return values


def _paths(entries: list) -> list[str]:
    """The paths of a dvc.yaml ``deps``/``outs``/``metrics`` list (entries may carry options)."""
    return [next(iter(entry)) if isinstance(entry, dict) else entry for entry in entries or []]


def _outputs(spec: dict) -> list[str]:
    """The output paths (``outs`` and ``metrics``) of a dvc.yaml stage, as templates."""
    return _paths(spec.get("outs")) + _paths(spec.get("metrics"))


@functools.cache
def pipeline_stages(pipeline: Path = PIPELINE) -> dict[str, dict]:
    """The pipeline's stages in ``dvc.yaml``, in file order (which is the pipeline's order); not the code stage."""
    stages = yaml.safe_load(pipeline.read_text())["stages"]
    return {name: spec for name, spec in stages.items() if name != CODE_STAGE}


def code_file(stage: str, values: dict) -> str:
    """The file the code stage writes ``stage``'s code hash to (what the stage depends on in ``dvc.yaml``)."""
    return f"{values['paths']['code_dir']}/{stage}.json"


@functools.cache
def _code_digest(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def resolve(template: str, values: dict) -> str:
    """``template`` with its ``${a.b}`` references replaced from the params ``values``."""
    return _TEMPLATE.sub(lambda match: str(_lookup(values, match.group(1))), template)


def stage_keys(params: Params, pipeline: Path = PIPELINE) -> dict[str, str]:
    """A key per stage from its params values, code files and the keys of the stages it reads from."""
    stages = pipeline_stages(pipeline)
    values = to_dict(params)
    producer = {out: name for name, spec in stages.items() for out in _outputs(spec)}
    keys: dict[str, str] = {}
    for name, spec in stages.items():
        upstream, code = {}, {}
        for dep in _paths(spec.get("deps")):
            if dep in producer:
                upstream[dep] = keys[producer[dep]]
            elif resolve(dep, values) == code_file(name, values):
                code[dep] = stage_hash(name, pipeline.parent)
            else:
                code[dep] = _code_digest(pipeline.parent / resolve(dep, values))
        settings = {key: _lookup(values, key) for key in spec.get("params", [])}
        outputs = [resolve(out, values) for out in _outputs(spec)]
        keys[name] = content_hash(name, settings, code, upstream, outputs)
    return keys


def stage_outputs(stage: str, params: Params, pipeline: Path = PIPELINE) -> list[str]:
    """The paths ``stage`` writes (its ``outs`` and ``metrics`` in ``dvc.yaml``) under ``params``."""
    values = to_dict(params)
    return [resolve(out, values) for out in _outputs(pipeline_stages(pipeline)[stage])]


def dvc_inputs_md5(stage: str, params: Params, lock_path: str | Path, pipeline: Path = PIPELINE) -> str | None:
    """The MD5 of ``stage``'s file inputs as ``dvc.lock`` records them once ``dvc repro`` has run the stage.

    Computed before the stage runs: upstream outputs from their (already written) lock entries, other files
    from their content. None when an upstream output has no lock entry yet.
    """
    spec = pipeline_stages(pipeline)[stage]
    values = to_dict(params)
    locked = {}
    lock = yaml.safe_load(Path(lock_path).read_text()) if Path(lock_path).is_file() else {}
    for entry in (lock or {}).get("stages", {}).values():
        locked |= {out["path"]: out["md5"] for out in entry.get("outs", [])}
    digests = {}
    for dep in _paths(spec.get("deps")):
        path = resolve(dep, values)
        if path in locked:
            digests[path] = locked[path]
        elif (pipeline.parent / path).is_file():
            digests[path] = _code_digest(pipeline.parent / path)
        else:
            return None
    return inputs_md5(digests)


def locked_inputs_md5(stage: str, lock_path: str | Path) -> str:
    """The same MD5 read from ``stage``'s deps in ``dvc.lock`` (for checking a run against the lock)."""
    entry = yaml.safe_load(Path(lock_path).read_text())["stages"][stage]
    return inputs_md5({dep["path"]: dep["md5"] for dep in entry["deps"]})


def inputs_md5(digests: dict[str, str]) -> str:
    return hashlib.md5(json.dumps(sorted(digests.items())).encode()).hexdigest()


@functools.cache
def git_commit() -> str:
    """The commit of the code that runs, ``-dirty`` appended when tracked files differ from it; "" outside git."""
    root = PIPELINE.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True
        )
    except (OSError, subprocess.CalledProcessError):
        return ""
    return commit + ("-dirty" if dirty.stdout.strip() else "")


def dataset_tags(manifest_path: str | Path) -> dict[str, str]:
    """``rlvr.data.<key>.sha256`` per dataset of the data stage's manifest ({} before the data stage has run)."""
    if not Path(manifest_path).is_file():
        return {}
    return {f"rlvr.data.{key}.sha256": entry["sha256"] for key, entry in read_json(manifest_path).items()}


def run_tags(stage: str, params: Params) -> dict[str, str]:
    """The lineage tags of an MLflow stage run (see module docstring); under ``dvc repro``, DVC's inputs hash too."""
    tags = {
        "rlvr.git_commit": git_commit(),
        "rlvr.inputs_key": stage_keys(params)[stage],
        "rlvr.model": params.model.source,
    }
    if stage != "data":  # the data stage tags the hashes of what it writes (stages.data)
        tags |= dataset_tags(params.paths.data_manifest)
    if os.environ.get("DVC_STAGE") == stage:  # run by dvc repro / dvc exp run, from the repository root
        lock = Path(os.environ.get("DVC_ROOT", ".")) / "dvc.lock"
        if (digest := dvc_inputs_md5(stage, params, lock)) is not None:
            tags["rlvr.dvc_inputs_md5"] = digest
    return tags
