"""Prefect flows over the pipeline stages."""

import logging
import os

# Library code run outside a flow (a stage called directly) logs without a warning.
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
# vLLM configures logging when first imported (by TRL's trainers, inside a flow run): logging.config.dictConfig
# flushes every handler while it holds logging's lock, and Prefect's API log handler waits for its sender thread,
# which may need that lock: the flow run hangs (seen with heartbeats on). vLLM's loggers then use the root's.
os.environ.setdefault("VLLM_CONFIGURE_LOGGING", "0")

from prefect.logging.configuration import ensure_logging_setup  # noqa: E402


def _send_library_logs_to_prefect() -> None:
    """The library's log lines (loggers named rlvr.*) appear in the flow run's logs in the Prefect UI.

    Prefect copies its handlers to PREFECT_LOGGING_EXTRA_LOGGERS only when it first configures logging, which
    may have happened before this package was imported; attaching them here works in either order.
    """
    ensure_logging_setup()
    library = logging.getLogger("rlvr")
    if library.level == logging.NOTSET:
        library.setLevel(logging.INFO)  # progress lines; the root logger's default level would drop them
    for handler in logging.getLogger("prefect.extra").handlers:
        if handler not in library.handlers:
            library.addHandler(handler)


_send_library_logs_to_prefect()
