"""The vocabulary of the integer model: its ops, their kinds and the error that names a bad field.

An :class:`Op` reads named values (``"input"`` or an earlier op's name) and writes one value
under its own name. :data:`OP_KINDS` says, per kind, how many inputs it reads and which
parameters and tensors it carries; :mod:`.shapes` gives each kind its shape rule and
:mod:`.executor` its integer arithmetic.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "GROUPINGS",
    "LIF_KINDS",
    "OP_KINDS",
    "IntModelError",
    "Op",
    "OpKind",
    "Shape",
    "Trace",
]

Shape = tuple[int, ...]
"""Shape of one value without the batch axis."""

Trace = dict[str, np.ndarray]
"""Value name -> ``int64`` array of a batch, as recorded by :meth:`~.model.IntModel.run`."""

GROUPINGS = ("joint", "temporal", "spatial")
"""Token groupings of one attention op (``divided`` is a temporal op then a spatial op)."""

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


class IntModelError(ValueError):
    """An integer model is malformed: the message names the op and the field.

    Attributes
    ----------
    op:
        Name of the offending op (``""`` for model-level fields).
    field:
        The field of that op (``"tensors.weight"``, ``"params.stride"``, ``"inputs"``, ...).
    category:
        ``"structure"`` (missing / wrong field), ``"shape"`` (shapes do not fit the graph) or
        ``"range"`` (values outside the widths), so loaders can map it to their own error types.
    """

    def __init__(self, op: str, field: str, reason: str, *, category: str = "structure") -> None:
        self.op, self.field, self.reason, self.category = op, field, reason, category
        where = f"op {op!r}, field {field!r}" if op else f"field {field!r}"
        super().__init__(f"integer model: {where}: {reason}")


@dataclass(frozen=True)
class OpKind:
    """What an op of one kind carries.

    Attributes
    ----------
    n_inputs:
        Number of values it reads.
    params:
        Names of its required hyper-parameters.
    tensors:
        Roles of its integer tensors (exactly these).
    """

    n_inputs: int
    params: tuple[str, ...]
    tensors: tuple[str, ...]


OP_KINDS: dict[str, OpKind] = {
    "conv": OpKind(1, ("stride", "padding"), ("weight", "bias", "threshold")),
    "conv_maxpool": OpKind(
        1,
        ("stride", "padding", "pool_kernel", "pool_stride", "pool_padding"),
        ("weight", "bias", "threshold"),
    ),
    "maxpool": OpKind(1, ("kernel", "stride", "padding"), ()),
    "tokens": OpKind(1, (), ()),
    "linear": OpKind(1, (), ("weight", "bias", "threshold")),
    "attention": OpKind(3, ("grouping", "heads", "threshold"), ()),
    "add": OpKind(2, (), ()),
    "add_const": OpKind(1, (), ("spikes",)),
    "head": OpKind(1, (), ("weight", "bias")),
}
"""Op kind -> its inputs, parameters and tensors.

``conv_maxpool`` is a ``conv`` whose LIF input currents are max-pooled before the LIF
(SpikingJelly's stem; docs/numerics.md section 6); ``maxpool`` pools spikes after a LIF.
``add_const`` adds a constant binary tensor of its input's shape (a learned spike embedding,
the same for every sample; docs/numerics.md section 14).
"""

LIF_KINDS = ("conv", "conv_maxpool", "linear", "attention")
"""Kinds whose output is LIF spikes (their traces also hold ``name + '.current'``)."""


@dataclass(frozen=True, eq=False)
class Op:
    """One operation of the integer model.

    Parameters
    ----------
    name:
        Unique value name (the float model's module path, e.g. ``blocks.0.attn.0.q``).
    kind:
        One of :data:`OP_KINDS`.
    inputs:
        Names of the values read (``"input"`` is the model input).
    params:
        Integer / string hyper-parameters of the kind (``stride``, ``grouping``, ...).
    tensors:
        Role -> ``int64`` array (``weight``, ``bias``, ``threshold``).
    lif:
        Module path of the float model's LIF neuron this op replaces (``None`` if none).
    reference:
        Float scales for information only (``scale``, ``logit_scale``); never read by
        :meth:`~.model.IntModel.run`.
    """

    name: str
    kind: str
    inputs: tuple[str, ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    tensors: Mapping[str, np.ndarray] = field(default_factory=dict)
    lif: str | None = None
    reference: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name) or self.name == "input":
            raise IntModelError(
                str(self.name), "name", "must match [A-Za-z0-9_][A-Za-z0-9_.-]* and not be 'input'"
            )
        if self.kind not in OP_KINDS:
            raise IntModelError(self.name, "kind", f"must be one of {sorted(OP_KINDS)}, not {self.kind!r}")
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "params", dict(self.params))
        tensors = {}
        for role, array in self.tensors.items():
            array = np.asarray(array)
            if array.dtype.kind not in "iu":
                raise IntModelError(
                    self.name, f"tensors.{role}", f"must be an integer array, not {array.dtype}"
                )
            tensors[role] = array.astype(np.int64)
        object.__setattr__(self, "tensors", tensors)
