"""The select stage: rank the pool by its history (``rlvr.selection``), write the chosen rows repeated and the
ranking."""

from __future__ import annotations

from rlvr.config import Params
from rlvr.files import excluded_ids, read_rows
from rlvr.selection import run_select


def run(params: Params, parent_id: str | None = None) -> list[dict]:
    """The select stage: ``paths.history`` and ``paths.pool`` -> ``paths.selection`` and ``paths.ranking``."""
    from rlvr import tracking

    paths, config = params.paths, params.select
    with tracking.stage_run("select", params, parent_id):
        excluded = excluded_ids(paths.data_manifest)
        rows = run_select(
            paths.history, paths.pool, config.method, config.ranks, config.repeat, paths.selection, paths.ranking,
            config.seed, excluded,
        )  # fmt: skip
        selected = list(dict.fromkeys(row["id"] for row in rows))
        pool_examples = len(read_rows(paths.pool))  # the whole pool selected: the paper's dsr_sub setting
        counts = {"selected_rows": len(rows), "selected_examples": len(selected), "pool_examples": pool_examples}
        tracking.log_metrics(counts)
        tracking.set_tag("rlvr.selected_ids", ",".join(selected))
        tracking.log_artifact(paths.selection)
        tracking.log_artifact(paths.ranking)
        return rows
