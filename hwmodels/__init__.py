"""hwmodels: hardware descriptions and cost models for streams of memory accesses and operations.

This package never imports ``simsnn``; it is useful for any trace of accesses.
"""
from hwmodels.units import UnitError, parse_quantity

__all__ = ["parse_quantity", "UnitError"]
