"""Deterministic generator of verifiable arithmetic word problems (the embedded default's data)."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

NAMES = ["Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jo", "Kofi", "Lena"]
ITEMS = ["apples", "pencils", "stickers", "marbles", "books", "coins", "cards", "shells"]


def _add_sub(rng: random.Random) -> tuple[str, int]:
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    a, b = rng.randint(5, 60), rng.randint(2, 40)
    c = rng.randint(1, a + b - 1)
    text = f"{name} has {a} {item}, gets {b} more, then gives away {c}. How many {item} does {name} have now?"
    return text, a + b - c


def _multiply(rng: random.Random) -> tuple[str, int]:
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    boxes, per_box = rng.randint(2, 12), rng.randint(2, 15)
    text = f"{name} buys {boxes} boxes with {per_box} {item} in each box. How many {item} does {name} buy?"
    return text, boxes * per_box


def _share(rng: random.Random) -> tuple[str, int]:
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    friends, each = rng.randint(2, 9), rng.randint(2, 12)
    text = (
        f"{name} shares {friends * each} {item} equally among {friends} friends. How many {item} does each friend get?"
    )
    return text, each


def _two_step(rng: random.Random) -> tuple[str, int]:
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    packs, per_pack, extra = rng.randint(2, 9), rng.randint(2, 10), rng.randint(1, 20)
    text = (
        f"{name} has {packs} packs of {per_pack} {item} and {extra} loose {item}. "
        f"How many {item} does {name} have in total?"
    )
    return text, packs * per_pack + extra


TEMPLATES: list[Callable[[random.Random], tuple[str, int]]] = [_add_sub, _multiply, _share, _two_step]


def _unique_problems(seed: int) -> Iterator[tuple[str, int]]:
    rng = random.Random(seed)
    seen: set[str] = set()
    while True:
        text, answer = rng.choice(TEMPLATES)(rng)
        if text not in seen:
            seen.add(text)
            yield text, answer


def generate(pool_size: int, test_size: int, seed: int) -> tuple[list[dict], list[dict]]:
    """Return (pool, test): disjoint lists of rows in the normalised schema, the same for the same seed."""
    if pool_size < 0 or test_size < 0:
        raise ValueError(f"data: pool_size and test_size must be >= 0, got {pool_size} and {test_size}")
    problems = _unique_problems(seed)
    rows = [next(problems) for _ in range(pool_size + test_size)]
    pool = [
        {"id": f"gen-{i}", "problem": text, "answer": str(answer), "source": "generator"}
        for i, (text, answer) in enumerate(rows[:pool_size])
    ]
    test = [
        {"id": f"gen-test-{i}", "problem": text, "answer": str(answer), "source": "generator"}
        for i, (text, answer) in enumerate(rows[pool_size:])
    ]
    return pool, test
