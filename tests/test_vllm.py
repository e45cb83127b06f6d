"""The vllm evaluation backend on vLLM's CPU build (``make setup-vllm``), against the transformers backend on the
embedded model: the same greedy completions in float32, sampled protocols reproducible by seed, stop strings
cut where the official harness cuts. One engine serves the module (an engine start costs seconds to minutes).
Where vLLM is not installed these tests skip, except under ``CI=true``, where they fail."""

from __future__ import annotations

import os

import pytest
from conftest import require_vllm

from rlvr.config import EvaluateConfig, ModelConfig
from rlvr.metrics import Protocol

pytestmark = pytest.mark.integration

TOKENS = 48
STOP = [*EvaluateConfig().stop, "="]  # the official stop strings and one the embedded model writes early


@pytest.fixture(scope="module")
def engine(embedded_model):
    """vLLM's CPU engine on the embedded model in float32, with the stop strings above."""
    require_vllm()
    from rlvr.backends import make_backend

    config = EvaluateConfig(backend="vllm", dtype="float32", stop=STOP, max_new_tokens=TOKENS, batch_size=16)
    backend = make_backend("vllm", embedded_model, config)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def prompts(engine):
    """Sixteen arith1 validation problems rendered with the embedded default's chat template."""
    from rlvr.generator import suite
    from rlvr.templates import get_template

    template = get_template("chat")
    rows = suite("arith1", 16, 1, "validation")
    return [template.render(row["problem"], ModelConfig(), engine.tokenizer) for row in rows]


def test_vllm_greedy_float32_equals_the_transformers_backend(engine, prompts, embedded_model):
    from rlvr.backends import TransformersBackend

    reference = TransformersBackend(embedded_model, 16, STOP, "float32")
    expected = [samples[0] for samples in reference.generate(prompts, Protocol(), TOKENS, 0)]
    got = [samples[0] for samples in engine.generate(prompts, Protocol(), TOKENS, 0)]
    assert [c.text for c in got] == [c.text for c in expected]
    assert [(c.finish, c.tokens) for c in got] == [(c.finish, c.tokens) for c in expected]
    assert {c.finish for c in got} >= {"stop"}  # the comparison covers answers a stop string ended


def test_vllm_cuts_at_the_first_stop_string_and_drops_it(engine, prompts, embedded_model):
    """As vLLM's ``SamplingParams(stop=...)`` in the official harness: the text ends before the first stop string,
    which is not included; the unstopped continuation (transformers, no stop strings) starts with text + stop."""
    from rlvr.backends import TransformersBackend

    unstopped = TransformersBackend(embedded_model, 16, [], "float32")
    full = [samples[0].text for samples in unstopped.generate(prompts, Protocol(), TOKENS, 0)]
    stopped = 0
    for completion, whole in zip(engine.generate(prompts, Protocol(), TOKENS, 0), full, strict=True):
        text = completion[0].text
        assert not any(stop in text for stop in STOP)
        if completion[0].finish == "stop" and whole != text:
            assert any(whole.startswith(text + stop) for stop in STOP), (text, whole)
            stopped += 1
    assert stopped >= 4


def test_vllm_sampling_gives_n_completions_reproducible_by_seed(engine, prompts):
    protocol = Protocol(num_samples=4, temperature=0.6, top_p=0.95)
    first = engine.generate(prompts[:4], protocol, 16, seed=1)
    again = engine.generate(prompts[:4], protocol, 16, seed=1)
    other = engine.generate(prompts[:4], protocol, 16, seed=2)
    assert [len(samples) for samples in first] == [4, 4, 4, 4]
    texts = [[c.text for c in samples] for samples in first]
    assert texts == [[c.text for c in samples] for samples in again]
    assert texts != [[c.text for c in samples] for samples in other]
    assert any(len(set(samples)) > 1 for samples in texts)  # samples of one prompt differ: it does sample


def _resident_bytes() -> int:
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_closing_an_engine_frees_its_kv_cache(tiny_model):
    """Checkpoints' engines run one after the other in the evaluating process: each closed one gives its KV cache
    back (at least 1 GB each here), or a run of checkpoints runs out of memory."""
    require_vllm()
    from rlvr.backends import make_backend

    config = EvaluateConfig(backend="vllm", dtype="float32", max_new_tokens=TOKENS, batch_size=16, enforce_eager=True)
    make_backend("vllm", tiny_model, config).close()  # the first start loads vLLM's own modules and kernels
    before = _resident_bytes()
    for _ in range(3):
        make_backend("vllm", tiny_model, config).close()
    assert _resident_bytes() - before < 2**30
