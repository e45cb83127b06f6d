"""Datasets by name: the paper's benchmarks and pools, each with its Hub source and its local file.

Every entry turns its raw rows into the normalised schema (``id``, ``problem``, ``answer``, ``source`` plus
entry-specific fields). The gold answer lives in a different field in each source; an entry's ``gold``
function finds it. Rows whose gold answer cannot be found are counted and reported, never silently dropped.

A dataset is read from, in order: an explicit file, ``<local_dir>/<entry.local>`` when that file exists,
or the Hugging Face Hub (``entry.hub``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rlvr.config import DataConfig, InputError
from rlvr.data import (
    file_sha256,
    read_json,
    read_records,
    read_rows,
    verl_gold,
    verl_id,
    verl_problem,
    write_json,
    write_rows,
)
from rlvr.generator import generate
from rlvr.rewards import last_boxed

logger = logging.getLogger(__name__)


def _text(value) -> str:
    return "" if value is None else str(value).strip()


def _answer_field(row: dict) -> str:
    return _text(row.get("answer"))


def _minerva_gold(row: dict) -> str:
    return _text(last_boxed(_text(row.get("solution")))) or _answer_field(row)


def _olympiad_gold(row: dict) -> str:
    """The official evaluation's rule: the first entry of ``final_answer``, ``$`` stripped."""
    answers = row.get("final_answer")
    if isinstance(answers, str):
        answers = [answers]
    answers = [a for a in (answers if answers is not None else []) if _text(a)]
    return _text(answers[0]).strip("$").strip() if answers else ""


def _gsm8k_gold(row: dict) -> str:
    answer = _text(row.get("answer"))
    return answer.split("####")[-1].strip().replace(",", "") if "####" in answer else ""


def _arc_gold(row: dict) -> str:
    return _text(row.get("answerKey"))


def _plain_problem(row: dict) -> str:
    return _text(row.get("problem") or row.get("question"))


def _arc_problem(row: dict) -> str:
    choices = row.get("choices") or {}
    pairs = zip(choices.get("label", []), choices.get("text", []), strict=True)
    options = "\n".join(f"{label}. {text}" for label, text in pairs)
    return f"{_text(row.get('question'))}\n{options}".strip()


def _plain_id(row: dict, index: int) -> str:
    for key in ("id", "unique_id", "idx"):
        if _text(row.get(key)):
            return _text(row[key])
    return str(index)


@dataclass(frozen=True)
class DatasetSpec:
    """One named dataset: where it lives and how its raw rows become normalised rows."""

    name: str
    kind: str  # "benchmark" or "pool"
    local: str  # path relative to a local data directory
    hub: str
    hub_split: str
    gold: Callable[[dict], str]
    hub_config: str | None = None
    problem: Callable[[dict], str] = _plain_problem
    row_id: Callable[[dict, int], str] = _plain_id
    extras: tuple[str, ...] = field(default_factory=tuple)

    def convert(self, raw: dict, index: int) -> dict:
        """The normalised row; ``answer`` is empty when the gold answer cannot be found."""
        row = {"id": self.row_id(raw, index), "problem": self.problem(raw), "answer": self.gold(raw)}
        row["source"] = self.name
        for key in self.extras:
            if key in raw and raw[key] is not None:
                row[key] = raw[key] if not hasattr(raw[key], "tolist") else raw[key].tolist()
        return row


REGISTRY: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "math500",
            "benchmark",
            "benchmarks/math500.jsonl",
            "HuggingFaceH4/MATH-500",
            "test",
            _answer_field,
            extras=("subject", "level"),
        ),
        DatasetSpec(
            "aime24", "benchmark", "benchmarks/aime24.jsonl", "HuggingFaceH4/aime_2024", "train", _answer_field
        ),
        DatasetSpec("aime25", "benchmark", "benchmarks/aime25.jsonl", "math-ai/aime25", "test", _answer_field),
        DatasetSpec("amc23", "benchmark", "benchmarks/amc23.jsonl", "math-ai/amc23", "test", _answer_field),
        DatasetSpec(
            "minerva_math",
            "benchmark",
            "benchmarks/minerva_math.jsonl",
            "math-ai/minervamath",
            "test",
            _minerva_gold,
            extras=("type",),
        ),
        DatasetSpec(
            "olympiadbench",
            "benchmark",
            "benchmarks/olympiadbench.jsonl",
            "Hothan/OlympiadBench",
            "train",
            _olympiad_gold,
            hub_config="OE_TO_maths_en_COMP",
            extras=("subfield", "answer_type"),
        ),
        DatasetSpec(
            "gsm8k", "benchmark", "benchmarks/gsm8k.jsonl", "openai/gsm8k", "test", _gsm8k_gold, hub_config="main"
        ),
        DatasetSpec(
            "arc_easy",
            "benchmark",
            "benchmarks/arc_easy.jsonl",
            "allenai/ai2_arc",
            "test",
            _arc_gold,
            hub_config="ARC-Easy",
            problem=_arc_problem,
            extras=("choices",),
        ),
        DatasetSpec(
            "arc_challenge",
            "benchmark",
            "benchmarks/arc_challenge.jsonl",
            "allenai/ai2_arc",
            "test",
            _arc_gold,
            hub_config="ARC-Challenge",
            problem=_arc_problem,
            extras=("choices",),
        ),
        DatasetSpec(
            "dsr_sub",
            "pool",
            "pools/dsr_sub.parquet",
            "ypwang61/one_shot_rlvr",
            "train",
            verl_gold,
            problem=verl_problem,
            row_id=verl_id,
        ),
    )
}
BENCHMARKS = tuple(name for name, spec in REGISTRY.items() if spec.kind == "benchmark")


@dataclass
class Loaded:
    """A loaded dataset: its rows with a gold answer, and how many rows had none."""

    name: str
    rows: list[dict]
    missing_answer: int
    origin: str
    excluded_ids: list[str] = field(default_factory=list)


def spec(name: str) -> DatasetSpec:
    if name not in REGISTRY:
        raise InputError(f"unknown dataset {name!r}; known: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def _hub_records(entry: DatasetSpec) -> list[dict]:
    from datasets import load_dataset

    try:
        if entry.kind == "pool":
            loaded = load_dataset(entry.hub, data_files=Path(entry.local).name, split=entry.hub_split)
        else:
            loaded = load_dataset(entry.hub, entry.hub_config, split=entry.hub_split)
    except Exception as error:  # the Hub raises many types; the message names the dataset either way
        reason = f"{type(error).__name__}: {error}"
        raise InputError(f"{entry.name}: cannot load {entry.hub} from the Hub ({reason})") from error
    return [dict(row) for row in loaded]


def load(name: str, file: str | Path | None = None, local_dir: str | Path | None = None) -> Loaded:
    """The dataset ``name`` from ``file``, else ``local_dir``, else the Hub; rows without a gold answer counted."""
    entry = spec(name)
    path = Path(file) if file else None
    if path is None and local_dir and (Path(local_dir) / entry.local).is_file():
        path = Path(local_dir) / entry.local
    records = read_records(path) if path is not None else _hub_records(entry)
    origin = str(path) if path is not None else f"hub:{entry.hub}"
    rows, excluded = [], []
    for index, raw in enumerate(records):
        row = entry.convert(raw, index)
        if row["answer"] and row["problem"]:
            rows.append(row)
        else:
            excluded.append(row["id"])
    if excluded:
        logger.warning(
            "%s (%s): %d of %d rows have no gold answer or problem and are left out (ids %s)",
            name,
            origin,
            len(excluded),
            len(records),
            excluded[:10],
        )
    duplicates = len(rows) - len({row["id"] for row in rows})
    if duplicates:
        raise InputError(f"{name} ({origin}): {duplicates} duplicate ids")
    return Loaded(name, rows, len(excluded), origin, excluded)


def _dataset(name: str, file: str | None, config: DataConfig, size: int | None, generated: list[dict]) -> Loaded:
    if name == "generator":
        return Loaded(name, generated, 0, "generator")
    if name == "file":
        return Loaded(Path(file).stem, read_rows(file)[:size], 0, str(file))
    loaded = load(name, file, config.local_dir)
    loaded.rows = loaded.rows[:size]
    return loaded


def run_data(
    config: DataConfig,
    pool_path: str | Path,
    test_path: str | Path,
    benchmarks_dir: str | Path,
    manifest_path: str | Path,
) -> dict:
    """The data stage: materialise pool, test set and benchmarks; the manifest counts rows and missing answers."""
    generated_pool, generated_test = (
        generate(config.pool_size or 0, config.test_size or 0, config.seed)
        if "generator" in (config.pool, config.test)
        else ([], [])
    )
    pool = _dataset(config.pool, config.pool_file, config, config.pool_size, generated_pool)
    test = _dataset(config.test, config.test_file, config, config.test_size, generated_test)
    for part in (pool, test):
        if not part.rows:
            raise InputError(f"data.{'pool' if part is pool else 'test'}: {part.origin} has no usable rows")
    overlap = {row["problem"] for row in pool.rows} & {row["problem"] for row in test.rows}
    if overlap:
        raise InputError(f"pool and test set share {len(overlap)} problems, e.g. {sorted(overlap)[0]!r}")
    outputs = {"pool": (pool, Path(pool_path)), "test": (test, Path(test_path))}
    for name in config.benchmarks:
        outputs[name] = (load(name, None, config.local_dir), Path(benchmarks_dir) / f"{name}.jsonl")
    Path(benchmarks_dir).mkdir(parents=True, exist_ok=True)  # an output even when no benchmark is configured
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
    write_json(manifest_path, manifest)
    return manifest


def excluded_ids(manifest_path: str | Path | None, key: str = "pool") -> list[str]:
    """Ids of ``key``'s rows the data stage left out for lack of a gold answer (none without a manifest)."""
    if manifest_path is None or not Path(manifest_path).is_file():
        return []
    return list(read_json(manifest_path).get(key, {}).get("excluded_ids", []))
