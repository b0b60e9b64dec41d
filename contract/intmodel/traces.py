"""Comparison of two traces (value name -> integer array): the first difference, named."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Mismatch", "assert_traces_equal", "compare_traces"]


@dataclass(frozen=True)
class Mismatch:
    """First difference between two traces (see :func:`compare_traces`)."""

    name: str
    reason: str
    index: tuple[int, ...] | None = None
    expected: int | None = None
    actual: int | None = None
    count: int = 0

    def __str__(self) -> str:
        if self.index is None:
            return f"trace {self.name!r}: {self.reason}"
        return (
            f"trace {self.name!r} differs at index {self.index}: expected {self.expected}, got "
            f"{self.actual} ({self.count} differing elements; {self.reason})"
        )


def compare_traces(
    expected: Mapping[str, Any], actual: Mapping[str, Any], *, names: list[str] | None = None
) -> Mismatch | None:
    """The first differing entry of two traces, in ``expected`` order, or ``None``.

    Every name of ``names`` (default: all names of ``expected``) must be present in
    ``actual`` with the same shape and values. Arrays may be numpy or torch (compared
    as integers after an exactness check).
    """
    for name in names if names is not None else list(expected):
        if name not in expected:
            return Mismatch(name, "missing from the expected trace")
        if name not in actual:
            return Mismatch(name, "missing from the actual trace")
        a, b = _as_exact_int(expected[name], name), _as_exact_int(actual[name], name)
        if a.shape != b.shape:
            return Mismatch(name, f"shape {a.shape} expected, got {b.shape}")
        diff = a != b
        if diff.any():
            index = tuple(int(i) for i in np.argwhere(diff)[0])
            return Mismatch(
                name, "first index in C order", index, int(a[index]), int(b[index]), int(diff.sum())
            )
    return None


def assert_traces_equal(
    expected: Mapping[str, Any], actual: Mapping[str, Any], *, names: list[str] | None = None
) -> None:
    """Raise ``AssertionError`` naming the first differing trace entry and index."""
    mismatch = compare_traces(expected, actual, names=names)
    if mismatch is not None:
        raise AssertionError(str(mismatch))


def _as_exact_int(array: Any, name: str) -> np.ndarray:
    if hasattr(array, "detach"):  # a torch tensor, without importing torch here
        array = array.detach().cpu().numpy()
    array = np.asarray(array)
    if array.dtype.kind == "f":
        rounded = np.round(array)
        if not (rounded == array).all():
            raise ValueError(f"trace {name!r} holds non-integer values")
        return rounded.astype(np.int64)
    return array.astype(np.int64, copy=False)
