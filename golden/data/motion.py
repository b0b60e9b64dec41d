"""Synthetic DVS recordings of simple moving shapes, one motion pattern per class.

A bright shape moves over a dark background. Its occupancy mask is rasterised at
``steps`` instants; a pixel the shape enters emits an ON event, a pixel it leaves an
OFF event, time-stamped uniformly inside the step, as an ideal DVS would. Uniform
noise events (random pixel, polarity and time) are added on top. Everything is
vectorised over pixels and steps; a ``numpy.random.Generator`` makes it
deterministic.

Classes (:data:`PATTERNS`), chosen so that only the direction of motion separates
some of them (as in DVS128 Gesture's left/right and clockwise/counter-clockwise
pairs): bars sweeping right/left/down/up, dots moving along the four diagonals, an
expanding ring, and a bar rotating clockwise / counter-clockwise.
"""

from __future__ import annotations

import numpy as np

from .events import make_events

__all__ = ["PATTERNS", "check_count", "check_size", "motion_events", "occupancy"]

MAX_SIZE = 128  # the DVS128 sensor

PATTERNS = (
    "bar_right",
    "bar_left",
    "bar_down",
    "bar_up",
    "dot_down_right",
    "dot_down_left",
    "dot_up_right",
    "dot_up_left",
    "ring_expanding",
    "bar_clockwise",
    "bar_counter_clockwise",
)
_DIAGONALS = {
    "dot_down_right": (1, 1),
    "dot_down_left": (1, -1),
    "dot_up_right": (-1, 1),
    "dot_up_left": (-1, -1),
}


def check_size(size: int) -> int:
    """Return ``size`` if it is a scene side the generator supports (8..128), else raise."""
    if isinstance(size, bool) or not isinstance(size, int) or not 8 <= size <= MAX_SIZE:
        raise ValueError(f"size must be an integer in 8..{MAX_SIZE}, not {size!r}")
    return size


def check_count(name: str, value: int, minimum: int) -> int:
    """Return ``value`` if it is an integer ``>= minimum``, else raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, not {value!r}")
    return value


def occupancy(pattern: str, *, size: int, steps: int, rng: np.random.Generator) -> np.ndarray:
    """Boolean masks ``[steps, size, size]`` of the shape of ``pattern`` over time.

    Position, extent, speed and thickness are drawn from ``rng`` so that samples of a
    class differ while the motion direction stays the class's.
    """
    if pattern not in PATTERNS:
        raise ValueError(f"pattern must be one of {PATTERNS}, not {pattern!r}")
    s = np.linspace(0.0, 1.0, steps)[:, None, None]  # progress of the motion
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    yy, xx = yy[None], xx[None]
    width = rng.uniform(0.06, 0.12) * size  # stroke thickness
    travel = rng.uniform(0.45, 0.65) * size
    if pattern.startswith("bar_") and pattern[4:] in ("right", "left", "down", "up"):
        along, across = (xx, yy) if pattern in ("bar_right", "bar_left") else (yy, xx)
        sign = 1.0 if pattern in ("bar_right", "bar_down") else -1.0
        start = size / 2 - sign * travel / 2 + rng.uniform(-0.1, 0.1) * size
        centre = start + sign * travel * s
        lo = rng.uniform(0.05, 0.25) * size
        hi = size - rng.uniform(0.05, 0.25) * size
        return (np.abs(along - centre) < width / 2) & (across >= lo) & (across < hi)
    if pattern in _DIAGONALS:
        dy, dx = _DIAGONALS[pattern]
        radius = rng.uniform(0.08, 0.14) * size
        step = travel / np.sqrt(2)
        cy = size / 2 - dy * step / 2 + rng.uniform(-0.08, 0.08) * size + dy * step * s
        cx = size / 2 - dx * step / 2 + rng.uniform(-0.08, 0.08) * size + dx * step * s
        return (yy - cy) ** 2 + (xx - cx) ** 2 < radius**2
    centre_y, centre_x = size / 2 + rng.uniform(-0.08, 0.08, size=2) * size
    dist = np.hypot(yy - centre_y, xx - centre_x)
    if pattern == "ring_expanding":
        radius = rng.uniform(0.05, 0.1) * size + rng.uniform(0.3, 0.38) * size * s
        return np.abs(dist - radius) < width / 2
    # Rotating bar: image rows grow downwards, so a clockwise turn increases the angle.
    sign = 1.0 if pattern == "bar_clockwise" else -1.0
    angle = rng.uniform(0, np.pi) + sign * rng.uniform(0.5, 0.8) * np.pi * s
    half_length = rng.uniform(0.3, 0.42) * size
    ux, uy = np.cos(angle), np.sin(angle)
    rel_x, rel_y = xx - centre_x, yy - centre_y
    normal = np.abs(rel_x * uy - rel_y * ux)
    return (normal < width / 2) & (np.abs(rel_x * ux + rel_y * uy) < half_length)


def motion_events(
    pattern: str,
    *,
    size: int,
    rng: np.random.Generator,
    t_start: int = 0,
    duration_us: int = 100_000,
    steps: int = 48,
    noise: float = 0.05,
) -> np.ndarray:
    """Time-sorted events of one moving shape on a ``size x size`` sensor.

    Parameters
    ----------
    pattern:
        One of :data:`PATTERNS`.
    size:
        Sensor side in pixels.
    rng:
        Source of all randomness.
    t_start, duration_us:
        The recording spans ``[t_start, t_start + duration_us)`` microseconds.
    steps:
        Rasterisation instants; more steps give finer motion.
    noise:
        Noise events as a fraction of the signal events.

    Returns
    -------
    numpy.ndarray
        :data:`~golden.data.events.EVENT_DTYPE` events sorted by ``t`` (stable).
    """
    if size < 4 or steps < 2 or duration_us < steps:
        raise ValueError(
            f"need size >= 4, steps >= 2, duration_us >= steps; got {size}, {steps}, {duration_us}"
        )
    masks = occupancy(pattern, size=size, steps=steps, rng=rng)
    change = masks[1:].astype(np.int8) - masks[:-1].astype(np.int8)
    k, y, x = np.nonzero(change)
    p = (change[k, y, x] > 0).astype(np.uint8)
    edges = t_start + (np.arange(steps) * duration_us) // (steps - 1)
    t = rng.integers(edges[k], edges[k + 1])
    n_noise = int(round(noise * len(t)))
    t = np.concatenate([t, rng.integers(t_start, t_start + duration_us, n_noise)])
    x = np.concatenate([x, rng.integers(0, size, n_noise)])
    y = np.concatenate([y, rng.integers(0, size, n_noise)])
    p = np.concatenate([p, rng.integers(0, 2, n_noise)])
    order = np.argsort(t, kind="stable")
    return make_events(t[order], x[order], y[order], p[order])
