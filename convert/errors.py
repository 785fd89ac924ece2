"""The one error type of the converter: a checkpoint that cannot be converted exactly, and why."""

from __future__ import annotations

__all__ = ["ConversionError"]


class ConversionError(ValueError):
    """A source file cannot be converted without guessing (unknown layout; unmapped/missing/bad keys)."""
