"""Training of the three network families (needs the ``train`` extra: PyTorch, CPU).

``simsnn.train.grouping`` is pure numpy and imports without torch; everything else is loaded
on first use so that ``import simsnn.train`` works without torch and fails with a clear
message only when training is asked for.
"""
from __future__ import annotations

import importlib

from simsnn.errors import SimsnnError

_LAZY = {
    "train_network": "simsnn.train.trainer",
    "predict": "simsnn.train.trainer",
    "resolve_groups": "simsnn.train.trainer",
    "regenerate_shipped": "simsnn.train.shipped",
    "shipped_configs": "simsnn.train.shipped",
    "save_model": "simsnn.train.shipped",
    "from_runtime": "simsnn.train.torch_model",
}

__all__ = sorted(_LAZY) + ["grouping"]


def __getattr__(name: str):
    if name == "grouping":
        return importlib.import_module("simsnn.train.grouping")
    if name not in _LAZY:
        raise AttributeError(f"module 'simsnn.train' has no attribute {name!r}")
    try:
        module = importlib.import_module(_LAZY[name])
    except ImportError as exc:
        if exc.name and exc.name.split(".")[0] == "torch":
            raise SimsnnError("training needs the optional package 'torch': "
                              "pip install 'simsnn[train]'") from None
        raise
    return getattr(module, name)
