"""Zero-word skipping in ``CONV``: which activation words a dot product reads, and in how many cycles.

With :attr:`~protocol.config.AcceleratorConfig.zero_skip` the conv engine reads only the
non-zero activation words of each kernel tap (docs/accelerator.md, section 1, "Zero-word
skipping"). Beside the activation memory the core keeps an *occupancy* bit per word
(``word != 0``, written with every activation write) in rows of :data:`OCCUPANCY_ROW`
bits: row ``j`` covers words ``[32 j, 32 j + 32)``. Per kernel tap of an output position
(and, for a pooled ``CONV``, of every conv position of its window) the engine

* spends one cycle setting the tap up (its first occupancy row is read then); a tap in
  the padding is one empty beat instead;
* then visits every occupancy row the tap's ``C P`` words touch, one beat per cycle: a
  beat takes the lowest remaining non-zero word of even address and the lowest of odd
  address (the two banks of the activation memory), so a row takes
  ``max(1, even words, odd words)`` beats.

This module is the schedule's arithmetic, shared by the cycle model
(:mod:`protocol.perf`) and the tests; it reads the occupancy from an activation-memory
image (the emulator's), so the cycles it predicts are those of the data.
"""

from __future__ import annotations

import numpy as np

from protocol.config import AcceleratorConfig
from protocol.descriptors import Descriptor

__all__ = [
    "OCCUPANCY_ROW",
    "tap_addresses",
    "scan_beats",
    "window_cycles",
    "divider_shift",
    "tap_divider",
    "reciprocal",
]

#: Occupancy bits per row of the occupancy memory (words whose zero-ness one read returns).
OCCUPANCY_ROW = 32


def tap_addresses(d: Descriptor) -> tuple[np.ndarray, np.ndarray]:
    """First activation address of every kernel tap and whether the tap lies in the padding.

    Both arrays are ``[out_h * out_w, window, k * k]`` in the engine's loop order (output
    position, pooled-window conv position, tap row-major). Padded taps get address 0.
    """
    k, s = d.kernel, d.stride
    cp = d.in_c * d.planes_in
    if d.pool_kernel:
        pk, ps = d.pool_kernel, d.pool_stride
        conv_y = (np.arange(d.out_h) * ps)[:, None] + np.arange(pk)[None, :] - d.pool_pad_top
        conv_x = (np.arange(d.out_w) * ps)[:, None] + np.arange(pk)[None, :] - d.pool_padding
    else:
        conv_y, conv_x = np.arange(d.out_h)[:, None], np.arange(d.out_w)[:, None]
    # Input row / column of every (output row, window row, tap row): [oh, pk, k].
    iy = conv_y[:, :, None] * s + np.arange(k)[None, None, :] - d.pad_top
    ix = conv_x[:, :, None] * s + np.arange(k)[None, None, :] - d.pad_left
    wy, wx = conv_y.shape[1], conv_x.shape[1]
    # [oh, ow, wy, wx, ky, kx]
    iy6 = iy[:, None, :, None, :, None]
    ix6 = ix[None, :, None, :, None, :]
    pad = (iy6 < 0) | (iy6 >= d.in_h) | (ix6 < 0) | (ix6 >= d.in_w)
    addr = d.src0 + (iy6 * d.in_w + ix6) * cp
    shape = (d.out_h * d.out_w, wy * wx, k * k)
    pad = np.broadcast_to(pad, (d.out_h, d.out_w, wy, wx, k, k))
    addr = np.broadcast_to(addr, pad.shape)
    return np.where(pad, 0, addr).reshape(shape), pad.reshape(shape)


def scan_beats(starts: np.ndarray, words: int, occupied: np.ndarray) -> np.ndarray:
    """Beats of scanning ``words`` activation words from each address in ``starts``.

    ``occupied`` is the activation memory's occupancy (bool per word). A row of
    :data:`OCCUPANCY_ROW` words the range touches takes ``max(1, even, odd)`` beats, where
    ``even`` / ``odd`` count its non-zero words of even / odd address inside the range.
    """
    occupied = np.asarray(occupied, dtype=bool)
    starts = np.asarray(starts, dtype=np.int64)
    n = occupied.size
    addresses = np.arange(n)
    even = np.concatenate([[0], np.cumsum(occupied & (addresses % 2 == 0))])
    odd = np.concatenate([[0], np.cumsum(occupied & (addresses % 2 == 1))])
    ends = starts + words
    beats = np.zeros(starts.shape, dtype=np.int64)
    first, last = starts // OCCUPANCY_ROW, (ends - 1) // OCCUPANCY_ROW
    for j in range(int((last - first).max(initial=0)) + 1):
        row = first + j
        live = row <= last
        lo = np.clip(np.maximum(starts, row * OCCUPANCY_ROW), 0, n)
        hi = np.clip(np.minimum(ends, (row + 1) * OCCUPANCY_ROW), 0, n)
        count = np.maximum(even[hi] - even[lo], odd[hi] - odd[lo])
        beats += np.where(live, np.maximum(1, count), 0)
    return beats


def window_cycles(d: Descriptor, occupied: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scan cycles of every dot product of a ``CONV`` (output position x window conv position),
    shape ``[out_h * out_w, window]``: per tap one set-up cycle and its rows' beats, or one
    empty beat for a padded tap; and whether the dot product's first tap has a set-up cycle
    (the engine hides that one in the synapse array's flush cycle after the previous one)."""
    starts, pad = tap_addresses(d)
    cp = d.in_c * d.planes_in
    per_tap = np.where(pad, 1, 1 + scan_beats(np.where(pad, 0, starts), cp, occupied))
    return per_tap.sum(axis=2), ~pad[:, :, 0]


def divider_shift(max_offset: int, max_planes: int) -> int:
    """Shift ``s`` for which ``(n * reciprocal(P, s)) >> s == n // P`` for every tap offset
    ``n <= max_offset`` and ``P <= max_planes``: the engine finds a word's channel and bit
    plane from its offset in the tap without a divider.

    With ``M = ceil(2^s / P) = (2^s + r) / P`` (``r < P``), ``n M / 2^s = n / P + n r / (P 2^s)``,
    which keeps the floor while ``n r < 2^s``.
    """
    return max(1, max_offset.bit_length() + max(1, max_planes - 1).bit_length())


def tap_divider(cfg: AcceleratorConfig) -> tuple[int, int]:
    """``(offset_bits, shift)`` of ``cfg``'s tap scanner: a word's offset in its tap is below
    ``2**offset_bits`` (a tap's ``C P`` words: ``C <= wmem_depth`` at ``k = 1``, ``P <= input_bits``),
    and :func:`divider_shift` for it."""
    planes = cfg.numerics.input_bits
    offset_bits = (cfg.wmem_depth * planes).bit_length()
    return offset_bits, divider_shift((1 << offset_bits) - 1, planes)


def reciprocal(planes: int, shift: int) -> int:
    """``ceil(2^shift / planes)``."""
    return -(-(1 << shift) // planes)
