"""Amaranth views of the protocol's tables: the RTL decodes exactly what the compiler encodes."""

from __future__ import annotations

from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from protocol.descriptors import DESCRIPTOR_BITS, DESCRIPTOR_FIELDS

__all__ = ["DESCRIPTOR_LAYOUT"]

#: The descriptor (:data:`protocol.descriptors.DESCRIPTOR_FIELDS`) as an Amaranth layout.
DESCRIPTOR_LAYOUT = data.StructLayout(
    {f.name: (signed if f.signed else unsigned)(f.width) for f in DESCRIPTOR_FIELDS}
)
assert DESCRIPTOR_LAYOUT.size == DESCRIPTOR_BITS
assert all(DESCRIPTOR_LAYOUT[f.name].offset == f.offset for f in DESCRIPTOR_FIELDS)
