"""Grading modes against the official code's verdicts, and grading that is bounded in time in any thread."""

from __future__ import annotations

import json
import threading
import time

import pytest
from conftest import require

from rlvr.grading import bounded, deepscaler, official
from rlvr.rewards import GRADING_MODES, REWARDS, deepscaler_accuracy_reward, extract_answer, grade
from rlvr.templates import QWEN25_MATH_COT, TRAIN_SUFFIX

# What the paper's rollouts see (Qwen2.5-Math's chat template adds the default system message): the scorer
# grades this prompt followed by the response, so a response without a box meets the prompt's empty box.
TRAIN_PROMPT = QWEN25_MATH_COT.replace("{question}", f"A problem. {TRAIN_SUFFIX}")


def _cases() -> list[dict]:
    path = require("docs/grader_cases.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _disagreements(score, verdict: str) -> list[tuple[int, str, str, float]]:
    return [(i, c["completion"], c["gold"], s) for i, c in enumerate(_cases()) if (s := score(c)) != c[verdict]]


def test_official_mode_agrees_with_the_official_evaluation():
    cases = _cases()
    assert len(cases) == 40
    wrong = _disagreements(lambda c: grade(c["completion"], c["gold"], "official"), "official_eval")
    assert not wrong, wrong  # the issue asks for >= 39 of 40; all 40 agree


def test_deepscaler_reward_agrees_with_the_official_training_scorer():
    def score(case: dict) -> float:
        return deepscaler_accuracy_reward([case["completion"]], [case["gold"]], prompts=[TRAIN_PROMPT])[0]

    wrong = _disagreements(score, "official_train")
    assert not wrong, wrong


@pytest.mark.parametrize(
    ("completion", "gold", "expected"),
    [
        ("so \\boxed{0.35}", "35\\%", (1.0, 0.0)),  # official: percent x100/÷100; the scorer: an int needs an int
        ("I get \\boxed{12{,}500}", "12500", (0.0, 1.0)),  # the harness's parser cannot read {,}
        ("\\boxed{3\\frac{1}{2}}", "\\frac{7}{2}", (0.0, 1.0)),  # 3 x 1/2 for the harness; the scorer: 3 + 1/2
        ("\\boxed{\\frac{6}{10}}", "\\frac{3}{5}", (1.0, 0.0)),  # the scorer wants reduced fractions
        ("The answer is 256.", "256", (1.0, 0.0)),  # no box: the scorer sees only the prompt's empty box
        ("\\boxed{\\text{five}}", "5", (1.0, 0.0)),  # normalised twice: \text{five} -> five -> 5
        ("\\boxed{x \\in [1,4]}", "[1,4]", (1.0, 0.0)),  # the harness drops x\\in, the scorer does not
        ("In total 42 apples.<|im_end|>\nUser: and 43", "42", (1.0, 0.0)),  # cut at the stop string
    ],
)
def test_official_and_training_scorer_differ_where_the_rules_say(completion, gold, expected):
    got = (grade(completion, gold, "official"), deepscaler_accuracy_reward([completion], [gold], [TRAIN_PROMPT])[0])
    assert got == expected


def test_official_extraction_order_and_minerva_units():
    assert extract_answer("final answer is $7$. I hope it is correct. \\boxed{3}", "official") == "7"
    assert extract_answer("so $\\boxed 9$.", "official") == "9"
    assert extract_answer("the answer is 5 apples", "official") == "5"  # unit words go...
    assert extract_answer("the answer is 5 apples", "official", dataset="minerva_math") == "5apples"  # ...not here
    assert official.normalise_gold("27.0") == "27"


def test_official_letter_rules():
    assert grade("I pick (C) because", "C", "official") == 1.0
    assert grade("no letters at all", "", "official") == 1.0  # an empty gold accepts any answer without A-E
    assert grade("so \\boxed{B}", "", "official") == 0.0  # ...but not one whose answer holds one


def test_deepscaler_boxes():
    assert deepscaler.last_boxed("a \\boxed{1} b \\boxed{\\frac{1}{2}}") == "\\frac{1}{2}"
    assert deepscaler.last_boxed("\\boxed 9") is None and deepscaler.last_boxed("\\boxed{9") is None
    assert deepscaler_accuracy_reward(["\\boxed{12.8}"], ["\\boxed{12.8}"]) == [1.0]  # a boxed gold is unboxed
    assert deepscaler_accuracy_reward(["no box"], [""]) == [0.0]  # without a prompt there is no box at all
    assert deepscaler_accuracy_reward(["no box"], [""], [TRAIN_PROMPT]) == [1.0]


def test_every_mode_and_reward_is_registered():
    assert GRADING_MODES == ("strict", "lenient", "official")
    assert {"accuracy", "accuracy_lenient", "accuracy_deepscaler", "format"} <= set(REWARDS)
    with pytest.raises(ValueError, match="grading mode"):
        grade("x", "1", "loose")


def hostile_answers(count: int) -> list[str]:
    """Answers a model under RL could write that would make sympy run for ever, or grading choke."""
    kinds = [
        lambda i: f"\\boxed{{9^{{9^{{9^{{{99 + i}}}}}}}}}",
        lambda i: f"\\boxed{{({10 + i}^{{100}})!}}",
        lambda i: f"\\boxed{{{i + 2}^{{{10**8 + i}}}}}",
        lambda i: "\\boxed{" + "(" * 200 + f"x+{i}" + ")" * 200 + "}",
        lambda i: "\\boxed{" + "\\sqrt{" * 100 + str(i + 2) + "}" * 100 + "}",
        lambda i: "the answer is " + "9" * 100_000 + f" {i}x",
        lambda i: f"\\boxed{{\x00\x07{i}\x1b[31m}}",
        lambda i: f"\\boxed{{{i + 2}^{i + 2}^{i + 2}^{i + 2}}}",
        lambda i: "answer is " * 10_000 + f"\\boxed{{10^{{10^{{{i + 10}}}}}}}",
        lambda i: f"\\boxed{{\\frac{{1}}{{0}}+{i + 2}!^{{{i + 3}}}!}}",
    ]
    return [kinds[i % len(kinds)](i) for i in range(count)]


def test_a_thousand_hostile_answers_graded_from_a_thread_are_bounded_and_wrong():
    answers = hostile_answers(1000)
    results: list[float] = []
    before = bounded.stats()

    def work() -> None:
        for text in answers:
            results.extend(grade(text, "1", mode) for mode in GRADING_MODES)
            results.extend(deepscaler_accuracy_reward([text], ["1"], [TRAIN_PROMPT]))

    worker = threading.Thread(target=work, daemon=True)
    started, ticks = time.monotonic(), 0
    worker.start()
    while worker.is_alive() and time.monotonic() - started < 300:
        time.sleep(0.05)
        ticks += 1  # the main thread keeps running meanwhile
    elapsed = time.monotonic() - started
    assert not worker.is_alive(), "grading did not finish within 300 s"
    assert len(results) == 4000 and set(results) == {0.0}
    assert ticks >= elapsed / 0.05 * 0.5  # the main thread was not starved
    after = bounded.stats()
    assert after["refused"] - before["refused"] > 0  # counted, never silent
    print(f"1,000 hostile answers x 4 gradings in a thread: {elapsed:.1f} s, {after} (before: {before})")


def test_a_check_that_runs_too_long_is_killed_and_counted(monkeypatch):
    """The worker is the backstop for what the screen lets through: a check over the limit counts as wrong."""
    monkeypatch.setattr(bounded, "refusal", lambda text: None)  # let the tower through to sympy
    before = bounded.stats()["timeouts"]
    started = time.monotonic()
    assert not bounded.check("official_symbolic", "9^{9^{9^{99}}}", "1", timeout=1.0)
    assert time.monotonic() - started < 30  # the 1 s limit (and a fresh worker for the next check)
    assert bounded.stats()["timeouts"] == before + 1
    assert bounded.check("official_symbolic", "\\frac{1}{2}", "0.5")  # the restarted worker answers again
