"""The AXI4-Lite register map: one definition for the RTL, the host driver and the docs.

:data:`REGISTERS` lists every 32-bit register with its offset, access and bit fields.
:mod:`hw.accel.top` builds its register decoder from it, a driver imports the offsets
and field masks from it (:func:`offset`, :func:`field_mask`, :data:`ErrorFlag`), and
:func:`markdown_table` writes the table in docs/accelerator.md.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "ACCEL_ID",
    "VERSION",
    "Field",
    "Register",
    "REGISTERS",
    "PROFILE_BASE",
    "ADDRESS_BITS",
    "ErrorFlag",
    "DescriptorFault",
    "offset",
    "field_mask",
    "register",
    "markdown_table",
]

#: Value of the ``ID`` register: ASCII "SPKF".
ACCEL_ID = 0x53504B46
#: ``(major, minor)`` of the register map and stream protocol; bumped on any incompatible change.
VERSION = (1, 0)
#: Byte offset of the profile window: command ``i``'s cycle count at ``PROFILE_BASE + 4 i``.
PROFILE_BASE = 0x1000
#: Width of the AXI4-Lite byte address (``s_axi_awaddr``, ``s_axi_araddr``).
ADDRESS_BITS = 16


@dataclass(frozen=True)
class Field:
    """A bit field of a register: ``name``, lowest ``bit``, ``width`` bits, description."""

    name: str
    bit: int
    width: int
    doc: str


@dataclass(frozen=True)
class Register:
    """One 32-bit register.

    Attributes
    ----------
    name:
        Upper-case identifier.
    offset:
        Byte offset (a multiple of 4).
    access:
        ``"RO"`` (read only), ``"WO"`` (write only; reads return 0) or ``"RW"``.
    doc:
        One-line description.
    fields:
        Bit fields; a register without fields is one 32-bit value.
    """

    name: str
    offset: int
    access: str
    doc: str
    fields: tuple[Field, ...] = ()


class ErrorFlag(enum.IntFlag):
    """Bits of the ``ERROR`` register (sticky until ``CONTROL.SOFT_RESET`` or the next ``START``)."""

    DESCRIPTOR = 1 << 0  #: bad descriptor: magic, checksum, opcode, index or a field rule; see DETAIL
    OVERFLOW = 1 << 1  #: a synapse accumulator or an attention group counter overflowed
    TRUNCATED = 1 << 2  #: the input stream ended (TLAST) before the END command
    ADDRESS = 1 << 3  #: a command touched an activation word outside the memory


class DescriptorFault(enum.IntEnum):
    """``DETAIL.FAULT`` after a ``DESCRIPTOR`` error: which check failed."""

    NONE = 0
    MAGIC = 1
    CHECKSUM = 2
    OPCODE = 3
    INDEX = 4
    FIELD = 5  #: a rule of :func:`protocol.descriptors.field_checks`; ``DETAIL.RULE`` gives its number


REGISTERS: tuple[Register, ...] = (
    Register("ID", 0x00, "RO", "Constant 0x53504B46 ('SPKF'): the accelerator is present."),
    Register(
        "VERSION",
        0x04,
        "RO",
        "Register-map / stream-protocol version.",
        (
            Field("MINOR", 0, 16, "minor version"),
            Field("MAJOR", 16, 16, "major version"),
        ),
    ),
    Register("CONFIG_HASH", 0x08, "RO", "32-bit hash of the AcceleratorConfig the bitstream was built from."),
    Register(
        "CONTROL",
        0x0C,
        "WO",
        "Write 1 to a bit to act; bits read back as 0.",
        (
            Field("START", 0, 1, "start executing commands from the input stream"),
            Field("SOFT_RESET", 1, 1, "reset the core (abandons a running program, clears flags)"),
        ),
    ),
    Register(
        "STATUS",
        0x10,
        "RO",
        "Core state.",
        (
            Field("BUSY", 0, 1, "a program is running"),
            Field("DONE", 1, 1, "the last program finished (END or an error); cleared by START"),
            Field("ERROR", 2, 1, "ERROR is non-zero"),
        ),
    ),
    Register(
        "ERROR",
        0x14,
        "RO",
        "Sticky error flags (ErrorFlag).",
        (
            Field("DESCRIPTOR", 0, 1, "bad descriptor (see DETAIL)"),
            Field("OVERFLOW", 1, 1, "synapse accumulator or attention group overflow"),
            Field("TRUNCATED", 2, 1, "input stream ended before END"),
            Field("ADDRESS", 3, 1, "activation-memory access out of range"),
        ),
    ),
    Register(
        "DETAIL",
        0x18,
        "RO",
        "Which check a DESCRIPTOR error failed.",
        (
            Field("FAULT", 0, 4, "DescriptorFault"),
            Field("RULE", 8, 8, "failed rule number within the opcode (FAULT = FIELD)"),
            Field("OPCODE", 16, 8, "opcode of the failed descriptor"),
        ),
    ),
    Register("ERROR_COMMAND", 0x1C, "RO", "Index of the command that raised the first error."),
    Register("COMMANDS", 0x20, "RO", "Commands completed by the running or last program (END included)."),
    Register("CYCLES_LO", 0x24, "RO", "Cycles since START, low word (counts while BUSY)."),
    Register("CYCLES_HI", 0x28, "RO", "Cycles since START, high word (latched when CYCLES_LO is read)."),
    Register("HW_TIMESTEPS", 0x30, "RO", "T: time steps per activation word."),
    Register(
        "HW_LANES",
        0x34,
        "RO",
        "L: synapse lanes.",
        (
            Field("LANES", 0, 16, "synapse lanes"),
            Field("LIF_LANES", 16, 16, "LIF array lanes"),
        ),
    ),
    Register("HW_AMEM_DEPTH", 0x38, "RO", "Activation memory depth in words."),
    Register("HW_WMEM_DEPTH", 0x3C, "RO", "Weight memory depth (largest fan-in)."),
    Register(
        "HW_ATTENTION",
        0x40,
        "RO",
        "Attention PE limits.",
        (
            Field("HEAD_DIM", 0, 8, "head width d"),
            Field("MAX_GROUP", 8, 24, "largest token group"),
        ),
    ),
    Register("HW_PROFILE_DEPTH", 0x44, "RO", "Commands whose cycle counts the profile window keeps."),
)


def register(name: str) -> Register:
    """The register called ``name``."""
    for reg in REGISTERS:
        if reg.name == name:
            return reg
    raise KeyError(f"no register {name!r}; registers: {', '.join(r.name for r in REGISTERS)}")


def offset(name: str) -> int:
    """Byte offset of register ``name``."""
    return register(name).offset


def field_mask(register_name: str, field_name: str) -> tuple[int, int]:
    """``(shift, mask)`` of a field: ``(value >> shift) & mask`` extracts it."""
    for f in register(register_name).fields:
        if f.name == field_name:
            return f.bit, (1 << f.width) - 1
    raise KeyError(f"register {register_name!r} has no field {field_name!r}")


def _check_map() -> None:
    seen: set[int] = set()
    for reg in REGISTERS:
        assert reg.offset % 4 == 0 and reg.offset not in seen and reg.offset < PROFILE_BASE, reg
        assert reg.access in ("RO", "WO", "RW"), reg
        seen.add(reg.offset)
        used = 0
        for f in reg.fields:
            mask = ((1 << f.width) - 1) << f.bit
            assert not used & mask and f.bit + f.width <= 32, (reg.name, f)
            used |= mask


_check_map()


def markdown_table() -> str:
    """The register map as a Markdown table (docs/accelerator.md)."""
    rows = ["| offset | register | access | bits | description |", "|---|---|---|---|---|"]
    for reg in REGISTERS:
        rows.append(f"| `0x{reg.offset:03X}` | `{reg.name}` | {reg.access} | | {reg.doc} |")
        for f in reg.fields:
            bits = f"{f.bit}" if f.width == 1 else f"{f.bit + f.width - 1}:{f.bit}"
            rows.append(f"| | `.{f.name}` | | {bits} | {f.doc} |")
    rows.append(
        f"| `0x{PROFILE_BASE:03X}` + 4 i | `PROFILE[i]` | RO | | Cycles of command i "
        f"(i < HW_PROFILE_DEPTH), from its first descriptor word to its completion. |"
    )
    return "\n".join(rows)
