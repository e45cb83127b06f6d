"""The outbox: logging calls that could not reach MLflow are kept and retried (at most every ``RETRY_SECONDS``);
what is still pending when a stage's run ends is written to ``mlflow-pending/<run id>.jsonl`` and named in a warning.
``python -m rlvr.tracking replay FILE`` logs such a file later (:func:`replay`)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

logger = logging.getLogger("rlvr.tracking")

PENDING_DIR = Path("mlflow-pending")

RETRY_SECONDS = 30.0

CLOSE_SECONDS = 30.0


class _Outbox:
    """Logging calls that could not reach MLflow, retried in order (see module docstring)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: list[tuple[str, str, Any]] = []  # (kind, run id, payload)
        self.failed_at = 0.0

    def send(self, kind: str, run_id: str, payload: Any) -> None:
        with self.lock:
            self.pending.append((kind, run_id, payload))
            if self.failed_at and time.monotonic() - self.failed_at < RETRY_SECONDS:
                return
            self.flush_locked()

    def flush_locked(self) -> bool:
        client = MlflowClient()
        while self.pending:
            kind, run_id, payload = self.pending[0]
            try:
                SENDERS[kind](client, run_id, payload)
            except Exception as error:  # noqa: BLE001 - a server down: keep it and carry on
                if not _unreachable(error):  # refused by the store (e.g. a param set twice): not an outage
                    logger.warning("MLflow refused a %s of run %s: %s", kind, run_id, str(error).splitlines()[0])
                    self.pending.pop(0)
                    continue
                if not self.failed_at:
                    logger.warning("MLflow unreachable (%s): logging is kept and retried; the work goes on", error)
                self.failed_at = time.monotonic()
                return False
            self.pending.pop(0)
            if self.failed_at:
                logger.warning("MLflow reachable again: logged what was kept")
                self.failed_at = 0.0
        return True

    def close(self, run_id: str) -> None:
        """Last tries (for up to ``CLOSE_SECONDS``) of ``run_id``'s pending calls; those still failing go to a file
        named in a warning."""
        deadline = time.monotonic() + (CLOSE_SECONDS if self.pending else 0)
        with self.lock:
            while not self.flush_locked() and time.monotonic() < deadline:
                time.sleep(2)
            if not self.pending:
                return
            mine = [entry for entry in self.pending if entry[1] == run_id]
            self.pending = [entry for entry in self.pending if entry[1] != run_id]
        if mine:
            PENDING_DIR.mkdir(exist_ok=True)
            path = PENDING_DIR / f"{run_id}.jsonl"
            with path.open("a") as handle:
                for kind, run, payload in mine:
                    handle.write(json.dumps({"kind": kind, "run_id": run, "payload": payload}, default=str) + "\n")
            logger.warning(
                "MLflow still unreachable: %d logging calls of run %s written to %s "
                "(python -m rlvr.tracking replay %s logs them)",
                len(mine),
                run_id,
                path,
                path,
            )


def _unreachable(error: BaseException) -> bool:
    """Whether ``error`` says the tracking server could not be reached (rather than refusing the call)."""
    import requests

    seen: BaseException | None = error
    while seen is not None:
        text = str(seen)
        if isinstance(seen, requests.exceptions.ConnectionError | requests.exceptions.Timeout | ConnectionError):
            return True
        if any(sign in text for sign in ("Max retries exceeded", "Connection refused", "timed out", "ConnectionError")):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _send_metrics(client: MlflowClient, run_id: str, payload: dict) -> None:
    stamp = payload["timestamp"]
    metrics = [Metric(key, float(value), stamp, payload["step"]) for key, value in payload["metrics"].items()]
    for start in range(0, len(metrics), 900):  # the REST API takes up to 1,000 per batch
        client.log_batch(run_id, metrics=metrics[start : start + 900])


def _send_artifact(client: MlflowClient, run_id: str, payload: dict) -> None:
    path = Path(payload["path"])
    if path.is_dir():
        client.log_artifacts(run_id, str(path), payload["artifact_path"])
    elif path.is_file():
        client.log_artifact(run_id, str(path), payload["artifact_path"])


def _params(values: Mapping[str, Any]) -> list:
    from mlflow.entities import Param

    return [Param(key, str(value)[:6000]) for key, value in values.items()]


SENDERS: dict[str, Callable[[MlflowClient, str, Any], None]] = {
    "metrics": _send_metrics,
    "tag": lambda client, run_id, payload: client.set_tag(run_id, payload[0], payload[1]),
    "artifact": _send_artifact,
    "dict": lambda client, run_id, payload: client.log_dict(run_id, payload[0], payload[1]),
    "params": lambda client, run_id, payload: client.log_batch(run_id, params=_params(payload)),
}
OUTBOX = _Outbox()


def replay(path: str | Path) -> int:
    """Log the calls of a ``mlflow-pending`` file (see module docstring); returns how many were logged."""
    client = MlflowClient()
    entries = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    for entry in entries:
        payload = entry["payload"]
        SENDERS[entry["kind"]](client, entry["run_id"], tuple(payload) if isinstance(payload, list) else payload)
    return len(entries)
