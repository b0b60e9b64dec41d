"""Command descriptors: the binary format the host streams to the accelerator.

A program is a sequence of commands on the input stream; each command is one
descriptor of :data:`DESC_WORDS` 64-bit little-endian words followed by its payload
(docs/accelerator.md, "Stream protocol"). :data:`DESCRIPTOR_FIELDS` is the one
definition of the descriptor's fields: the compiler packs descriptors with it and the
RTL decodes them through an Amaranth view built from the same table
(:data:`hw.accel.layouts.DESCRIPTOR_LAYOUT`).

:func:`field_checks` states which field values the hardware accepts, once, in
operators that work both on Python integers (the compiler's early check) and on
Amaranth values (the sequencer's "bad descriptor" error, which passes Amaranth's
``Mux`` as ``select``).
"""

from __future__ import annotations

import enum
import itertools
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import SimpleNamespace
from typing import Any

from contract.numerics import signed_range
from protocol.config import STREAM_BITS, AcceleratorConfig

__all__ = [
    "MAGIC",
    "MAX_POOL_KERNEL",
    "DESC_WORDS",
    "DESCRIPTOR_FIELDS",
    "DescriptorField",
    "DESCRIPTOR_BITS",
    "pack_descriptor_bits",
    "unpack_descriptor_bits",
    "Opcode",
    "Grouping",
    "Descriptor",
    "DescriptorError",
    "field_checks",
    "group_size",
    "FIELD_DOCS",
    "markdown_table",
]

#: Largest window of a CONV's current pool (the engine's window loop counts 4 bits).
MAX_POOL_KERNEL = 15

#: First byte of every descriptor; a misaligned stream almost never shows it in the right place.
MAGIC = 0xA5


@dataclass(frozen=True)
class DescriptorField:
    """One descriptor field: ``width`` bits at bit ``offset`` of the descriptor (LSB first)."""

    name: str
    width: int
    signed: bool
    offset: int

    @property
    def range(self) -> tuple[int, int]:
        """Smallest and largest storable value."""
        return signed_range(self.width) if self.signed else (0, (1 << self.width) - 1)


def _fields(*spec: tuple[str, int, bool]) -> tuple[DescriptorField, ...]:
    offsets = itertools.accumulate((width for _, width, _ in spec), initial=0)
    return tuple(DescriptorField(n, w, s, o) for (n, w, s), o in zip(spec, offsets, strict=False))


#: Fields of a descriptor, LSB first (the first stream word holds the lowest 64 bits):
#: ``(name, width, signed)``.
DESCRIPTOR_FIELDS: tuple[DescriptorField, ...] = _fields(
    # word 0
    ("magic", 8, False),
    ("opcode", 8, False),
    ("timesteps", 8, False),
    ("grouping", 8, False),
    ("index", 32, False),
    # words 1, 2: activation-memory addresses (in words of T bits)
    ("src0", 32, False),
    ("src1", 32, False),
    ("src2", 32, False),
    ("dst", 32, False),
    # words 3, 4: geometry
    ("in_h", 16, False),
    ("in_w", 16, False),
    ("in_c", 16, False),
    ("out_h", 16, False),
    ("out_w", 16, False),
    ("out_c", 16, False),
    ("classes", 16, False),
    ("heads", 8, False),
    ("head_dim", 8, False),
    # word 5
    ("planes_in", 8, False),
    ("planes_in2", 8, False),
    ("planes_out", 8, False),
    ("kernel", 8, False),
    ("stride", 8, False),
    ("pad_top", 8, False),
    ("pad_left", 8, False),
    ("reserved0", 8, False),
    # word 6
    ("count", 32, False),
    ("threshold", 32, True),
    # word 7: the pool of a CONV's currents before the LIF (kernel 0: none)
    ("pool_kernel", 8, False),
    ("pool_stride", 8, False),
    ("pool_padding", 8, False),
    ("pool_pad_top", 8, False),
    ("check", 32, False),
)

#: Bits of a descriptor.
DESCRIPTOR_BITS = sum(f.width for f in DESCRIPTOR_FIELDS)

#: 64-bit stream words per descriptor.
DESC_WORDS = DESCRIPTOR_BITS // STREAM_BITS
assert DESC_WORDS * STREAM_BITS == DESCRIPTOR_BITS

_BY_NAME = {f.name: f for f in DESCRIPTOR_FIELDS}
_FIELDS = tuple(_BY_NAME)


def pack_descriptor_bits(values: Mapping[str, int]) -> int:
    """The descriptor's bits (an integer, LSB first) from every field's value."""
    bits = 0
    for f in DESCRIPTOR_FIELDS:
        bits |= (values[f.name] & ((1 << f.width) - 1)) << f.offset
    return bits


def unpack_descriptor_bits(bits: int) -> dict[str, int]:
    """Every field's value (signed fields sign-extended) from the descriptor's bits."""
    values = {}
    for f in DESCRIPTOR_FIELDS:
        raw = (bits >> f.offset) & ((1 << f.width) - 1)
        values[f.name] = raw - (1 << f.width) if f.signed and raw >> (f.width - 1) else raw
    return values


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


def _select(condition: Any, if_true: Any, if_false: Any) -> Any:
    return if_true if condition else if_false


def group_size(
    grouping: Any,
    timesteps: Any,
    tokens: Any,
    *,
    select: Callable[[Any, Any, Any], Any] = _select,
    equals: Callable[[Any, int], Any] = operator.eq,
) -> Any:
    """Token group size ``G`` of an attention command.

    On Python integers by default; ``select(condition, if_true, if_false)`` and
    ``equals(value, constant)`` make it work on other values (the RTL passes Amaranth's
    ``Mux`` and :func:`hw.arith.equals`).
    """
    return select(
        equals(grouping, int(Grouping.JOINT)),
        timesteps * tokens,
        select(equals(grouping, int(Grouping.TEMPORAL)), timesteps, tokens),
    )


def field_checks(
    d: Any,
    cfg: AcceleratorConfig,
    *,
    select: Callable[[Any, Any, Any], Any] = _select,
    equals: Callable[[Any, int], Any] = operator.eq,
) -> dict[Opcode, dict[str, Any]]:
    """Per opcode, named rules its fields must satisfy on ``cfg``.

    ``d`` has the descriptor fields as attributes: Python integers or Amaranth values;
    each rule is a ``bool`` or a 1-bit Amaranth value accordingly (only ``&``, ``|``,
    comparisons, ``*``, ``select`` and ``equals`` are used; see :func:`group_size`). Address bounds
    are not here: the core checks every memory access at run time instead (error flag
    ``ADDRESS``), and the compiler checks them statically (:meth:`Descriptor.validate`).
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
            "pool": (equals(d.pool_kernel, 0) & equals(d.pool_pad_top, 0))
            | (
                (d.pool_kernel <= MAX_POOL_KERNEL)
                & (d.pool_stride >= 1)
                & (d.pool_padding * 2 <= d.pool_kernel)
                & (d.pool_pad_top <= d.pool_padding)
            ),
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
            "group_size": (
                group_size(d.grouping, d.timesteps, d.in_w, select=select, equals=equals) <= cfg.max_group
            ),
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
        Field name -> value, names from :data:`DESCRIPTOR_FIELDS` (not ``magic``,
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
            lo, hi = _BY_NAME[name].range
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
        body = pack_descriptor_bits({**values, "check": 0})
        halves = [(body >> (32 * i)) & 0xFFFF_FFFF for i in range(2 * DESC_WORDS)]
        check = (-sum(halves)) & 0xFFFF_FFFF
        bits = body | (check << _BY_NAME["check"].offset)
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
        view = unpack_descriptor_bits(bits)
        if view["magic"] != MAGIC:
            raise ValueError(f"descriptor magic {view['magic']:#x} != {MAGIC:#x}")
        fields = {
            name: value
            for name, value in view.items()
            if name not in ("magic", "opcode", "index", "check") and value
        }
        return cls(Opcode(view["opcode"]), view["index"], fields)

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
    "out_h": "CONV, POOL: output rows (of a pooled CONV: pooled rows)",
    "out_w": "CONV, POOL: output columns (of a pooled CONV: pooled columns)",
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
    "pad_left": "CONV, POOL: zero columns left of the input (also the rows below a pooled CONV's "
    "input: its conv output has (in_h + pad_top + pad_left - k) / stride + 1 rows)",
    "reserved0": "0",
    "count": "LOAD, STORE: activation words; ADD: elements (positions x channels)",
    "threshold": "ATTENTION: attention-LIF threshold",
    "pool_kernel": "CONV: window of the max-pool of currents before the LIF (0: no pool)",
    "pool_stride": "CONV: stride of that pool",
    "pool_padding": "CONV: its padding left (padded taps hold the smallest current), <= pool_kernel / 2",
    "pool_pad_top": "CONV: pool padding rows above the first conv row, <= pool_padding "
    "(pool_padding, or 0 for a band that starts below the top)",
    "check": "all: the 16 32-bit halves of the descriptor sum to 0 mod 2**32",
}


def markdown_table() -> str:
    """The descriptor fields as a Markdown table (word, bits, field, meaning)."""
    rows = ["| word | bits | field | used by / meaning |", "|---|---|---|---|"]
    for f in DESCRIPTOR_FIELDS:
        word, bit = divmod(f.offset, STREAM_BITS)
        bits = f"{bit + f.width - 1}:{bit}" + (" (signed)" if f.signed else "")
        rows.append(f"| {word} | {bits} | `{f.name}` | {FIELD_DOCS[f.name]} |")
    return "\n".join(rows)
