"""The dataset catalogue: the paper's benchmarks and pools by name, each with its Hub source and its local file.

Every entry turns its raw rows into the normalised schema (``id``, ``problem``, ``answer``, ``source`` plus
entry-specific fields). The gold answer lives in a different field in each source; an entry's ``gold``
function finds it. Rows whose gold answer cannot be found are counted and reported, never silently dropped.

A dataset is read from, in order: an explicit file, ``<local_dir>/<entry.local>`` when that file exists,
or the Hugging Face Hub (``entry.hub``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from rlvr.config import OwnFile
from rlvr.errors import InputError
from rlvr.files import normalise, read_records, verl_gold, verl_id, verl_problem
from rlvr.generator import SUITES, suite
from rlvr.grading.mathverify import last_boxed

logger = logging.getLogger(__name__)


def _text(value) -> str:
    return "" if value is None else str(value).strip()


def _answer_field(row: dict) -> str:
    return _text(row.get("answer"))


def _minerva_gold(row: dict) -> str:
    return _text(last_boxed(_text(row.get("solution")))) or _answer_field(row)


def _after_hashes(text: str) -> str:
    """GSM8K's rule: the final answer is the text after ``####`` of a worked solution, thousands commas removed."""
    return text.split("####")[-1].strip().replace(",", "") if "####" in text else ""


def _strip_dollars(text: str) -> str:
    return text.strip("$").strip()


_UNIT = re.compile(r"^(.*?\S)\s*\([A-Za-z][A-Za-z .]*\)$")  # "9 (apples)"
_WHOLE_FLOAT = re.compile(r"^(-?\d+)\.0+$")  # "43.0"

# The rules the registry's entries clean gold answers with, by name: a file of one's own names them (``clean``).
ANSWER_RULES: dict[str, Callable[[str], str]] = {
    "after_hashes": _after_hashes,
    "drop_unit": lambda text: match.group(1) if (match := _UNIT.match(text)) else text,
    "strip_dollars": _strip_dollars,
    "integer_float": lambda text: _WHOLE_FLOAT.sub(r"\1", text),
}


def _olympiad_gold(row: dict) -> str:
    """The official evaluation's rule: the first entry of ``final_answer``, ``$`` stripped."""
    answers = row.get("final_answer")
    if isinstance(answers, str):
        answers = [answers]
    answers = [a for a in (answers if answers is not None else []) if _text(a)]
    return _strip_dollars(_text(answers[0])) if answers else ""


def _gsm8k_gold(row: dict) -> str:
    return _after_hashes(_text(row.get("answer")))


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
    """One named dataset: where it lives (a local file, the Hub, or the embedded generator) and how its raw rows
    become normalised rows."""

    name: str
    kind: str  # "benchmark" or "pool"
    local: str = ""  # path relative to a local data directory
    hub: str = ""
    hub_split: str = "test"
    hub_config: str | None = None
    gold: Callable[[dict], str] = _answer_field
    problem: Callable[[dict], str] = _plain_problem
    row_id: Callable[[dict, int], str] = _plain_id
    extras: tuple[str, ...] = ()
    generated: bool = False  # a held-out suite of the embedded generator (``rlvr.generator.SUITES``)

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
            name="math500",
            kind="benchmark",
            local="benchmarks/math500.jsonl",
            hub="HuggingFaceH4/MATH-500",
            extras=("subject", "level"),
        ),
        DatasetSpec(name="aime24", kind="benchmark", local="benchmarks/aime24.jsonl", hub="HuggingFaceH4/aime_2024",
                    hub_split="train"),
        DatasetSpec(name="aime25", kind="benchmark", local="benchmarks/aime25.jsonl", hub="math-ai/aime25"),
        DatasetSpec(name="amc23", kind="benchmark", local="benchmarks/amc23.jsonl", hub="math-ai/amc23"),
        DatasetSpec(
            name="minerva_math",
            kind="benchmark",
            local="benchmarks/minerva_math.jsonl",
            hub="math-ai/minervamath",
            gold=_minerva_gold,
            extras=("type",),
        ),
        DatasetSpec(
            name="olympiadbench",
            kind="benchmark",
            local="benchmarks/olympiadbench.jsonl",
            hub="Hothan/OlympiadBench",
            hub_split="train",
            hub_config="OE_TO_maths_en_COMP",
            gold=_olympiad_gold,
            extras=("subfield", "answer_type"),
        ),
        DatasetSpec(name="gsm8k", kind="benchmark", local="benchmarks/gsm8k.jsonl", hub="openai/gsm8k",
                    hub_config="main", gold=_gsm8k_gold),
        *(
            DatasetSpec(
                name=f"arc_{level}",
                kind="benchmark",
                local=f"benchmarks/arc_{level}.jsonl",
                hub="allenai/ai2_arc",
                hub_config=f"ARC-{level.title()}",
                gold=_arc_gold,
                problem=_arc_problem,
                extras=("choices",),
            )
            for level in ("easy", "challenge")
        ),
        DatasetSpec(
            name="dsr_sub",
            kind="pool",
            local="pools/dsr_sub.parquet",
            hub="ypwang61/one_shot_rlvr",
            hub_split="train",
            gold=verl_gold,
            problem=verl_problem,
            row_id=verl_id,
        ),
        *(DatasetSpec(name=name, kind="benchmark", generated=True) for name in SUITES),
    )
}  # fmt: skip
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


# Fields whose name says they are part of a problem's text: a file whose problem leaves them out is refused.
PROBLEM_PARTS = ("body", "context", "passage", "background", "story", "premise")
ANSWER_WORDS = 4  # an answer with this many words of letters is prose (a worked solution), not a math answer


def unreadable(answer: str) -> str | None:
    """Why the grader cannot read ``answer`` as a math answer, with the setting that would fix it (None: it can)."""
    if "####" in answer:
        return "a worked solution ending in #### ANSWER: say clean: [after_hashes] (or format: gsm8k)"
    if _UNIT.match(answer):
        return "a number with a unit in parentheses: say clean: [drop_unit]"
    if len(re.findall(r"[A-Za-z]{2,}", re.sub(r"\\[A-Za-z]+", "", answer))) >= ANSWER_WORDS or len(answer) > 100:
        return "a text, not an answer: name the answer's field (answer: ...) or clean it (clean: [...])"
    return None


def _described(records: list[dict], entry: OwnFile, name: str) -> list[dict]:
    """``records`` in the normalised schema, read as ``entry`` describes them; a row missing a named field, a field
    left out of the problem that looks part of it, or an answer the grader cannot read is refused, with its row."""
    if entry.format is not None:
        return [replace(spec(entry.format), name=name).convert(raw, i) for i, raw in enumerate(records)]
    if records and entry.problem is None and "reward_model" in records[0]:  # verl rows
        return [normalise(raw, i, name, entry.file) for i, raw in enumerate(records)]
    rows = []
    for index, raw in enumerate(records):
        fields = entry.problem_fields or ["problem" if "problem" in raw else "question"]
        wanted = [*fields, entry.answer or "answer"]
        if missing := [key for key in wanted if key not in raw]:
            where = f"{entry.file} row {index}: no field {missing[0]!r} (its fields: {', '.join(raw)})"
            raise InputError(f"{where}: say which make the problem and which holds the answer (problem, answer)")
        if left := [key for key in raw if key.lower() in PROBLEM_PARTS and key not in fields]:
            raise InputError(f"{entry.file}: rows hold a {left[0]!r} field the problem leaves out (problem: "
                             f"{fields}); to include it, say problem: [{', '.join([left[0], *fields])}]")  # fmt: skip
        answer = _text(raw[wanted[-1]])
        for rule in entry.clean:
            answer = ANSWER_RULES[rule](answer)
        if answer and (reason := unreadable(answer)):
            raise InputError(f"{entry.file} row {index}: the answer {answer[:60]!r} is {reason}")
        row = {"id": _plain_id(raw, index), "problem": " ".join(_text(raw[key]) for key in fields), "answer": answer}
        rows.append(row | {"source": name})
    return rows


def load_own(entry: OwnFile | str, name: str, size: int | None = None) -> Loaded:
    """A dataset file of the user's own (``entry``: its description, or just its path), with the registry's rules:
    rows without a gold answer counted and left out, duplicate ids refused, the first ``size`` rows kept."""
    entry = OwnFile(file=entry) if isinstance(entry, str) else entry
    rows, excluded = [], []
    for row in _described(read_records(Path(entry.file)), entry, name):
        (rows if row["answer"] and row["problem"] else excluded).append(row)
    if excluded:
        logger.warning("%s (%s): %d rows have no gold answer and are left out", name, entry.file, len(excluded))
    if len({row["id"] for row in rows}) != len(rows):
        raise InputError(f"{name} ({entry.file}): duplicate ids")
    return Loaded(name, rows[:size], len(excluded), entry.file, [row["id"] for row in excluded])


def load(
    name: str,
    file: str | Path | None = None,
    local_dir: str | Path | None = None,
    suite_size: int = 128,
    suite_seed: int = 1,
    suite_split: str = "test",
) -> Loaded:
    """The dataset ``name`` from ``file``, else ``local_dir``, else the Hub (a generated suite: ``suite_size``
    problems of ``suite_seed`` and ``suite_split``); rows without a gold answer counted."""
    entry = spec(name)
    if entry.generated:
        rows = suite(name, suite_size, suite_seed, suite_split)
        return Loaded(name, rows, 0, f"generator:{name}:seed={suite_seed}:{suite_split}")
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
