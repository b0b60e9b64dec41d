"""Band geometry of conv stages that do not fit the activation memory (docs/accelerator.md, section 6).

A *stage* is a CONV, optionally followed by the POOL that is its only reader. When its
tensors exceed the activation memory, the compiler runs it in *bands* of final output
rows (pooled rows, or conv rows without a pool): per band, the input rows the band
needs (halo rows of the kernel, stride and padding included) are LOADed from DDR, the
conv computes the conv rows the pool window needs, the pool reduces them, and the
band's output rows are STOREd to DDR. Rows are contiguous in the activation layout
(``pos = y W + x``), so a band of rows is one contiguous word range of a tensor, and
the host reassembles a tensor by writing each band's words at their offset.

This module is pure geometry: which rows each band reads, computes and writes, and how
many activation words that takes. It knows nothing about commands or memory placement.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Window", "Band", "StageGeometry", "BandedStage", "plan_bands", "largest_fitting_rows"]


@dataclass(frozen=True)
class Window:
    """A sliding window over rows: ``kernel`` rows, ``stride``, ``pad`` zero rows above the input."""

    kernel: int
    stride: int
    pad: int

    def __post_init__(self) -> None:
        for name in ("kernel", "stride"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Window {name} must be a positive integer, not {value!r}")
        if isinstance(self.pad, bool) or not isinstance(self.pad, int) or self.pad < 0:
            raise ValueError(f"Window pad must be a non-negative integer, not {self.pad!r}")

    def rows_read(self, first: int, stop: int, in_rows: int) -> tuple[int, int]:
        """Input rows ``[a, b)`` (clipped to the input) that output rows ``[first, stop)`` read."""
        a = first * self.stride - self.pad
        b = (stop - 1) * self.stride - self.pad + self.kernel
        return max(0, a), min(in_rows, b)


@dataclass(frozen=True)
class StageGeometry:
    """Rows and words per row of one stage.

    Attributes
    ----------
    in_rows, in_row_words:
        Input rows and activation words per input row (``W C P``).
    conv, conv_rows, conv_row_words:
        The conv's row window, its output rows and words per output row (``OW C_out``).
    pool, pool_rows, pool_row_words:
        The max-pool's row window, output rows and words per row; ``pool`` is ``None``
        for a conv stage without a pool.
    """

    in_rows: int
    in_row_words: int
    conv: Window
    conv_rows: int
    conv_row_words: int
    pool: Window | None = None
    pool_rows: int = 0
    pool_row_words: int = 0

    @property
    def out_rows(self) -> int:
        """Rows of the stage's output (what bands partition)."""
        return self.pool_rows if self.pool is not None else self.conv_rows


@dataclass(frozen=True)
class Band:
    """One band of a stage; all row ranges are ``[first, stop)`` in the tensor's own rows.

    Attributes
    ----------
    out:
        Stage output rows the band writes (pooled rows, or conv rows without a pool).
    conv:
        Conv output rows the band computes (the pool window's halo included).
    inp:
        Input rows the band loads (the conv window's halo included, clipped to the input).
    conv_pad_top:
        Zero rows above the loaded input (only the first band(s) touch the top padding);
        rows below the loaded input read as zero, which is right because a band only
        stops short of the rows it needs at the bottom edge of the input.
    pool_skip, pool_pad_top:
        Computed conv rows the pool skips at the top (nonzero when ``conv`` was widened
        upwards to cover rows no pool window reads, for the trace), and zero rows above.
    owned:
        Conv rows this band is the one to report (a partition of all conv rows over the
        bands; only used for traces).
    """

    out: tuple[int, int]
    conv: tuple[int, int]
    inp: tuple[int, int]
    conv_pad_top: int
    pool_skip: int
    pool_pad_top: int
    owned: tuple[int, int]

    def words(self, geometry: StageGeometry) -> tuple[int, int, int]:
        """Activation words of ``(input rows, conv rows, output rows)`` of this band."""
        g = geometry
        out_row = g.pool_row_words if g.pool is not None else g.conv_row_words
        return (
            (self.inp[1] - self.inp[0]) * g.in_row_words,
            (self.conv[1] - self.conv[0]) * g.conv_row_words,
            (self.out[1] - self.out[0]) * out_row,
        )


def plan_bands(geometry: StageGeometry, rows_per_band: int, *, cover_conv: bool = False) -> list[Band]:
    """Bands of ``rows_per_band`` output rows (the last may be shorter).

    ``cover_conv`` widens the conv rows so every conv output row is computed by some band
    (a pool with stride above its kernel, or one that ends before the last conv row,
    skips rows; a trace of the conv needs them all).
    """
    g = geometry
    if isinstance(rows_per_band, bool) or not isinstance(rows_per_band, int) or rows_per_band < 1:
        raise ValueError(f"rows_per_band must be a positive integer, not {rows_per_band!r}")
    bands: list[Band] = []
    owned_stop = 0
    for first in range(0, g.out_rows, rows_per_band):
        stop = min(g.out_rows, first + rows_per_band)
        if g.pool is not None:
            c0, c1 = g.pool.rows_read(first, stop, g.conv_rows)
            top = first * g.pool.stride - g.pool.pad  # conv row of the pool window's first row
            pool_pad_top = max(0, -top)
        else:
            c0, c1, top, pool_pad_top = first, stop, first, 0
        if cover_conv:
            c0 = min(c0, owned_stop)
            if stop == g.out_rows:
                c1 = g.conv_rows
        if c1 <= c0:
            raise ValueError(f"band of output rows [{first}, {stop}) reads no conv row")
        a, b = g.conv.rows_read(c0, c1, g.in_rows)
        if b <= a:
            raise ValueError(f"band of conv rows [{c0}, {c1}) reads no input row (only padding)")
        bands.append(
            Band(
                out=(first, stop),
                conv=(c0, c1),
                inp=(a, b),
                conv_pad_top=max(0, g.conv.pad - c0 * g.conv.stride),
                pool_skip=max(0, top - c0),
                pool_pad_top=pool_pad_top,
                owned=(owned_stop, max(owned_stop, c1)),
            )
        )
        owned_stop = max(owned_stop, c1)
    return bands


def largest_fitting_rows(geometry: StageGeometry, fits: Callable[[list[Band]], bool], **kwargs: bool) -> int:
    """The balanced band height with the fewest bands for which ``fits(bands)`` holds, or 0.

    Band words grow with the band height, so the largest fitting height is found by
    trying heights from the tallest down; the band count it gives is then spread evenly
    (``ceil(rows / bands)`` rows each), which never needs more words.
    """
    rows = geometry.out_rows
    for height in range(rows, 0, -1):
        if fits(plan_bands(geometry, height, **kwargs)):
            count = -(-rows // height)
            return -(-rows // count)
    return 0


@dataclass(frozen=True)
class BandedStage:
    """What a compiled program does for one band-tiled stage (for reports).

    Attributes
    ----------
    ops:
        The model ops of the stage (the conv, and its pool).
    bands:
        Number of bands.
    rows_per_band:
        Output rows of every band but possibly the last.
    commands:
        Indices (in ``Program.commands``) of the stage's commands.
    load_words, store_words:
        Activation words the stage's LOADs bring in and its STOREs send out.
    amem_words:
        Activation-memory words the stage's band buffers occupy.
    """

    ops: tuple[str, ...]
    bands: int
    rows_per_band: int
    commands: tuple[int, ...]
    load_words: int
    store_words: int
    amem_words: int
