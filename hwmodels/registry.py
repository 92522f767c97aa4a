"""Component kinds by ``type`` name: built-ins plus entry points (group ``hwmodels.components``).

An entry point names a :class:`~hwmodels.components.MemoryLevel` subclass that has a
``type_name`` and a pydantic ``Spec`` class attribute (with ``type: Literal[type_name]``,
``name``, ``shared``, ``read``, ``write``, ``latency``, ``bandwidth``).
"""
from __future__ import annotations

from functools import lru_cache
from importlib.metadata import entry_points

ENTRY_POINT_GROUP = "hwmodels.components"


@lru_cache(maxsize=1)
def memory_level_kinds() -> dict[str, type]:
    """type name -> MemoryLevel subclass (each with a ``Spec`` pydantic model)."""
    from hwmodels.cache import LRUCache
    from hwmodels.scratchpad import Scratchpad
    from hwmodels.spec import CacheSpec, ScratchpadSpec

    LRUCache.Spec = CacheSpec
    Scratchpad.Spec = ScratchpadSpec
    kinds: dict[str, type] = {"cache": LRUCache, "scratchpad": Scratchpad}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        cls = ep.load()
        name = getattr(cls, "type_name", "") or ep.name
        if name in kinds:
            continue  # built-ins win; a plug-in cannot replace them silently
        kinds[name] = cls
    return kinds


def register(cls: type) -> type:
    """Register a MemoryLevel subclass in this process (tests, notebooks). Returns ``cls``."""
    memory_level_kinds()[cls.type_name] = cls
    return cls
