import re
import runpy
import sys

import pytest
import yaml
from conftest import ROOT, run_module

from rlvr.config import load_params, merge, parse_overrides, parse_params, read_params_values
from rlvr.errors import ConfigError, InputError
from rlvr.stages import NAMES

PARAMS_FILES = [
    ROOT / "params.yaml",
    *sorted(p for p in (ROOT / "configs").rglob("*.yaml") if not {"accelerate", "matrix"} & set(p.parts)),
]


def test_every_shipped_params_file_loads():
    paths = PARAMS_FILES
    assert len(paths) >= 3
    for path in paths:
        params = load_params(path)
        assert params.train.max_steps >= params.train.save_steps >= 1, path


def test_floats_written_the_yaml_1_1_way_are_read_as_numbers():
    assert parse_params({"train": {"learning_rate": "2e-5"}}).train.learning_rate == pytest.approx(2e-5)


@pytest.mark.parametrize(
    ("values", "name"),
    [
        ({"trian": {}}, "trian"),
        ({"train": {"learning_rat": 1.0}}, "train.learning_rat"),
        ({"paths": {"modle_dir": "x"}}, "paths.modle_dir"),
        ({"train": {"trl": {"not_a_grpo_field": 1}}}, "not_a_grpo_field"),
    ],
)
def test_unknown_keys_are_named(values, name):
    with pytest.raises(ConfigError, match=name):
        parse_params(values)


def test_bad_values_are_named():
    with pytest.raises(ConfigError, match="num_generations"):
        parse_params({"train": {"num_generations": 3, "per_device_train_batch_size": 8}})
    with pytest.raises(ConfigError, match="learning_rate"):
        parse_params({"train": {"learning_rate": "fast"}})


def test_missing_params_file(tmp_path):
    with pytest.raises(InputError, match="nope.yaml"):
        load_params(tmp_path / "nope.yaml")


def test_cli_unknown_key_is_one_line_error_and_nonzero_exit(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"data": {"pool_sise": 3}}))
    result = run_module(tmp_path, "pipelines.data", "--params", "params.yaml")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "data.pool_sise" in result.stderr
    assert not (tmp_path / "outputs").exists()


def test_cli_missing_input_file_is_named(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"mlflow": {"tracking_uri": "sqlite:///m.db"}}))
    result = run_module(tmp_path, "pipelines.select", "--params", "params.yaml", "--history", "missing.json")
    assert result.returncode == 2
    assert "missing.json" in result.stderr.strip().splitlines()[-1]


def test_every_shipped_params_file_holds_the_params_dvc_tracks():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    tracked = {key for stage in stages.values() for key in stage.get("params", [])}
    for path in PARAMS_FILES:  # a preset overlay with its base merged in: what params.yaml holds for dvc repro
        values = read_params_values(path)
        for key in tracked:
            node = values
            for part in key.split("."):
                assert isinstance(node, dict) and part in node, f"{path.name} lacks {key} (dvc.yaml tracks it)"
                node = node[part]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"train": {"max_steps": "ten"}}, "train.max_steps: Input should be a valid integer"),
        ({"train": {"max_steps": 0}}, "train.max_steps: Input should be greater than or equal to 1 (got 0)"),
        ({"evaluate": {"backend": "tgi"}}, "evaluate.backend"),
        ({"select": {"method": "variance"}}, "select.method: Input should be 'std', 'random', 'lim' or 'pass_rate'"),
        ({"model": {"template": "alpaca"}}, "model.template"),
        ({"data": {"suite_split": "dev"}}, "data.suite_split"),
        ({"evaluate": {"protocols": {"aime24": {"temperature": -1}}}}, "evaluate.protocols.aime24.temperature"),
    ],
)
def test_type_and_range_errors_name_the_key(values, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_params(values)


def test_a_trl_key_duplicating_a_first_class_field_is_refused():
    with pytest.raises(ConfigError, match=r"train.trl.learning_rate duplicates train.learning_rate"):
        parse_params({"train": {"trl": {"learning_rate": 1e-3}}})
    with pytest.raises(ConfigError, match=r"history.trl.num_generations duplicates history.num_generations"):
        parse_params({"history": {"trl": {"num_generations": 4}}})
    ppo = {"algorithm": "ppo", "num_generations": 1, "per_device_train_batch_size": 2}
    with pytest.raises(ConfigError, match=r"train.trl.kl_coef duplicates train.beta"):  # PPO's name for beta
        parse_params({"train": {**ppo, "trl": {"kl_coef": 0.1}}})
    assert parse_params({"train": {"trl": {"top_p": 0.9}}}).train.trl == {"top_p": 0.9}  # not a duplicate


def test_set_overrides_are_typed_by_the_params_model():
    overrides = parse_overrides(["train.max_steps=10", "select.ranks=1,13", "data.benchmarks=[arith1, units]"])
    params = parse_params(merge({}, overrides))
    assert (params.train.max_steps, params.select.ranks, params.data.benchmarks) == (10, "1,13", ["arith1", "units"])
    with pytest.raises(ConfigError, match="--set 'train=3': write section.key=value"):
        parse_overrides(["train=3"])
    with pytest.raises(ConfigError, match="train.max_steps: Input should be a valid integer"):
        parse_params(merge({}, parse_overrides(["train.max_steps=ten"])))


def test_an_unknown_key_is_blamed_on_where_it_was_written(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"train": {"max_steps": 3}}))
    with pytest.raises(ConfigError, match=r"^--set: unknown params key: train.max_stepz$"):
        load_params(path, parse_overrides(["train.max_stepz=3"]))
    path.write_text(yaml.safe_dump({"train": {"max_stepz": 3}}))
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: unknown params key: train.max_stepz$"):
        load_params(path, parse_overrides(["train.max_steps=3"]))


def test_cli_set_reaches_the_stage_and_a_type_error_is_one_line(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"mlflow": {"tracking_uri": "sqlite:///m.db"}}))
    result = run_module(tmp_path, "pipelines.data", "--params", "params.yaml", "--set", "data.pool_size=3",
                        "--set", "data.test_size=5")  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = yaml.safe_load((tmp_path / "outputs" / "data" / "manifest.json").read_text())
    assert (manifest["pool"]["rows"], manifest["test"]["rows"]) == (3, 5)
    bad = run_module(tmp_path, "pipelines.data", "--params", "params.yaml", "--set", "train.max_steps=ten")
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0
    assert "train.max_steps: Input should be a valid integer" in bad.stderr


def test_only_the_projects_input_errors_are_reported_as_bad_input(capsys):
    """A ConfigError is one line and status 2; a ValueError from a library inside a stage is a bug: it keeps its
    traceback and does not exit with the bad-input status."""
    import argparse

    from rlvr.cli import EXIT_BAD_INPUT, run
    from rlvr.errors import ConfigError

    def bad_input(args, params):
        raise ConfigError("train.reward: unknown reward 'nope'")

    def bug(args, params):
        raise ValueError("Expected input batch_size (3) to match target batch_size (2).")

    args = argparse.Namespace(params=None, overrides=[])
    with pytest.raises(SystemExit) as done:
        run(bad_input, args)
    assert done.value.code == EXIT_BAD_INPUT
    assert capsys.readouterr().err == "error: train.reward: unknown reward 'nope'\n"
    with pytest.raises(ValueError, match="to match target batch_size"):
        run(bug, args)


def _help(module: str, monkeypatch, capsys) -> str:
    """``python -m module --help``, run in this process (the modules' imports are then shared: fast)."""
    monkeypatch.setattr(sys, "argv", [module, "--help"])
    with pytest.raises(SystemExit) as done:
        runpy.run_module(module, run_name="__main__")
    assert done.value.code == 0, module
    return capsys.readouterr().out


def test_every_stage_and_flow_command_line_describes_every_option(monkeypatch, capsys):
    modules = [f"pipelines.{stage}" for stage in NAMES] + ["pipelines.code", "pipelines.matrix", "flows.experiment"]
    modules += ["flows.cross_family"]
    for module in modules:
        text = _help(module, monkeypatch, capsys)
        assert text.startswith(f"usage: python -m {module}"), module
        options = re.findall(r"^  (-[-\w]+|[a-z]\w*)", text, re.M)
        for option in options:  # each option is followed by its description (on its line or the next)
            assert re.search(rf"^  {re.escape(option)}[^\n]*(\s{{2,}}\S|\n {{10,}}\S)", text, re.M), (module, option)
        assert "--set" in text and len(options) >= 3, module


def test_a_params_file_states_only_what_differs_from_its_base(tmp_path):
    """``base:`` (relative to the file naming it) is merged under the file's values, mappings key by key and an
    algorithm's ``trl`` options whole; a missing base or a circle of bases is one line naming the file."""
    (tmp_path / "presets").mkdir()
    base = {"train": {"max_steps": 7, "learning_rate": 1e-5, "trl": {"vllm_gpu_memory_utilization": 0.3}}}
    (tmp_path / "presets" / "base.yaml").write_text(yaml.safe_dump(base))
    overlay = {"base": "base.yaml", "train": {"learning_rate": 3e-5, "trl": {"top_entropy_quantile": 0.5}}}
    (tmp_path / "presets" / "overlay.yaml").write_text(yaml.safe_dump(overlay))
    (tmp_path / "presets" / "twice.yaml").write_text(yaml.safe_dump({"base": "overlay.yaml", "select": {"seed": 3}}))
    values = read_params_values(tmp_path / "presets" / "twice.yaml")
    assert values == {
        "train": {"max_steps": 7, "learning_rate": 3e-5, "trl": {"top_entropy_quantile": 0.5}},
        "select": {"seed": 3},
    }
    params = load_params(tmp_path / "presets" / "twice.yaml")
    assert (params.train.max_steps, params.train.learning_rate, params.select.seed) == (7, 3e-5, 3)

    (tmp_path / "lost.yaml").write_text("base: nowhere.yaml\n")
    with pytest.raises(InputError, match="lost.yaml: base not found: .*nowhere.yaml"):
        load_params(tmp_path / "lost.yaml")
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match="names a file that is based on this one"):
        load_params(tmp_path / "a.yaml")


def test_a_preset_written_whole_is_the_preset_and_dvc_stages_refuse_an_overlay(tmp_path):
    """``python -m rlvr.config PRESET > params.yaml`` gives the same params with every key written (what DVC
    tracks); a DVC stage given an overlay stops with one line, exit 2, before it writes anything."""
    preset = ROOT / "configs" / "paper" / "qwen25_math_7b_pi1.yaml"
    written = run_module(ROOT, "rlvr.config", str(preset))  # its accelerate configs are checked from the root
    assert written.returncode == 0, written.stderr
    (tmp_path / "params.yaml").write_text(written.stdout)
    assert load_params(tmp_path / "params.yaml", whole=True) == load_params(preset)
    refused = run_module(tmp_path, "pipelines.data", "--params", str(preset), env={"DVC_STAGE": "data"})
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1].startswith(f"error: {preset}: base: DVC tracks only the keys")
    assert not (tmp_path / "outputs").exists()


def test_the_paper_matrix_states_what_the_presets_say():
    """Each cell of configs/matrix/paper.yaml that has a preset runs exactly that preset's settings (paths and the
    MLflow experiment aside), and the matrix's report grades as the presets do: the two never drift apart."""
    from rlvr.matrix import load_matrix

    matrix = load_matrix(ROOT / "configs" / "matrix" / "paper.yaml")
    cells = {cell.name: cell.params for cell in matrix.cells}
    preset_of = {
        "qwen25-math-1.5b/pi1-grpo": "qwen25_math_1.5b_pi1",
        "qwen25-math-1.5b/pi13-grpo": "qwen25_math_1.5b_pi13",
        "qwen25-math-1.5b/pi1-ppo": "ppo_qwen25_math_1.5b_pi1",
        "qwen25-math-7b/pi1-grpo": "qwen25_math_7b_pi1",
        "llama32-3b-instruct/pi1-grpo": "llama32_3b_instruct_pi1",
        "r1-distill-qwen-1.5b/pi1-grpo": "r1_distill_qwen_1.5b_pi1",
    }
    assert set(preset_of) <= set(cells) and len(cells) == 16
    for name, preset in preset_of.items():
        expected = load_params(ROOT / "configs" / "paper" / f"{preset}.yaml").model_dump(exclude={"paths", "mlflow"})
        assert cells[name].model_dump(exclude={"paths", "mlflow"}) == expected, (name, preset)
    assert {params.report.headline_mode for params in cells.values()} == {matrix.report.headline_mode}
