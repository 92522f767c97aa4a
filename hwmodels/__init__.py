"""hwmodels: hardware descriptions and cost models for streams of memory accesses and operations.

This package never imports ``simsnn``; it is useful for any trace of accesses.
"""
from hwmodels.cache import CacheHierarchy, LRUCache, simulate_cache
from hwmodels.components import CoreModel, MemoryLevel, Requests
from hwmodels.errors import HardwareConfigError, HardwareError
from hwmodels.loader import build_levels, load_hardware, parse_hardware, presets
from hwmodels.units import UnitError, parse_quantity
from hwmodels.workload import Workload

__all__ = [
    "CacheHierarchy", "LRUCache", "simulate_cache", "CoreModel", "MemoryLevel", "Requests",
    "HardwareConfigError", "HardwareError", "load_hardware", "parse_hardware", "presets",
    "build_levels", "UnitError", "parse_quantity", "Workload",
]
