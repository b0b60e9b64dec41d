"""A memory of ``depth`` narrow words stored ``words_per_row`` to a physical row.

Word ``a`` lives in row ``a // words_per_row`` at lane ``a mod words_per_row``. A write
touches one lane through a write port whose ``granularity`` is the word width (the byte
enables of the RAM), so the other words of the row keep their values without a
read-modify-write; a read fetches the row and selects the lane of the address it was
given, which is registered with the read so that the word comes out in the same cycle and
holds for as long as the row does.

Why: an UltraScale+ URAM288 is 4096 rows of 72 bits with nine byte-write enables, and
Vivado stores a memory one logical word per row. The ``kv260`` activation memory's 16-bit
words would use 16 of the 72 bits, so ``2^20`` words would need 256 URAM288 (the K26 has
64); four words a row store them in 64. The rows of a packed memory carry ``ram_style =
"ultra"`` unless told otherwise, which Vivado and Yosys both read: packing is only worth it
in URAM, and without the attribute neither tool would put this memory there for certain.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["WORDS_PER_ROW", "PackedMemory", "memory_ports"]

#: The ``words_per_row`` a :class:`PackedMemory` accepts.
WORDS_PER_ROW = (1, 2, 4)


def _read_signature(width: int, address: int) -> wiring.Signature:
    # The requester's view (as a Memory read port's members): address and enable out, data in.
    return wiring.Signature({"addr": Out(address), "en": Out(1), "data": In(width)})


def _write_signature(width: int, address: int) -> wiring.Signature:
    return wiring.Signature({"addr": Out(address), "en": Out(1), "data": Out(width)})


class PackedMemory(wiring.Component):
    """``depth`` words of ``width`` bits, ``words_per_row`` of them per physical row.

    Its ports behave as those of a one-word-per-row :class:`~amaranth.lib.memory.Memory`
    with a non-transparent read port (``read_port(transparent_for=())``) and a write port.

    Parameters
    ----------
    width : int
        Bits of one word.
    depth : int
        Words; a multiple of ``words_per_row``.
    words_per_row : int
        Words per physical row: 1, 2 or 4.
    ram_style : str or None
        ``ram_style`` attribute of the row memory (``"ultra"``, ``"block"``, ...); ``None``:
        ``"ultra"`` with more than one word a row, none otherwise.

    Attributes
    ----------
    rd : In(Signature(addr, en, data))
        ``rd.data`` is word ``rd.addr`` one cycle after ``rd.en`` and holds while ``rd.en``
        is low.
    wr : In(Signature(addr, en, data))
        Word ``wr.addr`` takes ``wr.data`` at the clock edge where ``wr.en`` is high; a read
        of the same row in that cycle returns the row's old contents.
    """

    def __init__(self, *, width: int, depth: int, words_per_row: int, ram_style: str | None = None) -> None:
        for name, value in (("width", width), ("depth", depth)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"PackedMemory {name} must be a positive int, not {value!r}")
        if words_per_row not in WORDS_PER_ROW:
            raise ValueError(
                f"PackedMemory words_per_row must be one of {WORDS_PER_ROW}, not {words_per_row!r}"
            )
        if depth % words_per_row:
            raise ValueError(
                f"PackedMemory depth must be a multiple of words_per_row ({words_per_row}), not {depth}"
            )
        self._width, self._depth, self._words = width, depth, words_per_row
        self._ram_style = ("ultra" if words_per_row > 1 else None) if ram_style is None else ram_style
        address = max((depth - 1).bit_length(), 1)
        super().__init__(
            {"rd": In(_read_signature(width, address)), "wr": In(_write_signature(width, address))}
        )

    def elaborate(self, platform: object) -> Module:
        m = Module()
        width, words = self._width, self._words
        lane_bits = (words - 1).bit_length()
        m.submodules.rows = rows = Memory(
            shape=width * words, depth=self._depth // words, init=[], attrs=_attrs(self._ram_style)
        )
        rd, wr = rows.read_port(transparent_for=()), rows.write_port(granularity=width)
        m.d.comb += [
            rd.addr.eq(self.rd.addr[lane_bits:]),
            rd.en.eq(self.rd.en),
            wr.addr.eq(self.wr.addr[lane_bits:]),
            # Every lane sees the word; the enable picks the one it lands in.
            wr.data.eq(self.wr.data.replicate(words)),
        ]
        if words == 1:
            m.d.comb += [wr.en.eq(self.wr.en), self.rd.data.eq(rd.data)]
            return m
        m.d.comb += wr.en.eq(self.wr.en << self.wr.addr[:lane_bits])
        # The lane of the word being read, kept with the row: both change only with rd.en.
        lane = Signal(lane_bits)
        with m.If(self.rd.en):
            m.d.sync += lane.eq(self.rd.addr[:lane_bits])
        # A case per lane rather than word_select: its shift would be as wide as the row.
        with m.Switch(lane):
            for index in range(words):
                with m.Case(index):
                    m.d.comb += self.rd.data.eq(rd.data[index * width : (index + 1) * width])
        return m


def _attrs(ram_style: str | None) -> dict[str, str] | None:
    return None if ram_style is None else {"ram_style": ram_style}


def memory_ports(
    m: Module, name: str, *, width: int, depth: int, words_per_row: int = 1, ram_style: str | None = None
) -> tuple[wiring.PureInterface, wiring.PureInterface]:
    """Add a memory of ``depth`` words to ``m`` as submodule ``name``; its ``(read, write)`` ports.

    With ``words_per_row = 1`` it is a plain :class:`~amaranth.lib.memory.Memory` (its
    ``read_port(transparent_for=())`` and ``write_port()``), otherwise a :class:`PackedMemory`
    whose ports have the same members (``addr``, ``en``, ``data``) and timing. ``ram_style``
    as :class:`PackedMemory`'s.
    """
    if words_per_row == 1:
        m.submodules[name] = memory = Memory(shape=width, depth=depth, init=[], attrs=_attrs(ram_style))
        return memory.read_port(transparent_for=()), memory.write_port()
    m.submodules[name] = packed = PackedMemory(
        width=width, depth=depth, words_per_row=words_per_row, ram_style=ram_style
    )
    return packed.rd, packed.wr
