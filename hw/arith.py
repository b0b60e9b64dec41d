"""Width-explicit arithmetic helpers shared by the PE generators.

Amaranth extends operands implicitly, but its Verilog output then hands Verilator
operators whose operands differ in width, which ``verilator -Wall`` reports as
``WIDTHEXPAND``. These helpers make every extension explicit in the source, so the
generated Verilog is width-clean without waivers.
"""

from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import Cat, Const, Mux, Value, signed

from contract.numerics import signed_range

__all__ = [
    "equals",
    "extend",
    "saturate",
    "saturate_unsigned",
    "signed_max",
    "signed_min",
    "tree_sum",
    "word_at",
]


def extend(value: Value, width: int) -> Value:
    """``value`` widened to ``width`` bits, sign-extended if it is signed, zero-extended otherwise."""
    value = Value.cast(value)
    shape = value.shape()
    if width < shape.width:
        raise ValueError(f"Cannot extend a {shape.width}-bit value to {width} bits")
    if width == shape.width:
        return value
    fill = value[-1] if shape.signed else Const(0, 1)
    widened = Cat(value, fill.replicate(width - shape.width))
    return widened.as_signed() if shape.signed else widened


def signed_max(bits: int) -> Const:
    """Largest ``bits``-bit signed integer as a ``signed(bits)`` constant."""
    return Const(signed_range(bits)[1], signed(bits))


def signed_min(bits: int) -> Const:
    """Smallest ``bits``-bit signed integer as a ``signed(bits)`` constant."""
    return Const(signed_range(bits)[0], signed(bits))


def saturate(value: Value, bits: int) -> Value:
    """Clamp a signed ``value`` to the signed ``bits`` range, as :func:`contract.numerics.saturate`.

    The value fits iff its bits from ``bits - 1`` upwards are all equal (a pure sign
    extension); otherwise its sign selects the bound. No comparator is needed.
    """
    value = Value.cast(value)
    shape = value.shape()
    if not shape.signed:
        raise TypeError(f"saturate() expects a signed value, not {shape!r}")
    if shape.width <= bits:
        return extend(value, bits)
    top = value[bits - 1 :]
    fits = ~top.any() | top.all()
    return Mux(fits, value[:bits].as_signed(), Mux(value[-1], signed_min(bits), signed_max(bits)))


def saturate_unsigned(value: Value, bits: int) -> Value:
    """Clamp a non-negative ``value`` to the signed ``bits`` maximum; returns ``signed(bits)``."""
    value = Value.cast(value)
    if value.shape().signed:
        raise TypeError(f"saturate_unsigned() expects an unsigned value, not {value.shape()!r}")
    if len(value) < bits:
        return extend(value, bits).as_signed()
    too_big = value[bits - 1 :].any()
    return Mux(too_big, signed_max(bits), value[:bits].as_signed())


def tree_sum(terms: Sequence[Value], width: int) -> Value:
    """Sum of ``terms`` (each exactly ``width`` bits) as a balanced adder tree, modulo ``2**width``.

    Every adder sees two ``width``-bit operands (no implicit extension); the caller
    chooses ``width`` so that the true sum fits and the truncation is exact.
    """
    if not terms:
        raise ValueError("tree_sum() needs at least one term")
    level = [Value.cast(term) for term in terms]
    for term in level:
        if len(term) != width:
            raise ValueError(f"tree_sum() terms must be {width} bits wide, not {len(term)}")
    while len(level) > 1:
        paired = [(level[i] + level[i + 1])[:width] for i in range(0, len(level) - 1, 2)]
        level = paired + level[len(level) - len(level) % 2 :]
    return level[0]


def equals(value: Value, constant: int) -> Value:
    """``value == constant``, spelled ``~value.any()`` for 0.

    Amaranth's writer strips the zero constant and emits ``!value``, a logical not of a
    multi-bit value that Verilator reports (``WIDTHTRUNC`` on ``LOGNOT``); a reduction
    is the same test without it.
    """
    value = Value.cast(value)
    return ~value.any() if constant == 0 else value == constant


def word_at(value: Value, index: Value, width: int) -> Value:
    """``value.word_select(index, width)`` as a full-width shift and a constant slice.

    Amaranth writes a variable part-select as one shift assigned straight to the narrow
    result, which Verilator reports as ``WIDTHTRUNC``; the slice of a full-width shift is
    the same bits (zero past the end, as the part-select) without it.
    """
    value = Value.cast(value)
    offset = index if width == 1 else index * width
    return (value >> offset)[:width]
