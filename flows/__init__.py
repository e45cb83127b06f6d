"""Prefect flows over the pipeline stages."""

import os

# The library's log lines (loggers named rlvr.*) appear in the flow run's logs in the Prefect UI; set before
# Prefect configures its logging, which it does when first imported.
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "rlvr")
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")  # library code run outside a flow
