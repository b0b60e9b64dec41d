"""A memory of ``depth`` words in ``banks`` interleaved banks that reads two consecutive words.

Word ``a`` lives in bank ``a mod 2`` at row ``a // 2``. Writes and ordinary reads touch one
word; with two banks a read also returns the word after the addressed one, which the
other bank delivers in the same cycle, so the pair needs no alignment and the memory's
layout is the same as with one bank. The conv engine uses it for the activation memory
(the two input words of a synapse beat) and the weight memory (the weights of the one or
two channels those words belong to) when ``words_per_beat = 2``.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.accel.packed import memory_ports

__all__ = ["BankedMemory"]


class BankedMemory(wiring.Component):
    """``depth`` words of ``width`` bits in ``banks`` (1 or 2) banks.

    Attributes
    ----------
    rd_addr, rd_en : In
        Read request; ``rd_data`` (word ``rd_addr``) and, with two banks, ``rd_next``
        (word ``rd_addr + 1``; undefined past the last word) follow one cycle later and
        hold while ``rd_en`` is low.
    rd_split, rd_odd_row : In
        With ``split``: while ``rd_split`` is set, the banks are addressed apart, so
        ``rd_data`` is the even word ``rd_addr`` and ``rd_next`` the odd word
        ``2 rd_odd_row + 1`` (zero-word skipping picks one word from each bank).
    wr_addr, wr_en, wr_data : In
        One word written per cycle.
    wr_next_en, wr_next_data : In
        With two banks: with ``wr_en``, also write word ``wr_addr + 1`` (the other bank's).

    With ``words_per_row`` above 1 each bank stores that many words per physical row
    (:class:`hw.accel.packed.PackedMemory`); the ports and their timing are the same.
    ``ram_style`` (``"block"``, ``"ultra"``, ...) is the banks' memory attribute that Vivado and
    Yosys follow (default: see :func:`hw.accel.packed.memory_ports`).
    """

    def __init__(
        self,
        *,
        width: int,
        depth: int,
        banks: int,
        split: bool = False,
        words_per_row: int = 1,
        ram_style: str | None = None,
    ) -> None:
        if banks not in (1, 2):
            raise ValueError(f"BankedMemory banks must be 1 or 2, not {banks!r}")
        if depth < banks:
            raise ValueError(f"BankedMemory depth must be at least its {banks} bank(s), not {depth!r}")
        if split and banks != 2:
            raise ValueError("BankedMemory split reads need two banks")
        if words_per_row != 1 and depth % (banks * words_per_row):
            raise ValueError(
                f"BankedMemory depth must be a multiple of banks x words_per_row ({banks} x "
                f"{words_per_row}), not {depth!r}"
            )
        self._width, self._depth, self._banks, self._split = width, depth, banks, split
        self._words_per_row, self._ram_style = words_per_row, ram_style
        address = (depth - 1).bit_length()
        members = {
            "rd_addr": In(address),
            "rd_en": In(1),
            "rd_data": Out(width),
            "wr_addr": In(address),
            "wr_en": In(1),
            "wr_data": In(width),
        }
        if banks == 2:
            members.update({"rd_next": Out(width), "wr_next_en": In(1), "wr_next_data": In(width)})
        if split:
            members.update({"rd_split": In(1), "rd_odd_row": In(address - 1)})
        super().__init__(members)

    def elaborate(self, platform: object) -> Module:
        m = Module()
        if self._banks == 1:
            rd, wr = memory_ports(
                m,
                "bank",
                width=self._width,
                depth=self._depth,
                words_per_row=self._words_per_row,
                ram_style=self._ram_style,
            )
            m.d.comb += [
                rd.addr.eq(self.rd_addr),
                rd.en.eq(self.rd_en),
                self.rd_data.eq(rd.data),
                wr.addr.eq(self.wr_addr),
                wr.en.eq(self.wr_en),
                wr.data.eq(self.wr_data),
            ]
            return m

        reads = []
        for parity in range(2):
            rd, wr = memory_ports(
                m,
                f"bank{parity}",
                width=self._width,
                depth=-(-self._depth // 2),
                words_per_row=self._words_per_row,
                ram_style=self._ram_style,
            )
            # The bank takes word wr_addr, or else word wr_addr + 1 (odd wr_addr: bank 0's next
            # row). The muxes select on wr_addr[0] itself: a negated select would leave an
            # unread net in the Verilog.
            odd = self.wr_addr[0]
            next_row = (self.wr_addr[1:] + odd)[: len(wr.addr)]
            own_row, own_data = self.wr_addr[1:], self.wr_data
            other_row, other_data = next_row, self.wr_next_data
            if parity == 0:
                m.d.comb += [
                    wr.addr.eq(Mux(odd, other_row, own_row)),
                    wr.en.eq(self.wr_en & (~odd | self.wr_next_en)),
                    wr.data.eq(Mux(odd, other_data, own_data)),
                ]
            else:
                m.d.comb += [
                    wr.addr.eq(Mux(odd, own_row, other_row)),
                    wr.en.eq(self.wr_en & (odd | self.wr_next_en)),
                    wr.data.eq(Mux(odd, own_data, other_data)),
                ]
            m.d.comb += rd.en.eq(self.rd_en)
            reads.append(rd)
        # Even address a: both words in row a / 2. Odd a: word a in bank 1, row a // 2, and
        # word a + 1 in bank 0, the row after.
        m.d.comb += [
            reads[0].addr.eq((self.rd_addr[1:] + self.rd_addr[0])[: len(reads[0].addr)]),
            reads[1].addr.eq(self.rd_addr[1:]),
        ]
        odd = Signal()
        with m.If(self.rd_en):
            m.d.sync += odd.eq(self.rd_addr[0])
        if self._split:
            with m.If(self.rd_split):
                m.d.comb += [reads[0].addr.eq(self.rd_addr[1:]), reads[1].addr.eq(self.rd_odd_row)]
                with m.If(self.rd_en):
                    m.d.sync += odd.eq(0)
        m.d.comb += [
            self.rd_data.eq(Mux(odd, reads[1].data, reads[0].data)),
            self.rd_next.eq(Mux(odd, reads[0].data, reads[1].data)),
        ]
        return m
