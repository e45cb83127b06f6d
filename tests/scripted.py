"""A generation backend that answers right on a known share of problems per model, for end-to-end checks with
distinct, predictable scores (``evaluate.backend: scripted:ScriptedBackend``).

The base model (step 0) and each checkpoint ``checkpoint-N`` answer right exactly on the problems whose text's
CRC-32 modulo 1,000 is below ``SHARE[N] * 1000``; the gold answers come from the jsonl files matched by the
glob in ``RLVR_SCRIPTED_DATA``. :func:`expected_accuracy` computes the same from the rows, independently.
"""

from __future__ import annotations

import glob
import json
import os
import zlib
from pathlib import Path

SHARE = {0: 0.25, 1: 0.75, 2: 0.5, 3: 0.625}  # the best checkpoint is step 1, not the last


def right(problem: str, step: int) -> bool:
    return zlib.crc32(problem.encode()) % 1000 < SHARE[step] * 1000


def expected_accuracy(rows: list[dict], step: int) -> float:
    return sum(right(row["problem"], step) for row in rows) / len(rows)


class ScriptedBackend:
    def __init__(self, model_dir: str | Path, config) -> None:
        from transformers import AutoTokenizer

        name = Path(model_dir).name
        self.step = int(name.split("-")[1]) if name.startswith("checkpoint-") else 0
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.gold = {}
        for path in glob.glob(os.environ["RLVR_SCRIPTED_DATA"], recursive=True):
            for line in Path(path).read_text().splitlines():
                row = json.loads(line)
                self.gold[row["problem"]] = row["answer"]

    def generate(self, prompts: list[str], protocol, max_new_tokens: int, seed: int) -> list[list[str]]:
        completions = []
        for prompt in prompts:
            problem = max((p for p in self.gold if p in prompt), key=len)
            answer = self.gold[problem] if right(problem, self.step) else f"{self.gold[problem]}0"
            completions.append([f"The answer is \\boxed{{{answer}}}."] * protocol.num_samples)
        return completions


class PlacementBackend:
    """Answers with where and when it ran: the ``CUDA_VISIBLE_DEVICES`` of its process, its process id, and the
    times its generation began and ended (it takes ``PLACEMENT_SECONDS``), for the evaluation's GPU placement test."""

    PLACEMENT_SECONDS = 2.0

    def __init__(self, model_dir: str | Path, config) -> None:
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)

    def generate(self, prompts: list[str], protocol, max_new_tokens: int, seed: int) -> list[list[str]]:
        import time

        began = time.time()
        time.sleep(self.PLACEMENT_SECONDS)
        where = {
            "gpus": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "pid": os.getpid(),
            "began": began,
            "ended": time.time(),
        }
        return [[json.dumps(where)] * protocol.num_samples for _ in prompts]
