"""Placement of values in the activation memory: best-fit regions of words.

:class:`Allocator` hands out :class:`Region` s of the activation memory (``amem_depth``
words) and takes them back, merging neighbouring free blocks. Best fit -- the smallest
free block that holds the request -- keeps large blocks whole for the large values of
later ops. The compiler frees a value's region after its last reader (or, when the
program does not fit otherwise, hands it to the sum of the ``ADD`` that reads it last); the
band tiler
(:mod:`protocol.compiler.banding`) asks how much room is left and sizes its bands to it.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.compiler.errors import CompileError

__all__ = ["Allocator", "Region"]


@dataclass
class Region:
    """Words ``[start, start + size)`` of the activation memory.

    Attributes
    ----------
    start, size:
        The first word and the number of words; the compiler sets ``size`` to 0 once it
        has released the region, so a region shared by aliases is released only once.
    last_use:
        Index of the last model op that reads the value held here (-1: none yet).
    """

    start: int
    size: int
    last_use: int = -1


class Allocator:
    """Best-fit allocation of activation-memory regions (the smallest free block that fits).

    Parameters
    ----------
    depth:
        Words of the activation memory (the configuration's ``amem_depth``).
    """

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self._free: list[tuple[int, int]] = [(0, depth)]  # (start, length), sorted, merged

    @property
    def free_words(self) -> int:
        """Free words in all blocks together."""
        return sum(length for _, length in self._free)

    @property
    def largest_free(self) -> int:
        """Words of the largest free block: the largest region :meth:`alloc` can give now."""
        return max((length for _, length in self._free), default=0)

    def trial(self) -> Allocator:
        """A copy to try allocations on without touching this one."""
        copy = Allocator(self.depth)
        copy._free = list(self._free)
        return copy

    def fits(self, sizes: list[int]) -> bool:
        """Whether regions of ``sizes`` can all be allocated now, in order (tried on a copy)."""
        trial = self.trial()
        try:
            for size in sizes:
                trial.alloc(size, "")
        except CompileError:
            return False
        return True

    def alloc(self, size: int, op: str) -> Region:
        """A region of ``size`` words from the smallest free block that holds it.

        Raises
        ------
        CompileError
            Naming ``op`` when no free block holds ``size`` words.
        """
        fits = [(length, i) for i, (_, length) in enumerate(self._free) if length >= size]
        if fits:
            _, i = min(fits)
            start, length = self._free[i]
            self._free[i] = (start + size, length - size)
            if self._free[i][1] == 0:
                del self._free[i]
            return Region(start, size)
        raise CompileError(
            op,
            f"needs {size} activation words but the largest free block holds "
            f"{self.largest_free} ({self.free_words} free of "
            f"{self.depth}); use a configuration with a larger amem_depth",
        )

    def release(self, region: Region) -> None:
        """Return ``region``'s words to the free blocks (``region`` itself is left as it is)."""
        self._free.append((region.start, region.size))
        self._free.sort()
        merged: list[tuple[int, int]] = []
        for start, length in self._free:
            if merged and merged[-1][0] + merged[-1][1] == start:
                merged[-1] = (merged[-1][0], merged[-1][1] + length)
            else:
                merged.append((start, length))
        self._free = merged
