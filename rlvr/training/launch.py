"""Multi-process training: a stage with ``num_processes`` > 1, or with an accelerate config file (DeepSpeed ZeRO on one
GPU too), runs itself again under ``accelerate launch``.

The DVC stage and the Prefect task both call the stage function, which relaunches its own command-line entry point
(``pipelines.<stage>``) with the same params; rank 0 tracks in MLflow under the same parent run. The launcher runs in
a process group of its own and the stage passes it exactly one signal: a SIGTERM or Ctrl-C to the stage becomes a
SIGTERM or SIGINT to ``accelerate launch``, whose torchrun agent passes it to every rank (torchrun starts the ranks in
sessions of their own, so nothing else would reach them); whatever still runs after ``STOP_SECONDS`` is killed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from rlvr.config import Params, RLConfig, to_dict
from rlvr.tracking import PARENT_RUN_ENV, Terminated

logger = logging.getLogger(__name__)

STOP_SECONDS = 25  # for the ranks to end their runs (MLflow: KILLED) after the signal, before they are killed


def needs_launch(config: RLConfig) -> bool:
    """True where ``config`` asks for several processes or an accelerate config (a ZeRO config with one process is
    DeepSpeed too, never silently plain) and this process was not started by a launcher."""
    return (config.num_processes > 1 or config.accelerate_config is not None) and "LOCAL_RANK" not in os.environ


def launch_command(config: RLConfig, module: str, args: list[str]) -> list[str]:
    """``accelerate launch`` of ``python -m module args`` with ``config``'s processes and accelerate config.

    Without a config file: ``--multi_gpu`` (torchrun, one process per GPU). On a machine without GPU the same
    starts N CPU processes that the trainer joins with gloo (accelerate's ``--cpu`` would start only one).
    """
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(config.num_processes)]
    command += ["--config_file", config.accelerate_config] if config.accelerate_config else ["--multi_gpu"]
    return [*command, "-m", module, *args]


def stop(process: subprocess.Popen, signum: int, seconds: float = STOP_SECONDS) -> None:
    """Pass ``signum`` to the launcher ``process`` (which passes it to its ranks); kill what of its process tree
    still runs after ``seconds``."""
    import psutil

    try:
        root = psutil.Process(process.pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    logger.warning("stopping the %d processes of the launched run (%s)", len(tree), signal.Signals(signum).name)
    with contextlib.suppress(psutil.NoSuchProcess):
        root.send_signal(signum)
    _, alive = psutil.wait_procs(tree, timeout=seconds)
    for survivor in alive:
        logger.warning("killing process %d, still running %.0f s after the signal", survivor.pid, seconds)
        with contextlib.suppress(psutil.NoSuchProcess):
            survivor.kill()
    psutil.wait_procs(alive, timeout=10)


def relaunch(config: RLConfig, module: str, params: Params, parent_id: str | None) -> None:
    """Run ``module`` with ``params`` (written to a temporary file, every path in it) under ``accelerate
    launch``; waits for it, and stops every rank when this process is stopped (SIGTERM, Ctrl-C)."""
    with tempfile.TemporaryDirectory(prefix="rlvr-launch-") as tmp:
        params_path = Path(tmp) / "params.yaml"
        params_path.write_text(yaml.safe_dump(to_dict(params), sort_keys=False))
        env = {**os.environ, **({PARENT_RUN_ENV: parent_id} if parent_id else {})}
        command = launch_command(config, module, ["--params", str(params_path)])
        process = subprocess.Popen(command, env=env, start_new_session=True)
        try:
            returncode = process.wait()
        except (Terminated, KeyboardInterrupt) as interrupt:
            stop(process, signal.SIGTERM if isinstance(interrupt, Terminated) else signal.SIGINT)
            raise
        except BaseException:
            stop(process, signal.SIGTERM)
            raise
    if returncode:
        raise RuntimeError(f"{module} under accelerate launch failed with exit status {returncode}")
