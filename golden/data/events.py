"""The in-memory event representation shared by every reader, writer and dataset.

An event stream is a 1-D numpy structured array with :data:`EVENT_DTYPE`:

==== ========= =====================================================
t    ``int64``  timestamp in microseconds
x    ``int16``  column (0 = left)
y    ``int16``  row (0 = top)
p    ``uint8``  polarity, 1 = ON (brighter), 0 = OFF
==== ========= =====================================================
"""

from __future__ import annotations

import numpy as np

__all__ = ["EVENT_DTYPE", "make_events", "check_events", "cifar10dvs_flip"]

EVENT_DTYPE = np.dtype([("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "u1")])


def make_events(t: np.ndarray, x: np.ndarray, y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Pack equally long coordinate arrays into an :data:`EVENT_DTYPE` array.

    Raises
    ------
    ValueError
        If the arrays differ in length, a coordinate does not fit ``int16`` or a
        polarity is not 0/1.
    """
    t, x, y, p = (np.asarray(a).reshape(-1) for a in (t, x, y, p))
    n = len(t)
    if not len(x) == len(y) == len(p) == n:
        raise ValueError(f"event fields differ in length: t {n}, x {len(x)}, y {len(y)}, p {len(p)}")
    for name, values in (("x", x), ("y", y)):
        if n and (values.min() < np.iinfo(np.int16).min or values.max() > np.iinfo(np.int16).max):
            found = f"{values.min()}..{values.max()}"
            raise ValueError(f"event coordinate {name} does not fit int16: range {found}")
    if n and not np.isin(p, (0, 1)).all():
        raise ValueError(f"event polarity must be 0 or 1, found {np.unique(p)[:8]}")
    events = np.empty(n, dtype=EVENT_DTYPE)
    events["t"], events["x"], events["y"], events["p"] = t, x, y, p
    return events


def check_events(events: np.ndarray) -> np.ndarray:
    """Return ``events`` if it is a 1-D :data:`EVENT_DTYPE` array, else raise ``TypeError``."""
    if not isinstance(events, np.ndarray) or events.dtype != EVENT_DTYPE or events.ndim != 1:
        found = getattr(events, "dtype", type(events).__name__)
        raise TypeError(f"events must be a 1-D numpy array of dtype {EVENT_DTYPE}, not {found}")
    return events


def cifar10dvs_flip(events: np.ndarray, *, size: int = 128) -> np.ndarray:
    """CIFAR10-DVS orientation fix: ``x' = size-1-y``, ``y' = size-1-x``, ``p' = 1-p``.

    The CIFAR10-DVS recordings decode (DVS128 address layout) transposed, mirrored and
    with inverted polarity relative to the displayed images; SpikingJelly applies this
    map. It is an involution, so the same function converts back when writing.
    """
    check_events(events)
    out = events.copy()
    out["x"] = size - 1 - events["y"]
    out["y"] = size - 1 - events["x"]
    out["p"] = 1 - events["p"]
    return out
