"""Packing stream payloads to integers and back, driven by the Amaranth layout of a port.

The testbenches never hand-maintain bit offsets: :class:`PayloadCodec` walks the
``lib.data`` layout found in the component's signature (``port.payload``'s shape)
once, records every leaf field's offset, width and signedness, and then packs a
nested ``{field: value}`` / ``[element, ...]`` structure into the integer that the
Verilog port carries, or unpacks such an integer back into the nested structure.
It gives the same integers as ``layout.const(value).as_value().value`` (the tests
check this) but is a few tens of times faster, which matters for 10,000-beat
regressions with thousands of payload bits per beat.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from amaranth.hdl import Shape, ShapeCastable
from amaranth.lib import data, wiring

from contract.numerics import signed_range

__all__ = ["Leaf", "PayloadCodec", "port_layout"]


def _name(path: str) -> str:
    return path or "<root>"


@dataclass(frozen=True)
class Leaf:
    """One scalar field of a layout: its bit offset, width and signedness."""

    offset: int
    width: int
    signed: bool

    def pack(self, value: int, path: str) -> int:
        lo, hi = signed_range(self.width) if self.signed else (0, (1 << self.width) - 1)
        value = int(value)
        if not lo <= value <= hi:
            kind = "signed" if self.signed else "unsigned"
            raise ValueError(
                f"payload field {_name(path)} = {value} does not fit {kind} {self.width} bits [{lo}, {hi}]"
            )
        return (value & ((1 << self.width) - 1)) << self.offset

    def unpack(self, word: int) -> int:
        value = (word >> self.offset) & ((1 << self.width) - 1)
        if self.signed and value >> (self.width - 1):
            value -= 1 << self.width
        return value


@dataclass(frozen=True)
class _LeafArray:
    """An array of equally spaced scalars: packed in one pass instead of one call per element."""

    first: Leaf
    stride: int
    length: int

    def pack(self, values: Any, path: str) -> int:
        values = values.tolist() if hasattr(values, "tolist") else list(values)
        if len(values) != self.length:
            raise ValueError(f"payload field {_name(path)} needs {self.length} elements, not {len(values)}")
        width, signed = self.first.width, self.first.signed
        lo, hi = signed_range(width) if signed else (0, (1 << width) - 1)
        if values and (min(values) < lo or max(values) > hi):
            bad = next(index for index, v in enumerate(values) if not lo <= v <= hi)
            self.first.pack(values[bad], f"{path}[{bad}]")  # raises with the field's name
        mask, stride = (1 << width) - 1, self.stride
        word = 0
        for value in reversed(values):
            word = (word << stride) | (int(value) & mask)
        return word << self.first.offset

    def unpack(self, word: int) -> list[int]:
        first, stride = self.first, self.stride
        return [
            Leaf(offset=first.offset + i * stride, width=first.width, signed=first.signed).unpack(word)
            for i in range(self.length)
        ]


# A compiled layout node: a leaf, an array of leaves, a struct (name -> node) or an array (list).
_Node = Leaf | _LeafArray | dict[str, "_Node"] | list["_Node"]


def _compile(shape: ShapeCastable | Shape, offset: int) -> _Node:
    if isinstance(shape, data.ArrayLayout):
        elements = [_compile(field.shape, offset + field.offset) for _, field in shape]
        if elements and all(isinstance(e, Leaf) for e in elements):
            stride = (
                shape.elem_shape.size
                if isinstance(shape.elem_shape, data.Layout)
                else Shape.cast(shape.elem_shape).width
            )
            return _LeafArray(first=elements[0], stride=stride, length=len(elements))
        return elements
    if isinstance(shape, data.Layout):
        return {str(name): _compile(field.shape, offset + field.offset) for name, field in shape}
    cast = Shape.cast(shape)
    return Leaf(offset=offset, width=cast.width, signed=cast.signed)


def port_layout(component: wiring.Component, port: str) -> data.Layout | Shape:
    """The payload shape of stream port ``port`` of ``component``, read from its signature."""
    members = component.signature.members
    if port not in members or not members[port].is_signature:
        raise KeyError(f"{type(component).__name__} has no stream port {port!r}; ports: {sorted(members)}")
    port_members = members[port].signature.members
    if "payload" not in port_members:
        raise KeyError(f"port {port!r} of {type(component).__name__} has no payload")
    return port_members["payload"].shape


class PayloadCodec:
    """Packs and unpacks payloads of one Amaranth layout (or plain shape).

    Parameters
    ----------
    shape:
        A ``lib.data`` layout (struct / array, nested freely) or a scalar shape.

    Attributes
    ----------
    size : int
        Payload width in bits.
    """

    def __init__(self, shape: data.Layout | ShapeCastable | Shape) -> None:
        if isinstance(shape, data.Layout):
            self.size = shape.size
        else:
            self.size = Shape.cast(shape).width
        self.shape = shape
        self._root = _compile(shape, 0)

    @classmethod
    def of(cls, component: wiring.Component, port: str) -> PayloadCodec:
        """Codec of the payload of ``component``'s stream port ``port``."""
        return cls(port_layout(component, port))

    def pack(self, value: Any) -> int:
        """Nested mapping / sequence (numpy arrays included) of integers -> payload integer."""
        return self._pack(self._root, value, "")

    def unpack(self, word: int) -> Any:
        """Payload integer -> nested ``dict`` / ``list`` of Python ``int``."""
        word = int(word)
        if word < 0 or word >> self.size:
            raise ValueError(f"payload word {word:#x} does not fit {self.size} bits")
        return self._unpack(self._root, word)

    def _pack(self, node: _Node, value: Any, path: str) -> int:
        if isinstance(node, (Leaf, _LeafArray)):
            return node.pack(value, path)
        if isinstance(node, dict):
            if not isinstance(value, Mapping):
                raise TypeError(f"payload field {_name(path)} must be a mapping, not {type(value).__name__}")
            extra = sorted(set(value) - set(node))
            if extra:
                raise KeyError(f"payload field {_name(path)} has no member(s) {extra}")
            word = 0
            for name, child in node.items():
                if name not in value:
                    raise KeyError(f"payload field {path}.{name} is missing".lstrip("."))
                word |= self._pack(child, value[name], f"{path}.{name}".lstrip("."))
            return word
        if isinstance(value, (str, bytes)) or not (isinstance(value, Sequence) or hasattr(value, "__len__")):
            raise TypeError(f"payload field {_name(path)} must be a sequence, not {type(value).__name__}")
        if len(value) != len(node):
            raise ValueError(f"payload field {_name(path)} needs {len(node)} elements, not {len(value)}")
        word = 0
        for index, (child, element) in enumerate(zip(node, value, strict=True)):
            word |= self._pack(child, element, f"{path}[{index}]")
        return word

    def _unpack(self, node: _Node, word: int) -> Any:
        if isinstance(node, (Leaf, _LeafArray)):
            return node.unpack(word)
        if isinstance(node, dict):
            return {name: self._unpack(child, word) for name, child in node.items()}
        return [self._unpack(child, word) for child in node]
