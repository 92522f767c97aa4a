"""Shared pieces of every config model: strictness and the format version."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict

FORMAT_VERSION = 1


class Strict(BaseModel):
    """Base of every config node: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)
