import pytest

from rlvr import backends
from rlvr.backends import compute_dtype, vllm_sampling_kwargs
from rlvr.metrics import (
    Protocol,
    breakdown,
    ends_in_loop,
    loops,
    majority_correct,
    pass_at_k,
    protocol_for,
    self_reflects,
    summarise,
)


@pytest.mark.parametrize(("n", "c", "k", "expected"), [(8, 0, 8, 0.0), (8, 1, 8, 1.0), (5, 2, 2, 0.7), (4, 1, 1, 0.25)])
def test_pass_at_k_is_the_unbiased_estimator(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)


def test_majority_vote_counts_extracted_answers_first_seen_wins_ties():
    assert majority_correct(["2", "3", "3", None], [True, False, False, False]) is False
    assert majority_correct(["2", "3", "2 ", None, None], [True, False, True, False, False]) is True
    assert majority_correct(["3", "2"], [False, True]) is False  # tie: the first seen
    assert majority_correct([None, None], [False, False]) is False


def test_loops_and_self_reflection_are_detected():
    assert ends_in_loop("Let x = 2. " + "So the answer is 4. " * 5)
    assert ends_in_loop("1 + 1 = 2" + "." * 40)
    assert not ends_in_loop("We add 2 and 2 and get \\boxed{4}.")
    assert not ends_in_loop("aaa")  # too short to call a loop
    assert self_reflects("Let me Recheck the sum.") and not self_reflects("Let me check the sum.")


def test_the_loop_stop_sees_loops_through_their_counters():
    counted = "We add them.\n" + "".join(
        f"Step {n}: Determine the number of eggs Quinn found.\n\n" for n in range(9, 14)
    )
    assert loops(counted) and not ends_in_loop(counted)  # the step numbers hide it from the exact rule
    assert loops("So 2 x 3 = 6. " + " ".join(f"Then 2 x {n} = {2 * n} eggs." for n in range(4, 9)))
    assert not loops("Step 1: add 3 and 4.\nStep 2: multiply by 2.\nStep 3: the answer is \\boxed{14}.")
    assert not loops("1, 2, 3, 4, 5")  # a short count is an answer, not a loop (under 60 characters)


def test_the_loop_stop_point_is_the_same_rule_for_every_backend():
    from rlvr.backends import LOOP_CHECK_EVERY, loop_stop_point

    words = ["We", " add", " them", "."] + [" Step", " 1", ":", " go", " on", "."] * 30
    tokens = list(range(len(words)))
    end = loop_stop_point(tokens, lambda ids: "".join(words[i] for i in ids))
    assert end is not None and end % LOOP_CHECK_EVERY == 0 and end < len(tokens)
    assert loops("".join(words[:end])) and not loops("".join(words[: end - LOOP_CHECK_EVERY]))
    assert loop_stop_point(tokens[:20], lambda ids: "".join(words[i] for i in ids)) is None
    # never inside a number: "... = 13 x 1" would be graded on the 1 of a 12 still being written
    numbers = ["Go"] + [" a", " 1", "2", " b", " c"] * 40  # 48 tokens in: "... a 12 b c a 1": not yet
    decode = lambda ids: "".join(numbers[i] for i in ids)  # noqa: E731
    end = loop_stop_point(list(range(len(numbers))), decode)
    assert loops(decode(range(48))) and decode(range(48)).endswith("1")
    assert end == 80 and decode(range(end)).endswith(" b")  # 64 ends in "12" too


def _sample(index, correct, extracted, **extra):
    flags = {"boxed": True, "cut": False, "loop_stopped": False, "repetition": False, "reflection": False, "length": 10}
    return {"problem_index": index, "correct_strict": correct, "extracted_strict": extracted, **flags, **extra}


def test_summary_gives_avg_pass_and_majority_at_k():
    samples = [_sample(0, c, a) for c, a in [(True, "1"), (False, "2"), (False, "2"), (True, "1")]]
    samples += [_sample(1, c, a) for c, a in [(False, "5"), (False, "5"), (False, "6"), (True, "7")]]
    metrics = summarise(samples, ("strict",))
    assert metrics["num_problems"] == 2 and metrics["samples_per_problem"] == 4
    assert metrics["accuracy_strict"] == pytest.approx((2 / 4 + 1 / 4) / 2)  # avg@4
    assert metrics["pass_at_4_strict"] == 1.0
    assert metrics["maj_at_4_strict"] == 0.5  # problem 0: "1" and "2" tie, "1" first and correct; problem 1: "5"
    greedy = summarise([_sample(0, True, "1"), _sample(1, False, "3")], ("strict",))
    assert greedy["accuracy_strict"] == 0.5 and "pass_at_1_strict" not in greedy


def test_breakdown_by_field():
    samples = [_sample(0, True, "1", level="1"), _sample(1, False, "2", level="1"), _sample(2, True, "3", level="5")]
    assert breakdown(samples, "level", ("strict",)) == {
        "1": {"num_problems": 2, "accuracy_strict": 0.5},
        "5": {"num_problems": 1, "accuracy_strict": 1.0},
    }


def test_protocols_default_to_the_papers_and_can_be_overridden():
    assert protocol_for("math500", {}) == Protocol(1, 0.0)
    assert protocol_for("aime24", {}) == Protocol(8, 0.6)
    assert protocol_for("aime24", {"aime24": {"num_samples": 16}}) == Protocol(16, 0.6)
    with pytest.raises(ValueError, match="temperature"):
        protocol_for("math500", {"math500": {"num_samples": 4}})


def test_vllm_sampling_arguments():
    assert vllm_sampling_kwargs(Protocol(8, 0.6, 0.95), 3072, 1) == {
        "n": 8,
        "temperature": 0.6,
        "top_p": 0.95,
        "max_tokens": 3072,
        "seed": 1,
        "stop": [],
        "stop_token_ids": [],
    }
    greedy = vllm_sampling_kwargs(Protocol(), 10, 0, ["</s>", "<|im_end|>"], [151643, 151645])
    assert greedy["temperature"] == 0.0 and greedy["top_p"] == 1.0
    assert greedy["stop"] == ["</s>", "<|im_end|>"] and greedy["stop_token_ids"] == [151643, 151645]


def test_auto_precision_is_bfloat16_only_where_the_hardware_computes_it(monkeypatch):
    import torch

    assert compute_dtype("float32") == "float32" and compute_dtype("bfloat16") == "bfloat16"
    assert compute_dtype("auto", "my_module:MyBackend") == "auto"  # a backend of one's own gets the name
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for native, expected in ((True, "bfloat16"), (False, "float32")):
        monkeypatch.setattr(backends, "cpu_has_native_bf16", lambda native=native: native)
        assert compute_dtype("auto") == compute_dtype("auto", "vllm") == expected  # vLLM's CPU build alike
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert compute_dtype("auto") == "bfloat16"
    assert compute_dtype("auto", "vllm") == "auto"  # vLLM on a GPU: the model's own precision


def test_flat_metric_names_are_valid_mlflow_names():
    from rlvr.stages.evaluate import flat_metrics

    metrics = {"accuracy_strict": 0.5, "benchmark": "x", "by_subject": {"Counting & Probability": {"num_problems": 3}}}
    assert flat_metrics("test", metrics) == {
        "test.accuracy_strict": 0.5,
        "test.by_subject.Counting___Probability.num_problems": 3.0,
    }


def test_intervals_and_paired_tests_against_known_values():
    from scipy.stats import binomtest

    from rlvr.metrics import accuracy_interval, mcnemar_exact, paired_test, wilson_interval

    low, high = wilson_interval(12, 64)
    expected = binomtest(12, 64).proportion_ci(method="wilson")
    assert (low, high) == pytest.approx((expected.low, expected.high), abs=1e-12)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    # exact McNemar: two-sided binomial test on the discordant pairs
    assert mcnemar_exact(3, 12) == pytest.approx(binomtest(3, 15, 0.5).pvalue)
    assert mcnemar_exact(0, 0) == 1.0 and mcnemar_exact(5, 5) == 1.0
    before = {str(i): float(i < 10) for i in range(64)}  # 10 of 64 right
    after = {str(i): float(i < 24) for i in range(64)}  # the same 10 and 14 more: 14 discordant, all gains
    result = paired_test(before, after)
    assert result["gain"] == pytest.approx(14 / 64) and result["p_value"] == pytest.approx(2 * 0.5**14)
    same = paired_test(before, {**before, "30": 1.0, "1": 0.0})  # one gained, one lost
    assert same["gain"] == 0.0 and same["p_value"] == 1.0
    # several samples per problem: a bootstrap interval around the mean, a paired bootstrap p-value
    scores = [0.25, 0.5, 0.75, 1.0] * 16
    low, high = accuracy_interval(scores)
    assert low < sum(scores) / 64 < high and high - low < 0.2
    shifted = paired_test(
        {str(i): s for i, s in enumerate(scores)}, {str(i): min(1.0, s + 0.25) for i, s in enumerate(scores)}
    )
    assert shifted["p_value"] < 0.01


def test_vllm_cpu_settings_bind_every_allowed_core_and_size_the_kv_cache(tmp_path, monkeypatch):
    import json
    import os

    (tmp_path / "config.json").write_text(
        json.dumps({"num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3, "hidden_size": 576})
    )
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 5, 7, 8})
    for key in ("VLLM_CPU_OMP_THREADS_BIND", "VLLM_CPU_KVCACHE_SPACE", "VLLM_ENABLE_V1_MULTIPROCESSING"):
        monkeypatch.delenv(key, raising=False)
    settings = backends.vllm_cpu_settings(tmp_path, 1408, 128, "bfloat16")
    assert settings["VLLM_CPU_OMP_THREADS_BIND"] == "0-2,5,7-8" and settings["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "0"
    # 2 (keys, values) x 30 layers x 3 heads x 64 dims x 2 bytes = 23,040 bytes a token; x 1408 x 128, +25%: 4.8 GiB
    assert settings["VLLM_CPU_KVCACHE_SPACE"] == "5" and settings["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"
    monkeypatch.setattr(os, "sysconf", lambda name: {"SC_PAGE_SIZE": 4096, "SC_PHYS_PAGES": 64 * 2**18}[name])
    assert backends.vllm_cpu_settings(tmp_path, 1408, 128, "float32")["VLLM_CPU_KVCACHE_SPACE"] == "10"
    monkeypatch.setattr(os, "sysconf", lambda name: {"SC_PAGE_SIZE": 4096, "SC_PHYS_PAGES": 8 * 2**18}[name])
    assert backends.vllm_cpu_settings(tmp_path, 1408, 128, "float32")["VLLM_CPU_KVCACHE_SPACE"] == "4"  # half of 8
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "2")  # what the user set is kept
    assert backends.vllm_cpu_settings(tmp_path, 1408, 128, "float32")["VLLM_CPU_KVCACHE_SPACE"] == "2"
