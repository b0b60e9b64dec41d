"""The zero-word-skipping request generator of the conv engine (``AcceleratorConfig.zero_skip``).

For each kernel tap (``C P`` consecutive activation words from ``tap_addr``) it walks the
occupancy rows the tap touches (:mod:`protocol.zero_skip` states the schedule) and issues
one beat request per cycle: the lowest not yet taken non-zero word of even address and
the lowest of odd address in the current row, so the two words come from different
activation banks. A row whose words are all zero still takes one (empty) beat; a tap
in the padding is one empty beat. Each request carries the two words' offsets in the
tap split into weight row (``offset // P``, the channel within the tap) and bit plane,
found with a reciprocal multiply instead of a divider (:func:`protocol.zero_skip.divider_shift`).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.accel.ports import ADDRESS_BITS, occupancy_read_signature
from protocol.zero_skip import OCCUPANCY_ROW

__all__ = ["TapScanner"]

_ROW_SHIFT = (OCCUPANCY_ROW - 1).bit_length()
_EVEN = sum(1 << i for i in range(0, OCCUPANCY_ROW, 2))


def _lowest(m: Module, bits: Value, name: str) -> tuple[Signal, Signal]:
    """One-hot lowest set bit of ``bits`` and its index."""
    onehot = Signal(len(bits), name=f"{name}_onehot")
    index = Signal(_ROW_SHIFT, name=f"{name}_index")
    m.d.comb += onehot.eq(bits & (~bits + 1))
    m.d.comb += index.eq(
        Cat(*(Cat(*(onehot[i] for i in range(len(bits)) if i >> b & 1)).any() for b in range(_ROW_SHIFT)))
    )
    return onehot, index


class TapScanner(wiring.Component):
    """Beat requests over the non-zero words of kernel taps.

    Parameters
    ----------
    offset_bits:
        Width of a word's offset in its tap (``C P <= 2**offset_bits``).
    planes_bits, shift:
        Width of ``planes`` and the reciprocal's shift (``recip = ceil(2**shift / planes)``).

    Attributes
    ----------
    tap_valid, tap_addr, tap_pad, tap_last : In
        The current tap (stable until ``tap_done``): its first word's address, whether it
        lies in the padding, and whether it is the dot product's last tap.
    words, planes, recip : In
        ``C P`` words per tap, bit planes ``P`` and ``ceil(2**shift / P)`` (constant per command).
    advance : In
        The request of this cycle is taken (the read pipeline moves).
    valid, even_addr, odd_addr, present, channel, plane, last : Out
        The request: the two words' addresses, which of them is a real (non-zero) word,
        per word its weight row in the tap and bit plane, and whether it ends the dot product.
    tap_done : Out
        Pulse: the tap's last request is taken (the loop nest steps to the next tap).
    occ : Out(occupancy_read_signature())
        The occupancy-memory read port.
    """

    def __init__(self, *, offset_bits: int, planes_bits: int, shift: int) -> None:
        self._offset_bits, self._shift = offset_bits, shift
        super().__init__(
            {
                "tap_valid": In(1),
                "tap_addr": In(ADDRESS_BITS),
                "tap_pad": In(1),
                "tap_last": In(1),
                "words": In(offset_bits + 1),
                "planes": In(planes_bits),
                "recip": In(shift + 1),
                "advance": In(1),
                "valid": Out(1),
                "even_addr": Out(ADDRESS_BITS),
                "odd_addr": Out(ADDRESS_BITS),
                "present": Out(2),
                "channel": Out(offset_bits).array(2),
                "plane": Out(planes_bits).array(2),
                "last": Out(1),
                "tap_done": Out(1),
                "occ": Out(occupancy_read_signature()),
            }
        )

    def elaborate(self, platform: object) -> Module:
        m = Module()
        row_bits = ADDRESS_BITS - _ROW_SHIFT
        row, end_row = Signal(row_bits), Signal(row_bits)
        first_bit, last_bit = Signal(_ROW_SHIFT), Signal(_ROW_SHIFT)
        first_row = Signal()
        consumed = Signal(OCCUPANCY_ROW)
        scanning = Signal()

        tap_end_addr = Signal(ADDRESS_BITS)
        m.d.comb += tap_end_addr.eq(self.tap_addr + self.words - 1)

        # The row's bits inside the tap, not yet taken.
        from_first = Signal(OCCUPANCY_ROW)
        to_last = Signal(OCCUPANCY_ROW)
        at_end = Signal()
        m.d.comb += [
            at_end.eq(row == end_row),
            from_first.eq(
                Mux(first_row, Const((1 << OCCUPANCY_ROW) - 1) << first_bit, (1 << OCCUPANCY_ROW) - 1)
            ),
            to_last.eq(
                Mux(
                    at_end,
                    Const((1 << OCCUPANCY_ROW) - 1) >> Value.cast(~last_bit)[:_ROW_SHIFT],
                    (1 << OCCUPANCY_ROW) - 1,
                )
            ),
        ]
        pending = Signal(OCCUPANCY_ROW)
        m.d.comb += pending.eq(self.occ.data & from_first & to_last & ~consumed)
        even_hot, even_index = _lowest(m, pending & _EVEN, "scan_even")
        odd_hot, odd_index = _lowest(m, pending & ~_EVEN, "scan_odd")
        rest = Signal(OCCUPANCY_ROW)
        m.d.comb += rest.eq(pending & ~even_hot & ~odd_hot)
        row_done, tap_end = Signal(), Signal()
        m.d.comb += [row_done.eq(~rest.any()), tap_end.eq(row_done & at_end)]

        base = Cat(Const(0, _ROW_SHIFT), row)
        m.d.comb += [
            self.even_addr.eq(base | even_index),
            self.odd_addr.eq(base | odd_index),
        ]
        for k, address in enumerate((self.even_addr, self.odd_addr)):
            offset = Signal(self._offset_bits, name=f"scan_offset{k}")
            m.d.comb += offset.eq(address - self.tap_addr)
            channel = (offset * self.recip) >> self._shift
            m.d.comb += [
                self.channel[k].eq(channel),
                self.plane[k].eq(offset - self.channel[k] * self.planes),
            ]

        with m.If(scanning):
            m.d.comb += [
                self.valid.eq(1),
                self.present.eq(Cat(even_hot.any(), odd_hot.any())),
                self.last.eq(self.tap_last & tap_end),
            ]
            with m.If(self.advance):
                with m.If(tap_end):
                    m.d.comb += self.tap_done.eq(1)
                    m.d.sync += scanning.eq(0)
                with m.Elif(row_done):
                    m.d.comb += [self.occ.addr.eq(row + 1), self.occ.en.eq(1)]
                    m.d.sync += [row.eq(row + 1), first_row.eq(0), consumed.eq(0)]
                with m.Else():
                    m.d.sync += consumed.eq(consumed | even_hot | odd_hot)
        with m.Elif(self.tap_valid & self.tap_pad):
            m.d.comb += [self.valid.eq(1), self.present.eq(0), self.last.eq(self.tap_last)]
            m.d.comb += self.tap_done.eq(self.advance)
        with m.Elif(self.tap_valid):
            # Set-up cycle: read the tap's first occupancy row.
            m.d.comb += [self.occ.addr.eq(self.tap_addr[_ROW_SHIFT:]), self.occ.en.eq(1)]
            m.d.sync += [
                scanning.eq(1),
                row.eq(self.tap_addr[_ROW_SHIFT:]),
                end_row.eq(tap_end_addr[_ROW_SHIFT:]),
                first_bit.eq(self.tap_addr[:_ROW_SHIFT]),
                last_bit.eq(tap_end_addr[:_ROW_SHIFT]),
                first_row.eq(1),
                consumed.eq(0),
            ]
        return m
