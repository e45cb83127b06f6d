"""Deprecated: the dataset catalogue is ``rlvr.datasets``, the data stage ``rlvr.data``, file helpers ``rlvr.files``.

Kept one release so that existing imports keep working, with a warning naming the new place."""

import warnings

from rlvr.data import materialise
from rlvr.datasets import BENCHMARKS, REGISTRY, DatasetSpec, Loaded, load, spec
from rlvr.files import excluded_ids

__all__ = ["BENCHMARKS", "REGISTRY", "DatasetSpec", "Loaded", "excluded_ids", "load", "materialise", "spec"]

warnings.warn(
    "rlvr.registry is deprecated: import the catalogue from rlvr.datasets, the data stage from rlvr.data "
    "(run_data is now rlvr.data.materialise(config, paths)) and file helpers from rlvr.files",
    DeprecationWarning,
    stacklevel=2,
)
