"""The paper rehearsal: every preset of ``configs/paper/`` end to end in miniature on CPU, so the first GPU user is
not the presets' first tester.

Each preset runs every stage (the same ``rlvr.stages.run`` both runners call) with ``--set`` overrides that only
shrink it or move it off the GPU: the tiny model (the embedded model's tokenizer and chat template, random weights)
in place of the preset's, a few problems of each benchmark
from ``../shared/data``, the first DSR-sub rows as the pool with a history file in the official format, two
training steps and one checkpoint, short answers, TRL generating the rollouts. Everything else is the preset's own:
templates, rewards, loss, the evaluation protocols, stop strings, grading, the paper comparison, and the evaluation
backend, vLLM (its CPU build here, ``make setup-vllm``; one engine per checkpoint, started without compiled graphs).
A preset that cannot run so fails with its reason; none is skipped.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest
from conftest import require, require_vllm
from helpers import PRESETS
from scipy.stats import binomtest

from rlvr import stages, tracking
from rlvr.config import load_params, parse_overrides, read_params_values
from rlvr.files import read_json, read_records, read_rows, write_json
from rlvr.stages.report.tables import PAPER_BENCHMARKS, average_of, load_reference, reference_for

pytestmark = pytest.mark.rehearsal

POOL_SIZE = 16  # the first DSR-sub rows (ids 0..15, all with a gold answer)
PROBLEMS = 2  # per benchmark
ANSWER_TOKENS = 16
STEPS = 2
ROLLOUTS = 2  # per prompt in training (the presets' 8 would only make the two steps slower)
OFFICIAL_STOP = ["</s>", "<|im_end|>", "<|endoftext|>"]
# PAPER.md's protocols: greedy for MATH500, Minerva and OlympiadBench; avg@8 at temperature 0.6 for AIME24,
# AIME25 and AMC23; R1-Distill at temperature 0.6 and top_p 0.95, avg@16 (avg@64 on the small AIME/AMC sets)
PAPER_PROTOCOL = {name: (1, 0.0, 1.0) for name in ("math500", "minerva_math", "olympiadbench")}
PAPER_PROTOCOL |= {name: (8, 0.6, 1.0) for name in ("aime24", "aime25", "amc23")}
R1_PROTOCOL = {name: (16, 0.6, 0.95) for name in ("math500", "minerva_math", "olympiadbench")}
R1_PROTOCOL |= {name: (64, 0.6, 0.95) for name in ("aime24", "aime25", "amc23")}


RANKED = {"1": ["9"], "13": ["5"], "1,13": ["9", "5"]}  # the examples of each preset's ranks in that history


def official_format_history(path: Path) -> None:
    """A history of the first pool rows in the official format (``{id: [accuracy per epoch]}``), each example
    alternating around 0.5 by its own width, ``(7 * id) % 16 / 32``, so its standard deviation is that width and
    the ranks are known: pi_1 is id 9 (width 15), pi_13 id 5 (width 3)."""
    width = {str(i): (7 * i) % POOL_SIZE / 32 for i in range(POOL_SIZE)}  # distinct: no ties
    write_json(path, {key: [0.5 + (-1) ** epoch * w for epoch in range(8)] for key, w in width.items()})


def miniature(preset: Path, model: Path, data: Path, history: Path, work: Path) -> list[str]:
    """The ``--set`` overrides that run ``preset`` in miniature here (what each one changes, and why)."""
    values = read_params_values(preset)
    rollouts = min(values["train"]["num_generations"], ROLLOUTS)  # PPO: 1
    overrides = [
        f"model.source={model}",  # the tiny model for the preset's
        f"report.reference_model={values['model']['source']}",  # ... still compared with the preset model's numbers
        f"data.local_dir={data}",
        f"data.pool_size={POOL_SIZE}",
        f"history.file={history}",
        f"evaluate.limit={PROBLEMS}",
        f"evaluate.max_new_tokens={ANSWER_TOKENS}",
        "evaluate.enforce_eager=true",  # the preset's vllm backend (its CPU build here); an engine starts faster
        "evaluate.batch_size=64",
        f"train.max_steps={STEPS}",
        f"train.save_steps={STEPS}",
        "train.sample_steps=0",
        "train.max_completion_length=8",
        f"train.num_generations={rollouts}",
        f"train.per_device_train_batch_size={rollouts}",
        "train.prompts_per_step=1",  # one prompt per step
        "train.use_vllm=false",  # no GPU: TRL generates the rollouts
        "train.num_processes=1",
        "train.accelerate_config=null",
        f"mlflow.tracking_uri=sqlite:///{work / 'mlflow.db'}",
    ]
    if values["select"]["ranks"] == "1-1208":  # the whole pool: here the whole miniature pool
        overrides.append(f"select.ranks=1-{POOL_SIZE}")
    return overrides


@pytest.fixture(scope="module")
def rehearsal_inputs(tmp_path_factory, tiny_model) -> dict:
    history = tmp_path_factory.mktemp("rehearsal") / "acc_step_500.json"
    official_format_history(history)
    return {"model": tiny_model, "data": require("data"), "history": history}


def _by_hand(samples: list[dict], key: str) -> float:
    """A benchmark's score from its samples: the mean over problems of the mean over each problem's samples."""
    by_problem: dict[int, list[float]] = {}
    for sample in samples:
        by_problem.setdefault(sample["problem_index"], []).append(float(sample[key]))
    return statistics.fmean(statistics.fmean(values) for values in by_problem.values())


@pytest.mark.parametrize("preset", PRESETS, ids=[p.stem for p in PRESETS])
def test_each_paper_preset_runs_end_to_end_in_miniature(preset, rehearsal_inputs, tmp_path, monkeypatch):
    require_vllm()
    inputs = rehearsal_inputs
    overrides = miniature(preset, inputs["model"], inputs["data"], inputs["history"], tmp_path)
    original = load_params(preset)  # from the repository root: its accelerate config is checked
    params = load_params(preset, parse_overrides(overrides))
    monkeypatch.chdir(tmp_path)  # the outputs and the MLflow store in this test's folder
    with tracking.parent_run(params.mlflow, f"rehearsal-{preset.stem}", "rehearsal") as parent:
        for name in stages.NAMES:
            stages.run(name, params, parent)
    paths = params.paths

    # the examples the preset asks for, ranked by the official rule on the official-format history
    selected = list(dict.fromkeys(row["id"] for row in read_rows(paths.selection)))
    expected_ids = RANKED.get(original.select.ranks)
    if expected_ids is not None:
        assert selected == expected_ids
    else:  # the whole pool
        assert sorted(selected, key=int) == [str(i) for i in range(POOL_SIZE)]

    # per benchmark: the preset's protocol, stop strings and token budget, with every sample where it belongs
    protocols = R1_PROTOCOL if original.model.template == "r1-distill" else PAPER_PROTOCOL
    names = original.data.benchmark_names
    assert names == list(PAPER_BENCHMARKS) and original.data.test == "math500"
    by_step = read_json(Path(paths.eval_dir) / "by_step.json")
    assert [row["step"] for row in by_step] == [0, STEPS]
    for row in by_step:
        step = row["step"]
        scores, halves = {}, {}
        for name in names:
            result = read_json(Path(paths.eval_dir) / "steps" / f"step-{step}" / f"{name}.json")
            num_samples, temperature, top_p = protocols[name]
            assert result["protocol"] == {"num_samples": num_samples, "temperature": temperature, "top_p": top_p}
            assert result["generation"]["stop"] == OFFICIAL_STOP == original.evaluate.stop
            assert result["generation"]["max_new_tokens"] == ANSWER_TOKENS and not result["generation"]["loop_stop"]
            assert result["generation"]["backend"] == original.evaluate.backend == "vllm"
            samples = read_records(Path(paths.eval_dir) / "samples" / f"step-{step}" / f"{name}.jsonl")
            assert len(samples) == PROBLEMS * num_samples and result["samples_per_problem"] == num_samples
            assert all(s["length"] <= ANSWER_TOKENS and s["cut"] == (s["finish"] == "length") for s in samples)
            assert not any(stop in s["completion"] for s in samples for stop in OFFICIAL_STOP)
            scores[name] = _by_hand(samples, f"correct_{original.report.headline_mode}")
            assert row[f"{name}.accuracy_official"] == pytest.approx(scores[name])
            halves[name] = (result["accuracy_official_high"] - result["accuracy_official_low"]) / 2
            if num_samples == 1:  # Wilson's interval, computed here with scipy
                wilson = binomtest(round(scores[name] * PROBLEMS), PROBLEMS).proportion_ci(method="wilson")
                assert halves[name] == pytest.approx((wilson.high - wilson.low) / 2, abs=1e-6)
        # the average is the plain mean over the paper's six, by hand from the samples; its interval combines the
        # six halves in quadrature, which tells six from any five even where every answer is wrong (as a random
        # model's are): greedy benchmarks of 2 problems have wide intervals, sampled ones narrow
        assert row["average.accuracy_official"] == pytest.approx(statistics.fmean(scores.values()))
        half = math.sqrt(sum(h**2 for h in halves.values())) / len(names)
        assert row["average.accuracy_official_high"] == pytest.approx(row["average.accuracy_official"] + half)
        five = [math.sqrt(sum(h**2 for n, h in halves.items() if n != left)) / 5 for left in names]
        assert all(abs(f - half) > 1e-3 for f in five)  # leaving one benchmark out would show

    # the best checkpoint: the one rule, in metrics.json, the registry and the report
    metrics = read_json(Path(paths.eval_dir) / "metrics.json")
    assert metrics["average_of"] == names and metrics["headline_mode"] == "official"
    candidates = [row for row in by_step if row["step"] > 0]
    best = max(candidates, key=lambda r: (r["average.accuracy_official"], -r["step"]))
    assert metrics["best"]["step"] == best["step"] == STEPS
    report = (Path(paths.report_dir) / "report.md").read_text()
    assert f"at step {STEPS}" in report and average_of(names) in report

    # the paper comparison lines up the paper's row with the run's: same model, setting, benchmark, number
    summary = read_json(Path(paths.report_dir) / "summary.json")
    assert summary["findings"] and summary["main_table"]["rows"]
    section = report.split("## Difference from the paper")[1].split("\n## ")[0]
    lines = [line.split(" | ") for line in section.splitlines() if line.startswith("| ") and "---" not in line][1:]
    setting = (
        "dsr_sub"
        if expected_ids is None
        else "{" + ", ".join(f"pi_{r}" for r in original.select.ranks.split(",")) + "}"
    )
    algorithm = original.train.algorithm
    for label, step in (("base", 0), (setting, STEPS)):
        paper = reference_for(original.model.source, label, algorithm, load_reference())
        assert paper is not None, f"the paper reports no {label} row for {original.model.source} ({algorithm})"
        row = next(r for r in by_step if r["step"] == step)
        for bench, number in paper.items():
            measured = (statistics.fmean(row[f"{n}.accuracy_official"] for n in PAPER_BENCHMARKS) if bench == "average"
                        else row[f"{bench}.accuracy_official"])  # fmt: skip
            shown = average_of(list(PAPER_BENCHMARKS)) if bench == "average" else bench
            cells = next(c for c in lines if c[1] == label and c[2] == shown)
            assert float(cells[3]) == pytest.approx(100 * measured, abs=0.05)
            assert float(cells[4]) == number and math.isclose(float(cells[5].rstrip(" |")), float(cells[3]) - number,
                                                               abs_tol=0.06)  # fmt: skip
    json.dumps(summary)  # the summary other views read is plain JSON
