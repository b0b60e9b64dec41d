"""Nested-loop address generation and the one-stage memory read pipeline of the engines.

Every engine walks its operands with a rectangular loop nest and affine addresses
(``addr = start + sum_i idx_i * stride_i``). :class:`LoopNest` generates such nests
without multipliers: each output keeps one register per level holding its value at
the start of that level's current iteration, so a step is one add (``base_i +
stride_i``) and the inner levels restart from the new value.

:func:`read_stage` is the pipeline every reader shares: stage 0 is the loop's current
element (memory address + metadata), stage 1 the memory's registered read data plus
the delayed metadata; the loop advances only when stage 1 is empty or consumed, and
the memory's read enable stalls with it, so no element is lost or repeated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Elaboratable, Module, Shape, Signal, Value

__all__ = ["LoopNest", "ReadStage", "read_stage", "registered"]


class LoopNest(Elaboratable):
    """A rectangular loop nest, outermost level first, with affine outputs.

    Parameters
    ----------
    name:
        Prefix of the generated signal names.
    levels:
        ``(level name, index width)`` pairs, outermost first.

    Attributes
    ----------
    count : dict of Signal
        Iterations of each level, up to ``2**width`` (driven by the owner, >= 1, stable while
        ``active``).
    idx : dict of Signal
        Current index of each level.
    last : dict of Signal
        ``idx == count - 1`` per level.
    start : Signal, in
        Pulse: restart at index 0 with every output at its ``init`` (sampled this cycle).
    step : Signal, in
        Advance to the next element (ignored unless ``active``).
    active : Signal, out
        The nest holds a current element; cleared by the step after the final element.
    final : Signal, out
        The current element is the final one (every level at its last index).
    """

    def __init__(self, name: str, levels: Sequence[tuple[str, int]]) -> None:
        if not levels:
            raise ValueError("LoopNest needs at least one level")
        self.name = name
        self.levels = [level for level, _ in levels]
        self.count = {level: Signal(width + 1, name=f"{name}_{level}_count") for level, width in levels}
        self.idx = {level: Signal(width, name=f"{name}_{level}") for level, width in levels}
        self.last = {level: Signal(name=f"{name}_{level}_last") for level, _ in levels}
        self.start = Signal(name=f"{name}_start")
        self.step = Signal(name=f"{name}_step")
        self.active = Signal(name=f"{name}_active")
        self.final = Signal(name=f"{name}_final")
        self._outputs: list[tuple[list[Signal], Value, dict[str, Value]]] = []

    def within(self, *levels: str) -> Value:
        """1 when every level in ``levels`` is at its last index (an inner block ends here)."""
        return Cat(*(self.last[level] for level in levels)).all()

    def output(
        self, name: str, shape: Shape | int, init: Value | int, strides: Mapping[str, Value | int]
    ) -> Signal:
        """Add an affine output ``init + sum idx[level] * strides[level]`` (levels not given: 0)."""
        shape = Shape.cast(shape)
        unknown = sorted(set(strides) - set(self.levels))
        if unknown:
            raise ValueError(f"LoopNest {self.name}: no level(s) {unknown}")
        bases = [Signal(shape, name=f"{self.name}_{name}_at_{level}") for level in self.levels]
        self._outputs.append((bases, Value.cast(init), dict(strides)))
        return bases[-1]

    def elaborate(self, platform: object) -> Module:
        m = Module()
        n = len(self.levels)
        lasts = [self.last[level] for level in self.levels]
        for level in self.levels:
            m.d.comb += self.last[level].eq(self.idx[level] == self.count[level] - 1)
        m.d.comb += self.final.eq(Cat(*lasts).all())
        # Level i advances when every inner level is at its last index and it is not.
        carry = [Cat(*lasts[i + 1 :]).all() if i < n - 1 else Const(1) for i in range(n)]
        moves = [carry[i] & ~lasts[i] for i in range(n)]

        with m.If(self.start):
            m.d.sync += self.active.eq(1)
            m.d.sync += [self.idx[level].eq(0) for level in self.levels]
            for bases, init, _ in self._outputs:
                m.d.sync += [base.eq(init) for base in bases]
        with m.Elif(self.step & self.active):
            with m.If(self.final):
                m.d.sync += self.active.eq(0)
            # At most one level moves; the levels inside it restart.
            for i, level in enumerate(self.levels):
                with m.If(moves[i]):
                    m.d.sync += self.idx[level].eq(self.idx[level] + 1)
                    m.d.sync += [self.idx[inner].eq(0) for inner in self.levels[i + 1 :]]
                    for bases, _, strides in self._outputs:
                        stride = strides.get(level, 0)
                        nxt = (bases[i] + stride)[: len(bases[i])]
                        if bases[i].shape().signed:
                            nxt = nxt.as_signed()
                        m.d.sync += [base.eq(nxt) for base in bases[i:]]
        return m


@dataclass
class ReadStage:
    """Stage 1 of a read pipeline (see :func:`read_stage`)."""

    valid: Signal
    meta: dict[str, Signal]
    advance: Value


def read_stage(m: Module, *, name: str, active: Value, ready: Value, meta: Mapping[str, Value]) -> ReadStage:
    """Build a one-stage read pipeline behind a loop (or any request source).

    Parameters
    ----------
    m:
        The module to add logic to.
    name:
        Signal name prefix.
    active:
        Stage 0 holds a request this cycle.
    ready:
        The consumer takes stage 1 this cycle (ignored when stage 1 is empty).
    meta:
        Stage-0 values to delay alongside the read data.

    Returns
    -------
    ReadStage
        ``valid`` and the delayed ``meta`` of stage 1, and ``advance``: stage 0 moves to
        stage 1 this cycle. The caller steps its loop with ``active & advance`` and drives
        each memory's read enable with ``advance`` (ANDed with "this request really reads",
        so a skipped read leaves the memory's data register alone).
    """
    valid = Signal(name=f"{name}_s1_valid")
    advance = Signal(name=f"{name}_advance")
    ready = Value.cast(ready)
    # A consumer that is always ready (``ready=1``) is written as such: Amaranth would fold
    # ``~valid | 1`` to 1 but keep the unread ``~valid``.
    always_ready = isinstance(ready, Const) and ready.value == 1
    m.d.comb += advance.eq(1 if always_ready else ~valid | ready)
    delayed = {}
    for key, value in meta.items():
        value = Value.cast(value)
        reg = Signal(value.shape(), name=f"{name}_s1_{key}", reset_less=True)
        delayed[key] = reg
        with m.If(advance):
            m.d.sync += reg.eq(value)
    with m.If(advance):
        m.d.sync += valid.eq(active)
    return ReadStage(valid, delayed, advance)


def registered(m: Module, value: Value, name: str) -> Signal:
    """``value`` delayed by one cycle (for derived descriptor quantities: the descriptor is
    stable for the whole command, so the register is valid from the cycle after ``start``)."""
    value = Value.cast(value)
    reg = Signal(value.shape(), name=name, reset_less=True)
    m.d.sync += reg.eq(value)
    return reg
