"""Where the compiler keeps one model value: an activation-memory region, a host tensor, or both."""

from __future__ import annotations

from dataclasses import dataclass

from protocol.compiler.alloc import Region

__all__ = ["Value"]


@dataclass
class Value:
    """One model value as the compiler has placed it.

    Attributes
    ----------
    region:
        Its activation-memory words, ``None`` while it is only in host memory (``host``).
    positions, channels, planes:
        ``H W`` (image-like) or ``N`` (tokens), channels per position, and bit planes; the
        value takes ``positions * channels * planes`` activation words.
    shape:
        Its trace layout without the batch: ``(T, C, H, W)`` or ``(T, N, D)``.
    host:
        The host tensor holding the whole value (the input, and the values around a band-tiled
        stage), else ``None``.
    """

    region: Region | None
    positions: int
    channels: int
    planes: int
    shape: tuple[int, ...]
    host: str | None = None

    @property
    def words(self) -> int:
        """Activation words of the whole value."""
        return self.positions * self.channels * self.planes
