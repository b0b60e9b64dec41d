"""Command descriptors: the binary format the host streams to the accelerator.

A program is a sequence of commands on the input stream; each command is one
descriptor of :data:`DESC_WORDS` 64-bit little-endian words followed by its payload
(docs/accelerator.md, "Stream protocol"). :data:`DESCRIPTOR_LAYOUT` is the one
definition of the descriptor's fields: the compiler packs descriptors with it and the
RTL decodes them through an Amaranth view of the same layout.

:func:`field_checks` states which field values the hardware accepts, once, in
operators that work both on Python integers (the compiler's early check) and on
Amaranth values (the sequencer's "bad descriptor" error).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import SimpleNamespace
from typing import Any

from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from hw.accel.config import STREAM_BITS, AcceleratorConfig

__all__ = [
    "MAGIC",
    "DESC_WORDS",
    "DESCRIPTOR_LAYOUT",
    "Opcode",
    "Grouping",
    "Descriptor",
    "DescriptorError",
    "field_checks",
    "group_size",
    "FIELD_DOCS",
    "markdown_table",
]

#: First byte of every descriptor; a misaligned stream almost never shows it in the right place.
MAGIC = 0xA5

#: Fields of a descriptor, LSB first (the first stream word holds the lowest 64 bits).
DESCRIPTOR_LAYOUT = data.StructLayout(
    {
        # word 0
        "magic": unsigned(8),
        "opcode": unsigned(8),
        "timesteps": unsigned(8),
        "grouping": unsigned(8),
        "index": unsigned(32),
        # words 1, 2: activation-memory addresses (in words of T bits)
        "src0": unsigned(32),
        "src1": unsigned(32),
        "src2": unsigned(32),
        "dst": unsigned(32),
        # words 3, 4: geometry
        "in_h": unsigned(16),
        "in_w": unsigned(16),
        "in_c": unsigned(16),
        "out_h": unsigned(16),
        "out_w": unsigned(16),
        "out_c": unsigned(16),
        "classes": unsigned(16),
        "heads": unsigned(8),
        "head_dim": unsigned(8),
        # word 5
        "planes_in": unsigned(8),
        "planes_in2": unsigned(8),
        "planes_out": unsigned(8),
        "kernel": unsigned(8),
        "stride": unsigned(8),
        "pad_top": unsigned(8),
        "pad_left": unsigned(8),
        "reserved0": unsigned(8),
        # word 6
        "count": unsigned(32),
        "threshold": signed(32),
        # word 7
        "reserved1": unsigned(32),
        "check": unsigned(32),
    }
)

#: 64-bit stream words per descriptor.
DESC_WORDS = DESCRIPTOR_LAYOUT.size // STREAM_BITS
assert DESC_WORDS * STREAM_BITS == DESCRIPTOR_LAYOUT.size

_FIELDS = tuple(name for name, _ in DESCRIPTOR_LAYOUT)


class Opcode(enum.IntEnum):
    """Command kinds (descriptor field ``opcode``); 0 is never valid."""

    END = 1  #: finish the program (done flag); no payload
    LOAD = 2  #: stream -> activation memory, ``count`` words at ``dst``
    STORE = 3  #: activation memory -> output stream, ``count`` words from ``src0`` (TLAST at the end)
    CONV = 4  #: conv / linear -> LIF; payload: per output-channel group, parameters then weights
    POOL = 5  #: max-pool (OR) of spikes
    ADD = 6  #: residual add of bit-plane integers
    ATTENTION = 7  #: spiking attention ``Q (K^T V)`` per head and token group -> attention LIF
    HEAD = 8  #: sum-pool over time and tokens, then integer logits to the output stream


class Grouping(enum.IntEnum):
    """Token grouping of an attention command (descriptor field ``grouping``)."""

    JOINT = 0
    TEMPORAL = 1
    SPATIAL = 2


class DescriptorError(ValueError):
    """A descriptor is malformed or does not fit the accelerator configuration.

    Attributes
    ----------
    index:
        Command index in the program.
    opcode:
        Name of the command kind.
    check:
        Name of the failed rule (a key of :func:`field_checks`).
    """

    def __init__(self, index: int, opcode: str, check: str, reason: str) -> None:
        self.index, self.opcode, self.check = index, opcode, check
        super().__init__(f"command {index} ({opcode}): {check}: {reason}")


def group_size(grouping: Any, timesteps: Any, tokens: Any) -> Any:
    """Token group size ``G`` of an attention command (works on ints and Amaranth values)."""
    if isinstance(grouping, int):
        return {Grouping.JOINT: timesteps * tokens, Grouping.TEMPORAL: timesteps, Grouping.SPATIAL: tokens}[
            Grouping(grouping)
        ]
    from amaranth.hdl import Mux

    from hw.arith import equals

    return Mux(
        equals(grouping, int(Grouping.JOINT)),
        timesteps * tokens,
        Mux(equals(grouping, int(Grouping.TEMPORAL)), timesteps, tokens),
    )


def field_checks(d: Any, cfg: AcceleratorConfig) -> dict[Opcode, dict[str, Any]]:
    """Per opcode, named rules its fields must satisfy on ``cfg``.

    ``d`` has the descriptor fields as attributes: Python integers or Amaranth values;
    each rule is a ``bool`` or a 1-bit Amaranth value accordingly (only ``&``, ``|``,
    comparisons and ``*`` are used). Address bounds are not here: the core checks every
    memory access at run time instead (error flag ``ADDRESS``), and the compiler checks
    them statically (:meth:`Descriptor.validate`).
    """
    t_ok = (d.timesteps >= 1) & (d.timesteps <= cfg.timesteps)
    planes_in_ok = (d.planes_in >= 1) & (d.planes_in <= cfg.numerics.input_bits)
    window_ok = (d.kernel >= 1) & (d.stride >= 1) & (d.pad_top < d.kernel) & (d.pad_left < d.kernel)
    geometry_ok = (d.in_h >= 1) & (d.in_w >= 1) & (d.in_c >= 1) & (d.out_h >= 1) & (d.out_w >= 1)
    return {
        Opcode.END: {},
        Opcode.LOAD: {"count": d.count >= 1},
        Opcode.STORE: {"count": d.count >= 1},
        Opcode.CONV: {
            "timesteps": t_ok,
            "planes_in": planes_in_ok,
            "window": window_ok,
            "geometry": geometry_ok & (d.out_c >= 1),
            "fan_in": d.in_c * d.kernel * d.kernel <= cfg.wmem_depth,
        },
        Opcode.POOL: {
            "timesteps": t_ok,
            "window": window_ok,
            "geometry": geometry_ok,
            "planes_in": d.planes_in == 1,
        },
        Opcode.ADD: {
            "count": d.count >= 1,
            "planes_in": planes_in_ok,
            "planes_in2": (d.planes_in2 >= 1) & (d.planes_in2 <= cfg.numerics.input_bits),
            "planes_out": (d.planes_out >= d.planes_in)
            & (d.planes_out >= d.planes_in2)
            & (d.planes_out <= cfg.numerics.input_bits),
        },
        Opcode.ATTENTION: {
            "timesteps": t_ok,
            "head_dim": (d.head_dim >= 1) & (d.head_dim <= cfg.head_dim),
            "heads": (d.heads >= 1) & (d.heads * d.head_dim == d.in_c),
            "tokens": (d.in_w >= 1) & (d.in_w <= cfg.max_tokens),
            "grouping": d.grouping <= int(max(Grouping)),
            "group_size": group_size(d.grouping, d.timesteps, d.in_w) <= cfg.max_group,
            "threshold": (d.threshold >= 1) & (d.threshold <= cfg.numerics.membrane_max),
        },
        Opcode.HEAD: {
            "timesteps": t_ok,
            "planes_in": planes_in_ok,
            "features": (d.in_c >= 1) & (d.in_c <= cfg.max_features),
            "tokens": (d.in_w >= 1) & (d.in_w <= cfg.max_tokens),
            "classes": d.classes >= 1,
        },
    }


@dataclass(frozen=True)
class Descriptor:
    """One command descriptor; unset fields are zero.

    Parameters
    ----------
    opcode:
        The command kind.
    index:
        Position of the command in its program (the core checks the sequence).
    fields:
        Field name -> value, names from :data:`DESCRIPTOR_LAYOUT` (not ``magic``,
        ``opcode``, ``index`` or ``check``, which this class fills in).
    """

    opcode: Opcode
    index: int
    fields: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "opcode", Opcode(self.opcode))
        reserved = {"magic", "opcode", "index", "check"} & set(self.fields)
        if reserved:
            raise ValueError(f"Descriptor fields {sorted(reserved)} are filled in automatically")
        unknown = sorted(set(self.fields) - set(_FIELDS))
        if unknown:
            raise ValueError(f"Descriptor has no field(s) {unknown}; fields: {', '.join(_FIELDS)}")
        for name, value in self.fields.items():
            shape = DESCRIPTOR_LAYOUT[name].shape
            lo, hi = (
                (-(1 << (shape.width - 1)), (1 << (shape.width - 1)) - 1)
                if shape.signed
                else (0, (1 << shape.width) - 1)
            )
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise ValueError(
                    f"Descriptor field {name!r} must be an integer in [{lo}, {hi}], not {value!r}"
                )
        if not isinstance(self.index, int) or not 0 <= self.index < 1 << 32:
            raise ValueError(f"Descriptor index must be a 32-bit unsigned integer, not {self.index!r}")

    def __getattr__(self, name: str) -> int:
        if name in _FIELDS:
            return self.value(name)
        raise AttributeError(name)

    def value(self, name: str) -> int:
        """Field ``name`` as stored (``magic``, ``opcode`` and ``index`` included; ``check`` excluded)."""
        if name == "magic":
            return MAGIC
        if name == "opcode":
            return int(self.opcode)
        if name == "index":
            return self.index
        return int(self.fields.get(name, 0))

    def words(self) -> list[int]:
        """The :data:`DESC_WORDS` stream words (unsigned 64-bit), checksum filled in."""
        return list(self._words)

    @cached_property
    def _words(self) -> tuple[int, ...]:
        # A descriptor is immutable and its words go into every sample's stream: encode once.
        values = {name: self.value(name) for name in _FIELDS if name != "check"}
        body = DESCRIPTOR_LAYOUT.const({**values, "check": 0}).as_bits()
        halves = [(body >> (32 * i)) & 0xFFFF_FFFF for i in range(2 * DESC_WORDS)]
        check = (-sum(halves)) & 0xFFFF_FFFF
        bits = body | (check << DESCRIPTOR_LAYOUT["check"].offset)
        return tuple((bits >> (STREAM_BITS * i)) & ((1 << STREAM_BITS) - 1) for i in range(DESC_WORDS))

    @classmethod
    def from_words(cls, words: list[int]) -> Descriptor:
        """Decode stream words (the checksum and magic are verified)."""
        if len(words) != DESC_WORDS:
            raise ValueError(f"a descriptor is {DESC_WORDS} words, not {len(words)}")
        bits = sum(int(w) << (STREAM_BITS * i) for i, w in enumerate(words))
        halves = [(bits >> (32 * i)) & 0xFFFF_FFFF for i in range(2 * DESC_WORDS)]
        if sum(halves) & 0xFFFF_FFFF:
            raise ValueError("descriptor checksum mismatch")
        view = data.Const(DESCRIPTOR_LAYOUT, bits)
        if view.magic != MAGIC:
            raise ValueError(f"descriptor magic {int(view.magic):#x} != {MAGIC:#x}")
        fields = {
            name: int(view[name])
            for name in _FIELDS
            if name not in ("magic", "opcode", "index", "check") and int(view[name])
        }
        return cls(Opcode(int(view.opcode)), int(view.index), fields)

    def validate(self, cfg: AcceleratorConfig) -> None:
        """Raise :class:`DescriptorError` unless the core would accept this descriptor on ``cfg``.

        Adds the static address bounds (every word read or written inside ``amem_depth``)
        to the field rules the core checks itself.
        """
        ns = SimpleNamespace(**{name: self.value(name) for name in _FIELDS})
        for name, ok in field_checks(ns, cfg)[self.opcode].items():
            if not ok:
                shown = {k: v for k, v in self.fields.items() if v}
                raise DescriptorError(
                    self.index,
                    self.opcode.name,
                    name,
                    f"fields {shown} violate the rule on configuration {cfg.name!r}",
                )
        for what, start, size in self.regions():
            if start + size > cfg.amem_depth:
                raise DescriptorError(
                    self.index,
                    self.opcode.name,
                    "address",
                    f"{what} [{start}, {start + size}) exceeds the activation memory "
                    f"({cfg.amem_depth} words of configuration {cfg.name!r})",
                )

    def regions(self) -> list[tuple[str, int, int]]:
        """Activation-memory regions ``(role, start, words)`` the command reads or writes."""
        v = self.value
        op = self.opcode
        if op == Opcode.LOAD:
            return [("dst", v("dst"), v("count"))]
        if op == Opcode.STORE:
            return [("src0", v("src0"), v("count"))]
        if op in (Opcode.CONV, Opcode.POOL):
            inp = v("in_h") * v("in_w") * v("in_c") * max(1, v("planes_in"))
            out_c = v("out_c") if op == Opcode.CONV else v("in_c")
            return [("src0", v("src0"), inp), ("dst", v("dst"), v("out_h") * v("out_w") * out_c)]
        if op == Opcode.ADD:
            return [
                ("src0", v("src0"), v("count") * v("planes_in")),
                ("src1", v("src1"), v("count") * v("planes_in2")),
                ("dst", v("dst"), v("count") * v("planes_out")),
            ]
        if op == Opcode.ATTENTION:
            size = v("in_w") * v("in_c")
            return [(role, v(role), size) for role in ("src0", "src1", "src2", "dst")]
        if op == Opcode.HEAD:
            return [("src0", v("src0"), v("in_w") * v("in_c") * v("planes_in"))]
        return []


#: Per field: which opcodes read it and what it means (docs/accelerator.md).
FIELD_DOCS: dict[str, str] = {
    "magic": f"all: constant {MAGIC:#04x}",
    "opcode": "all: :class:`Opcode`",
    "timesteps": "CONV, POOL, ATTENTION, HEAD: the model's T (<= the configuration's)",
    "grouping": "ATTENTION: :class:`Grouping`",
    "index": "all: position of the command in the program (checked)",
    "src0": "STORE, CONV, POOL, HEAD: input; ADD: a; ATTENTION: Q",
    "src1": "ADD: b; ATTENTION: K",
    "src2": "ATTENTION: V",
    "dst": "LOAD, CONV, POOL, ADD, ATTENTION: output",
    "in_h": "CONV, POOL: input rows (1 for a linear layer)",
    "in_w": "CONV, POOL: input columns; ATTENTION, HEAD: tokens N",
    "in_c": "CONV, POOL: input channels; ATTENTION, HEAD: features D",
    "out_h": "CONV, POOL: output rows",
    "out_w": "CONV, POOL: output columns",
    "out_c": "CONV: output channels",
    "classes": "HEAD: logits",
    "heads": "ATTENTION: heads",
    "head_dim": "ATTENTION: features per head d",
    "planes_in": "CONV, HEAD, ADD (a): bit planes of the input",
    "planes_in2": "ADD: bit planes of b",
    "planes_out": "ADD: bit planes of the sum",
    "kernel": "CONV, POOL: window k (k x k)",
    "stride": "CONV, POOL: stride",
    "pad_top": "CONV, POOL: zero rows above the input (rows below it read as zero)",
    "pad_left": "CONV, POOL: zero columns left of the input",
    "reserved0": "0",
    "count": "LOAD, STORE: activation words; ADD: elements (positions x channels)",
    "threshold": "ATTENTION: attention-LIF threshold",
    "reserved1": "0",
    "check": "all: the 16 32-bit halves of the descriptor sum to 0 mod 2**32",
}


def markdown_table() -> str:
    """The descriptor fields as a Markdown table (word, bits, field, meaning)."""
    rows = ["| word | bits | field | used by / meaning |", "|---|---|---|---|"]
    for name, f in DESCRIPTOR_LAYOUT:
        word, bit = divmod(f.offset, STREAM_BITS)
        shape = f.shape
        bits = f"{bit + shape.width - 1}:{bit}" + (" (signed)" if shape.signed else "")
        rows.append(f"| {word} | {bits} | `{name}` | {FIELD_DOCS[name]} |")
    return "\n".join(rows)
