"""Deterministic generators of verifiable arithmetic problems: the embedded default's data.

- :func:`generate`: the candidate pool and a held-out test set of word problems (the training distribution).
- :data:`SUITES`: held-out suites of graded difficulty and kind, like the paper's several benchmarks:
  ``arith1`` (one operation), ``units`` (one unit conversion), ``word1`` (one-step word problems), ``arith2``
  (two operations, with precedence) and ``word2`` (multi-step word problems). Their word problems use other
  names than the pool's, and each kind has its own sentence forms, so no suite problem can be a pool problem
  or another suite's. Each problem also carries ``expression``: the arithmetic its answer is, for checking.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable, Iterator

from rlvr.errors import ConfigError

NAMES = ["Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jo", "Kofi", "Lena"]
ITEMS = ["apples", "pencils", "stickers", "marbles", "books", "coins", "cards", "shells"]
HELDOUT_NAMES = ["Maya", "Noor", "Omar", "Priya", "Quinn", "Rosa", "Sami", "Tara", "Umar", "Vera", "Wen", "Yuki"]
HELDOUT_ITEMS = ["beads", "buttons", "cookies", "eggs", "flowers", "stamps", "toys", "shirts"]
Problem = tuple[str, int, str]  # text, answer, the expression the answer is


def _add_sub(rng: random.Random) -> Problem:
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    a, b = rng.randint(5, 60), rng.randint(2, 40)
    c = rng.randint(1, a + b - 1)
    text = f"{name} has {a} {item}, gets {b} more, then gives away {c}. How many {item} does {name} have now?"
    return text, a + b - c, f"{a} + {b} - {c}"


def _multiply(rng: random.Random) -> Problem:
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    boxes, per_box = rng.randint(2, 12), rng.randint(2, 15)
    text = f"{name} buys {boxes} boxes with {per_box} {item} in each box. How many {item} does {name} buy?"
    return text, boxes * per_box, f"{boxes} * {per_box}"


def _share(rng: random.Random) -> Problem:
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    friends, each = rng.randint(2, 9), rng.randint(2, 12)
    text = (
        f"{name} shares {friends * each} {item} equally among {friends} friends. How many {item} does each friend get?"
    )
    return text, each, f"{friends * each} // {friends}"


def _two_step(rng: random.Random) -> Problem:
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    packs, per_pack, extra = rng.randint(2, 9), rng.randint(2, 10), rng.randint(1, 20)
    text = (
        f"{name} has {packs} packs of {per_pack} {item} and {extra} loose {item}. "
        f"How many {item} does {name} have in total?"
    )
    return text, packs * per_pack + extra, f"{packs} * {per_pack} + {extra}"


TEMPLATES: list[Callable[[random.Random], Problem]] = [_add_sub, _multiply, _share, _two_step]


def _arith1(rng: random.Random) -> Problem:
    kind = rng.randrange(4)
    if kind == 0:
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        return f"What is {a} plus {b}?", a + b, f"{a} + {b}"
    if kind == 1:
        a, b = sorted((rng.randint(2, 99), rng.randint(2, 99)), reverse=True)
        return f"What is {a} minus {b}?", a - b, f"{a} - {b}"
    if kind == 2:
        a, b = rng.randint(2, 12), rng.randint(2, 12)
        return f"What is {a} times {b}?", a * b, f"{a} * {b}"
    b, q = rng.randint(2, 12), rng.randint(2, 12)
    return f"What is {b * q} divided by {b}?", q, f"{b * q} // {b}"


def _arith2(rng: random.Random) -> Problem:
    a, b, c = rng.randint(2, 20), rng.randint(2, 12), rng.randint(2, 12)
    kind = rng.randrange(4)
    if kind == 0:
        return f"Compute {a} + {b} \\times {c}.", a + b * c, f"{a} + {b} * {c}"
    if kind == 1:
        return f"Compute ({a} + {b}) \\times {c}.", (a + b) * c, f"({a} + {b}) * {c}"
    if kind == 2:
        big = b * c + a
        return f"Compute {big} - {b} \\times {c}.", big - b * c, f"{big} - {b} * {c}"
    return f"Compute {a} \\times {b} - {c}.", a * b - c, f"{a} * {b} - {c}"


def _word1(rng: random.Random) -> Problem:
    name, item = rng.choice(HELDOUT_NAMES), rng.choice(HELDOUT_ITEMS)
    kind = rng.randrange(3)
    if kind == 0:
        a, b = rng.randint(3, 50), rng.randint(2, 30)
        return f"{name} had {a} {item} and found {b} more. How many {item} does {name} have?", a + b, f"{a} + {b}"
    if kind == 1:
        a = rng.randint(10, 60)
        b = rng.randint(1, a - 1)
        return f"{name} had {a} {item} and lost {b} of them. How many {item} are left?", a - b, f"{a} - {b}"
    rows, per_row = rng.randint(2, 9), rng.randint(2, 9)
    text = f"{name} puts {item} in {rows} rows of {per_row}. How many {item} are there?"
    return text, rows * per_row, f"{rows} * {per_row}"


def _word2(rng: random.Random) -> Problem:
    name, item = rng.choice(HELDOUT_NAMES), rng.choice(HELDOUT_ITEMS)
    kind = rng.randrange(3)
    if kind == 0:
        a, b = rng.randint(10, 60), rng.randint(2, 30)
        c = rng.randint(1, a + b - 1)
        text = f"{name} owns {a} {item}, receives {b} more and sells {c}. How many {item} does {name} own now?"
        return text, a + b - c, f"{a} + {b} - {c}"
    if kind == 1:
        bags, per_bag, used = rng.randint(2, 8), rng.randint(3, 10), rng.randint(1, 10)
        text = f"{name} fills {bags} bags with {per_bag} {item} each, then uses {used} of them. How many are left?"
        return text, bags * per_bag - used, f"{bags} * {per_bag} - {used}"
    kids, each, spare = rng.randint(2, 7), rng.randint(2, 9), rng.randint(1, 9)
    text = f"{name} gives {each} {item} to each of {kids} children and keeps {spare}. How many {item} were there?"
    return text, kids * each + spare, f"{kids} * {each} + {spare}"


CONVERSIONS = [("meters", "centimeters", 100), ("hours", "minutes", 60), ("kilograms", "grams", 1000),
               ("minutes", "seconds", 60), ("feet", "inches", 12), ("days", "hours", 24), ("weeks", "days", 7),
               ("dollars", "cents", 100), ("yards", "feet", 3), ("dozens", "eggs", 12), ("liters", "milliliters", 1000),
               ("years", "months", 12)]  # fmt: skip


def _units(rng: random.Random) -> Problem:
    large, small, factor = rng.choice(CONVERSIONS)
    count = rng.randint(2, 60)
    return f"How many {small} are in {count} {large}?", count * factor, f"{count} * {factor}"


SUITES: dict[str, Callable[[random.Random], Problem]] = {
    "arith1": _arith1,
    "units": _units,
    "word1": _word1,
    "arith2": _arith2,
    "word2": _word2,
}  # easiest first


def _unique_problems(seed: int, templates: list[Callable[[random.Random], Problem]]) -> Iterator[Problem]:
    rng = random.Random(seed)
    seen: set[str] = set()
    misses = 0
    while True:
        problem = rng.choice(templates)(rng)
        if problem[0] in seen:
            misses += 1
            if misses > 100_000:  # the templates cannot make as many different problems as were asked for
                raise ConfigError(f"the generator has only {len(seen)} different problems of this kind")
            continue
        seen.add(problem[0])
        misses = 0
        yield problem


def _rows(problems: list[Problem], prefix: str, source: str) -> list[dict]:
    return [
        {"id": f"{prefix}-{i}", "problem": text, "answer": str(answer), "source": source, "expression": expression}
        for i, (text, answer, expression) in enumerate(problems)
    ]


def generate(pool_size: int, test_size: int, seed: int) -> tuple[list[dict], list[dict]]:
    """Return (pool, test): disjoint lists of word problems in the normalised schema, the same for the same seed."""
    if pool_size < 0 or test_size < 0:
        raise ConfigError(f"data: pool_size and test_size must be >= 0, got {pool_size} and {test_size}")
    problems = _unique_problems(seed, TEMPLATES)
    drawn = [next(problems) for _ in range(pool_size + test_size)]
    return _rows(drawn[:pool_size], "gen", "generator"), _rows(drawn[pool_size:], "gen-test", "generator")


SPLITS = ("test", "validation")


def suite(name: str, size: int, seed: int, split: str = "test") -> list[dict]:
    """``size`` problems of the held-out suite ``name``, the same for the same seed. Every problem text belongs to
    one ``split`` (by a checksum of the text): settings are tuned on ``validation`` problems, which can never be
    ``test`` problems, whatever the seeds."""
    if size < 1:
        raise ConfigError(f"data.suite_size must be >= 1, got {size}")
    wanted = SPLITS.index(split)
    problems = (p for p in _unique_problems(_suite_seed(name, seed), [SUITES[name]]) if _split_of(p[0]) == wanted)
    prefix = name if split == "test" else f"{name}-{split}"
    return _rows([next(problems) for _ in range(size)], prefix, name)


def _split_of(text: str) -> int:
    return zlib.crc32(text.encode()) % len(SPLITS)


def _suite_seed(name: str, seed: int) -> int:
    """A seed per suite and ``seed`` that does not depend on Python's string hashing (salted per process)."""
    return seed * 1_000_003 + sum(ord(char) * 31**i for i, char in enumerate(name))
