"""Files: JSON, and datasets in one normalised schema (``id``, ``problem``, ``answer``, ``source`` plus optional
fields) as jsonl or parquet by extension; verl parquet (id = ``extra_info.index``), MATH500-style jsonl and
already-normalised files are read alike. Writes are atomic, so an interrupted stage leaves no complete-looking
file."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from rlvr.errors import InputError
from rlvr.templates import TRAIN_SUFFIX


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as handle:
        handle.write(text)
    os.replace(handle.name, path)


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes (dataset identity for lineage)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def content_hash(*parts: Any) -> str:
    """A short hash of JSON-serialisable ``parts`` (settings, rows): equal parts, equal hash."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def write_json(path: str | Path, value: Any) -> None:
    atomic_write_text(path, json.dumps(value, indent=2, sort_keys=False) + "\n")


def read_json(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"input file not found: {path}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise InputError(f"{path}: not valid JSON ({error})") from error


def write_rows(path: str | Path, rows: Iterable[dict]) -> None:
    """Write rows as jsonl or parquet, chosen by the file extension."""
    path, rows = Path(path), list(rows)
    if path.suffix == ".parquet":
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".parquet.tmp")
        pd.DataFrame(rows).to_parquet(tmp, index=False)
        os.replace(tmp, path)
    elif path.suffix == ".jsonl":
        atomic_write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    else:
        raise InputError(f"unsupported output format (use .jsonl or .parquet): {path}")


def read_records(path: Path) -> list[dict]:
    if not path.is_file():
        raise InputError(f"input file not found: {path}")
    if path.suffix == ".parquet":
        return pd.read_parquet(path).to_dict("records")
    if path.suffix in (".jsonl", ".json"):
        rows = []
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise InputError(f"{path}:{number}: not valid JSON ({error})") from error
        return rows
    raise InputError(f"unsupported input format (use .jsonl or .parquet): {path}")


def verl_problem(row: dict) -> str:
    """The problem text of a verl row: its last prompt message without verl's instruction after it, byte for byte
    (whitespace kept: the paper's training prompt is this text, a space and the instruction)."""
    prompt = row.get("prompt")
    text = prompt[-1]["content"] if prompt is not None and len(prompt) else ""
    return str(text).removesuffix(" " + TRAIN_SUFFIX)  # the verl files' prompts end in the training suffix


def verl_id(row: dict, index: int) -> str:
    """A verl row's example id: ``extra_info.index`` (the key of the official history files)."""
    return str((row.get("extra_info") or {}).get("index", index))


def verl_gold(row: dict) -> str:
    value = (row.get("reward_model") or {}).get("ground_truth")
    return "" if value is None else str(value).strip()


def _from_verl(row: dict, index: int) -> dict:
    return {
        "id": verl_id(row, index),
        "problem": verl_problem(row),
        "answer": verl_gold(row),
        "source": str(row.get("data_source", "verl")),
    }


def normalise(row: dict, index: int, source: str, origin: str | None = None) -> dict:
    """One raw row (verl, MATH500-style or normalised) in the normalised schema."""
    if "reward_model" in row and "prompt" in row:
        return _from_verl(row, index)
    problem = row.get("problem") or row.get("question")
    if problem is None or row.get("answer") is None:
        raise InputError(f"{origin or source}: row {index} has no problem/question or no answer field")
    normalised = {
        "id": str(row.get("id", row.get("unique_id", index))),
        "problem": str(problem),
        "answer": str(row["answer"]),
        "source": str(row.get("source", source)),
    }
    for extra in ("subject", "level"):
        if extra in row:
            normalised[extra] = row[extra]
    return normalised


def read_rows(path: str | Path) -> list[dict]:
    """Rows of a dataset file in the normalised schema, whatever its supported format."""
    path = Path(path)
    return [normalise(row, i, path.stem, str(path)) for i, row in enumerate(read_records(path))]


def excluded_ids(manifest_path: str | Path | None, key: str = "pool") -> list[str]:
    """Ids of ``key``'s rows the data stage left out for lack of a gold answer (none without a manifest)."""
    if manifest_path is None or not Path(manifest_path).is_file():
        return []
    return list(read_json(manifest_path).get(key, {}).get("excluded_ids", []))


@dataclass(frozen=True)
class EvalDir:
    """The evaluate stage's folder, the one place its layout is written: per step and benchmark, the result's
    metrics ``steps/step-N/<benchmark>.json`` (written last: its key marks the result complete) and its samples
    ``samples/step-N/<benchmark>.jsonl``; ``by_step.json`` (a row per step) and ``metrics.json`` (the headline)."""

    root: Path

    def __init__(self, root: str | Path) -> None:
        object.__setattr__(self, "root", Path(root))

    def step_results(self, step: int) -> Path:
        return self.root / "steps" / f"step-{step}"

    def result(self, step: int, benchmark: str) -> Path:
        return self.step_results(step) / f"{benchmark}.json"

    def samples(self, step: int, benchmark: str) -> Path:
        return self.root / "samples" / f"step-{step}" / f"{benchmark}.jsonl"

    def sample_files(self) -> list[Path]:
        """Every samples file, by step folder and benchmark name."""
        return sorted((self.root / "samples").glob("step-*/*.jsonl"))

    def computed_on(self) -> list[str]:
        """What computed the results (machine and precision, ``rlvr.machine.description``), each named once."""
        results = sorted((self.root / "steps").glob("step-*/*.json"))
        return sorted({on for path in results if (on := read_json(path).get("computed_on"))})

    def sampled_steps(self, benchmarks: list[str]) -> list[int]:
        """The steps with samples of every one of ``benchmarks``, in order."""
        steps = [int(folder.name.removeprefix("step-")) for folder in (self.root / "samples").glob("step-*")]
        return sorted(step for step in steps if all(self.samples(step, name).is_file() for name in benchmarks))

    @property
    def by_step(self) -> Path:
        return self.root / "by_step.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"
