"""Event-to-frame integration: per-polarity event counts ``[T, 2, H, W]``.

Three ways to cut a stream of ``N`` events into ``T`` frames (``split_by``):

``"number"``
    As SpikingJelly: frame ``k < T-1`` holds events ``k*m .. (k+1)*m - 1`` with
    ``m = floor(N / T)``; the last frame takes the remainder (so with ``N < T``
    every event lands in the last frame).
``"time"``
    ``T`` equal windows over ``[t_min, t_max]``: an event at ``t`` goes to frame
    ``floor((t - t_min) * T / (t_max - t_min + 1))``. The windows are equally long
    to within one microsecond, whatever ``T`` and the span.
``"time-spikingjelly"``
    SpikingJelly 2.0's time split (``cal_fixed_frames_number_segment_index``):
    windows of a whole number of microseconds ``dt = floor((t_max - t_min) / T)``
    from ``t_min``; an event goes to frame ``min(floor((t - t_min) / dt), T-1)``.
    The last frame thus also holds ``t_min + T*dt .. t_max`` (up to ``T - 1``
    microseconds more than ``dt``): SpikingJelly drops no event, but its edges of
    frames ``1 .. T-1`` fall 1 to ``T - 1`` microseconds earlier than in ``"time"``.
    For time-ordered events the frames equal SpikingJelly's wherever SpikingJelly
    returns any: it raises ``IndexError`` when a window
    ``[t_min + k*dt, t_min + (k+1)*dt)``, ``k < T``, holds no event (always when
    ``dt = 0``). Here such a frame is empty, and with ``dt = 0`` every event goes to
    the last frame, as SpikingJelly's documented formula (``j_l = argmin{k : t_k >=
    t_0 + dt*j}``, ``j_r = N`` for the last frame) reads.

Channel 0 counts OFF events (``p = 0``), channel 1 ON events; ``[.., y, x]``.
Counting uses one ``np.bincount`` over flat indices, not a per-event loop.
"""

from __future__ import annotations

import numpy as np

from .events import check_events

__all__ = ["SPLIT_MODES", "events_to_frames", "frame_index", "rescale_events"]

SPLIT_MODES = ("number", "time", "time-spikingjelly")


def frame_index(events: np.ndarray, *, timesteps: int, split_by: str) -> np.ndarray:
    """Frame number (``0 .. timesteps-1``) of every event, as ``int64``."""
    check_events(events)
    if isinstance(timesteps, bool) or not isinstance(timesteps, int) or timesteps < 1:
        raise ValueError(f"timesteps must be a positive integer, not {timesteps!r}")
    n = len(events)
    if split_by == "number":
        per_frame = n // timesteps
        if per_frame == 0:
            return np.full(n, timesteps - 1, dtype=np.int64)
        return np.minimum(np.arange(n, dtype=np.int64) // per_frame, timesteps - 1)
    if split_by == "time":
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        t = events["t"]
        t0 = int(t.min())
        span = int(t.max()) - t0 + 1
        # (t - t0) * T fits int64 for any recording shorter than 2**63 / T microseconds.
        return (t - t0) * timesteps // span
    if split_by == "time-spikingjelly":
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        t = events["t"]
        t0 = int(t.min())
        width = (int(t.max()) - t0) // timesteps
        if width == 0:
            return np.full(n, timesteps - 1, dtype=np.int64)
        return np.minimum((t - t0) // width, timesteps - 1)
    raise ValueError(f"split_by must be one of {SPLIT_MODES}, not {split_by!r}")


def events_to_frames(
    events: np.ndarray, *, timesteps: int, split_by: str = "number", height: int, width: int
) -> np.ndarray:
    """Integrate events into per-polarity count frames.

    Parameters
    ----------
    events:
        :data:`~golden.data.events.EVENT_DTYPE` events, in time order.
    timesteps:
        Number of frames ``T``.
    split_by:
        ``"number"``, ``"time"`` or ``"time-spikingjelly"`` (see the module docstring).
    height, width:
        Frame size; every event must satisfy ``0 <= y < height``, ``0 <= x < width``.

    Returns
    -------
    numpy.ndarray
        ``int64`` counts of shape ``[T, 2, height, width]``.
    """
    frame = frame_index(events, timesteps=timesteps, split_by=split_by)
    x, y = events["x"].astype(np.int64), events["y"].astype(np.int64)
    for name, values, limit in (("x", x, width), ("y", y, height)):
        if len(values) and (values.min() < 0 or values.max() >= limit):
            raise ValueError(
                f"event {name} range {values.min()}..{values.max()} does not fit a frame of {limit}"
            )
    flat = ((frame * 2 + events["p"]) * height + y) * width + x
    counts = np.bincount(flat, minlength=timesteps * 2 * height * width)
    return counts.reshape(timesteps, 2, height, width)


def rescale_events(events: np.ndarray, *, sensor: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """Map coordinates from a ``sensor`` ``(H, W)`` grid onto a coarser ``size`` ``(H', W')``.

    ``x' = floor(x * W' / W)`` (and likewise ``y``), so every source pixel falls into
    exactly one target pixel and counts stay integers (unlike interpolating frames).
    """
    check_events(events)
    (sh, sw), (th, tw) = sensor, size
    if not (0 < th <= sh and 0 < tw <= sw):
        raise ValueError(f"target size {size} must be positive and at most the sensor size {sensor}")
    if (th, tw) == (sh, sw):
        return events
    out = events.copy()
    out["x"] = events["x"].astype(np.int64) * tw // sw
    out["y"] = events["y"].astype(np.int64) * th // sh
    return out
