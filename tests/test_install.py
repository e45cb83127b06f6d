"""The GPU node's install, resolved by pip's resolver here (no GPU wheel downloaded)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import resources

import pytest
from conftest import ROOT, missing
from packaging.requirements import Requirement
from packaging.version import Version

pytestmark = pytest.mark.integration


def _trl_vllm_range() -> tuple[Version, Version]:
    """The vLLM versions TRL supports, as TRL's own import check states them."""
    text = resources.files("trl").joinpath("import_utils.py").read_text()
    low, high = re.search(r'Version\("([\d.]+)"\) <= _vllm_base_version <= Version\("([\d.]+)"\)', text).groups()
    return Version(low), Version(high)


def test_the_gpu_install_resolves_with_the_projects_pins(tmp_path):
    """``pip install -e '.[gpu,dev]'`` as ``make setup-gpu`` runs it, resolved by pip from the package index
    without installing (wheels' metadata read by range requests; DeepSpeed's source only): no conflict, vLLM inside
    TRL's range, the project's transformers and TRL, Prefect's fastapi, and torchvision / torchaudio built for the
    torch it resolves (the CPU install removes them because PyPI has none built for its torch)."""
    report = tmp_path / "report.json"
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--use-feature=fast-deps",
               "--quiet", "--report", str(report), "-e", f"{ROOT}[gpu,dev]"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if result.returncode and "ResolutionImpossible" not in result.stderr and "conflict" not in result.stderr:
        missing(f"the package index is unreachable: {result.stderr.strip().splitlines()[-1:]}")
    assert result.returncode == 0, result.stderr[-3000:]
    resolved = {
        item["metadata"]["name"].lower(): item["metadata"] for item in json.loads(report.read_text())["install"]
    }
    version = {name: Version(meta["version"]) for name, meta in resolved.items()}
    low, high = _trl_vllm_range()
    assert low <= version["vllm"] <= high
    assert version["transformers"] in Requirement("transformers==5.24.*").specifier
    assert version["trl"] in Requirement("trl==1.12.*").specifier and "deepspeed" in version
    prefect_fastapi = next(Requirement(r) for r in resolved["prefect"]["requires_dist"] if r.startswith("fastapi"))
    assert version["fastapi"] in prefect_fastapi.specifier
    for package in ("vllm", "torchvision", "torchaudio"):
        pins = [Requirement(r) for r in resolved[package].get("requires_dist", []) if r.startswith("torch")]
        torch_pin = next((r for r in pins if r.name == "torch"), None)
        assert torch_pin is None or version["torch"] in torch_pin.specifier, (package, str(torch_pin))
