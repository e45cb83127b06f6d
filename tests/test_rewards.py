import pytest

from rlvr.rewards import accuracy_reward, extract_answer, format_reward, get_reward, grade, last_boxed


@pytest.mark.parametrize(
    ("completion", "gold", "expected"),
    [
        ("so the total is \\boxed{12}", "12", 1.0),
        ("\\boxed{\\frac{4}{3}}", "4/3", 1.0),
        ("\\boxed{\\frac{4}{3}}", "\\frac{4}{3}", 1.0),
        ("we get \\boxed{\\sqrt{\\frac{1}{2}}}", "\\frac{\\sqrt{2}}{2}", 1.0),
        ("first \\boxed{3} then \\boxed{12.8}", "12.8", 1.0),
        ("first \\boxed{12.8} then \\boxed{3}", "12.8", 0.0),
        ("\\boxed{13}", "12", 0.0),
        ("", "12", 0.0),
        ("the answer is 12", "12", 0.0),
        ("\\boxed{}", "12", 0.0),
        ("\\boxed{12", "12", 0.0),
    ],
)
def test_accuracy_reward_on_literal_strings(completion, gold, expected):
    assert accuracy_reward([completion], [gold]) == [expected]


def test_accuracy_reward_chat_message_form():
    completions = [[{"role": "assistant", "content": "\\boxed{12.8}"}], [{"role": "assistant", "content": "12.8"}]]
    assert accuracy_reward(completions, ["12.8", "12.8"]) == [1.0, 0.0]


def test_accuracy_reward_accepts_trl_keyword_arguments():
    assert accuracy_reward(["\\boxed{5}"], ["5"], id=["a"], trainer_state=None, log_extra=None) == [1.0]


def test_last_boxed_balances_nested_braces():
    assert last_boxed("x \\boxed{\\frac{1}{\\sqrt{2}}} y") == "\\frac{1}{\\sqrt{2}}"
    assert last_boxed("\\fbox{7}") == "7"
    assert last_boxed("no box") is None


def test_lenient_falls_back_to_answer_phrase_then_last_number():
    assert grade("The answer is 42.", "42", "lenient") == 1.0
    assert grade("3 + 4 = 7, so 41", "41", "lenient") == 1.0
    assert grade("The answer is 42.", "42", "strict") == 0.0
    assert extract_answer("nothing here", "lenient") is None


def test_grading_mode_is_checked():
    with pytest.raises(ValueError, match="grading mode"):
        extract_answer("x", "loose")


@pytest.mark.parametrize(
    "nasty",
    [
        "\\boxed{" * 50,
        "}" * 100,
        "\\boxed{\\frac{1}{0}}",
        "\\boxed{" + "9" * 5000 + "}",
        "\\boxed{x^{x^{x^{x}}}}",
        "\x00",
    ],
)
def test_grading_never_raises(nasty):
    assert accuracy_reward([nasty], ["1"]) in ([0.0], [1.0])


def test_lenient_accuracy_reward_needs_no_box():
    assert get_reward("accuracy_lenient")(["so 7 apples", "\\boxed{8}", "8 then 9"], ["7", "8", "8"]) == [1.0, 1.0, 0.0]


def test_format_reward_counts_non_empty_final_box():
    assert format_reward(["\\boxed{wrong}", "\\boxed{}", "none"]) == [1.0, 0.0, 0.0]


def _rewards_named_in(value) -> set[str]:
    """Every reward name a params or matrix file's ``reward`` / ``accuracy_reward`` keys hold, at any depth."""
    names: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("reward", "accuracy_reward") and item is not None:
                names |= {item} if isinstance(item, str) else set(item)
            else:
                names |= _rewards_named_in(item)
    elif isinstance(value, list):
        for item in value:
            names |= _rewards_named_in(item)
    return names


def test_every_reward_the_project_names_resolves_and_scores_a_batch():
    """Each reward named in params.yaml and configs/ resolves and gives one float per completion of a literal batch,
    called as TRL calls it (dataset columns and the trainer state as keywords)."""
    from types import SimpleNamespace

    import yaml
    from conftest import ROOT

    files = [ROOT / "params.yaml", *sorted((ROOT / "configs").rglob("*.yaml"))]
    named = set().union(*(_rewards_named_in(yaml.safe_load(path.read_text())) for path in files))
    assert {"accuracy_lenient", "accuracy_deepscaler", "format", "random"} <= named
    completions = ["so the total is \\boxed{12}", "I think it is 13", "\\boxed{13}"]
    batch = {
        "prompts": ["What is 5 + 7?"] * 3,
        "completions": completions,
        "answer": ["12"] * 3,
        "id": ["a", "a", "a"],
        "trainer_state": SimpleNamespace(global_step=3),
    }
    for name in sorted(named):
        scores = get_reward(name)(**batch)
        assert len(scores) == len(completions) and all(isinstance(x, float) for x in scores), name
    assert get_reward("accuracy_lenient")(**batch) == [1.0, 0.0, 0.0]
    assert get_reward("format")(**batch) == [1.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="unknown reward"):
        get_reward("nope")


def test_random_reward_ignores_the_answer_and_draws_the_same_again():
    from types import SimpleNamespace

    from rlvr.rewards import random_reward

    right, wrong = [f"\\boxed{{{i}}}" for i in range(200)], [f"\\boxed{{{i + 1}}}" for i in range(200)]
    gold = [str(i) for i in range(200)]
    step = SimpleNamespace(global_step=3)
    drawn = random_reward(right, answer=gold, trainer_state=step)
    assert drawn == random_reward(right, answer=gold, trainer_state=step)  # a resumed run draws the same
    assert set(drawn) == {0.0, 1.0} and 70 < sum(drawn) < 130
    assert 70 < sum(random_reward(wrong, answer=gold, trainer_state=step)) < 130  # wrong answers as often
    assert drawn != random_reward(right, answer=gold, trainer_state=SimpleNamespace(global_step=4))
