"""MLflow tracking, one module per job: the run hierarchy and logging (``runs``), the retry outbox and its replay
(``outbox``), signals ending runs as KILLED (``signals``), the UI's views and tables (``views``), the model
registry (``registry``). The names the stages use are importable from here."""

from rlvr.tracking.outbox import replay
from rlvr.tracking.registry import BEST_ALIAS, register_checkpoint
from rlvr.tracking.runs import (
    PARENT_RUN_ENV,
    USER_TRACKING_URI,
    configure,
    is_main_process,
    log_artifact,
    log_datasets,
    log_dict,
    log_metrics,
    log_params,
    parent_run,
    pipeline_key,
    set_tag,
    stage_run,
)
from rlvr.tracking.signals import Terminated, interruptible
from rlvr.tracking.views import log_table, run_url, share_charts_view, share_runs_view

__all__ = [
    "BEST_ALIAS", "PARENT_RUN_ENV", "USER_TRACKING_URI", "Terminated", "configure", "interruptible",
    "is_main_process", "log_artifact", "log_datasets", "log_dict", "log_metrics", "log_params", "log_table",
    "parent_run", "pipeline_key", "register_checkpoint", "replay", "run_url", "set_tag", "share_charts_view",
    "share_runs_view", "stage_run",
]  # fmt: skip
