import pytest
import yaml
from conftest import ROOT, run_module

from rlvr.config import ConfigError, InputError, load_params, parse_params

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
    for path in PARAMS_FILES:
        values = yaml.safe_load(path.read_text())
        for key in tracked:
            node = values
            for part in key.split("."):
                assert isinstance(node, dict) and part in node, f"{path.name} lacks {key} (dvc.yaml tracks it)"
                node = node[part]
