"""Multi-process training: a stage with ``num_processes`` > 1 runs itself again under ``accelerate launch``.

The DVC stage and the Prefect task both call the stage function, which relaunches its own command-line
entry point (``pipelines.<stage>``) with the same params; rank 0 tracks in MLflow under the same parent run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from rlvr.config import Params, RLConfig, to_dict
from rlvr.tracking import PARENT_RUN_ENV


def needs_launch(config: RLConfig) -> bool:
    """True where ``config`` asks for several processes and this process was not started by a launcher."""
    return config.num_processes > 1 and "LOCAL_RANK" not in os.environ


def launch_command(config: RLConfig, module: str, args: list[str]) -> list[str]:
    """``accelerate launch`` of ``python -m module args`` with ``config``'s processes and accelerate config.

    Without a config file: ``--multi_gpu`` (torchrun, one process per GPU). On a machine without GPU the same
    starts N CPU processes that the trainer joins with gloo (accelerate's ``--cpu`` would start only one).
    """
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(config.num_processes)]
    command += ["--config_file", config.accelerate_config] if config.accelerate_config else ["--multi_gpu"]
    return [*command, "-m", module, *args]


def relaunch(config: RLConfig, module: str, params: Params, parent_id: str | None) -> None:
    """Run ``module`` with ``params`` (written to a temporary file, every path in it) under ``accelerate
    launch``; waits for it."""
    with tempfile.TemporaryDirectory(prefix="rlvr-launch-") as tmp:
        params_path = Path(tmp) / "params.yaml"
        params_path.write_text(yaml.safe_dump(to_dict(params), sort_keys=False))
        env = {**os.environ, **({PARENT_RUN_ENV: parent_id} if parent_id else {})}
        result = subprocess.run(launch_command(config, module, ["--params", str(params_path)]), env=env)
    if result.returncode:
        raise RuntimeError(f"{module} under accelerate launch failed with exit status {result.returncode}")
