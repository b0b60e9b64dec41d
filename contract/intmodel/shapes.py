"""Static checks of an op graph: shape inference and the value ranges the widths allow.

:func:`infer_shapes` walks the ops in execution order, checks that each one reads values
defined before it and carries the fields of its kind (:data:`~.ops.OP_KINDS`), infers its
output shape from its inputs' shapes and its tensors, and checks its tensors against the
widths of :class:`~contract.numerics.NumericsConfig` (docs/numerics.md sections 1, 4, 8).
Every failure is an :class:`~.ops.IntModelError` naming the op and the field.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .. import numerics as nm
from .ops import GROUPINGS, OP_KINDS, IntModelError, Op, Shape

__all__ = ["check_ranges", "infer_shapes"]

_Infer = Callable[[Op, list[Shape], nm.NumericsConfig, int], tuple[Shape, dict[str, Shape]]]


def _need(op: Op, cond: bool, field_: str, reason: str, category: str = "shape") -> None:
    if not cond:
        raise IntModelError(op.name, field_, reason, category=category)


def _int_param(op: Op, key: str, minimum: int) -> int:
    value = op.params.get(key)
    _need(
        op,
        isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= minimum,
        f"params.{key}",
        f"must be an integer >= {minimum}, not {value!r}",
        "structure",
    )
    return int(value)


def _rank(op: Op, shape: Shape, rank: int, what: str) -> None:
    _need(
        op, len(shape) == rank, "inputs", f"{what} input must have rank {rank} (no batch axis), got {shape}"
    )


def _infer_conv(
    op: Op, shapes: list[Shape], cfg: nm.NumericsConfig, num_classes: int
) -> tuple[Shape, dict[str, Shape]]:
    _rank(op, shapes[0], 4, "conv")
    t, c, h, w = shapes[0]
    weight = op.tensors["weight"].shape
    _need(
        op,
        len(weight) == 4 and weight[1] == c and weight[2] == weight[3],
        "tensors.weight",
        f"must be [O, {c}, k, k], got {weight}",
    )
    o, k = weight[0], weight[2]
    stride, pad = _int_param(op, "stride", 1), _int_param(op, "padding", 0)
    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    _need(op, oh >= 1 and ow >= 1, "tensors.weight", f"kernel {k} does not fit input {h}x{w}")
    return (t, o, oh, ow), {"weight": weight, "bias": (o,), "threshold": (o,)}


def _infer_conv_maxpool(
    op: Op, shapes: list[Shape], cfg: nm.NumericsConfig, num_classes: int
) -> tuple[Shape, dict[str, Shape]]:
    (t, o, h, w), tensor_shapes = _infer_conv(op, shapes, cfg, num_classes)
    k = _int_param(op, "pool_kernel", 1)
    stride, pad = _int_param(op, "pool_stride", 1), _int_param(op, "pool_padding", 0)
    # Every window must hold a real tap: the padded ones hold the minimum current.
    _need(op, pad <= k // 2, "params.pool_padding", f"must be <= pool_kernel // 2 = {k // 2}, not {pad}")
    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    _need(op, oh >= 1 and ow >= 1, "params.pool_kernel", f"window {k} does not fit the conv output {h}x{w}")
    return (t, o, oh, ow), tensor_shapes


def _infer_linear(
    op: Op, shapes: list[Shape], cfg: nm.NumericsConfig, num_classes: int
) -> tuple[Shape, dict[str, Shape]]:
    _rank(op, shapes[0], 3, "linear")
    t, n, i = shapes[0]
    weight = op.tensors["weight"].shape
    _need(op, len(weight) == 2 and weight[1] == i, "tensors.weight", f"must be [O, {i}], got {weight}")
    o = weight[0]
    return (t, n, o), {"weight": weight, "bias": (o,), "threshold": (o,)}


def _infer_maxpool(
    op: Op, shapes: list[Shape], cfg: nm.NumericsConfig, num_classes: int
) -> tuple[Shape, dict[str, Shape]]:
    _rank(op, shapes[0], 4, "maxpool")
    t, c, h, w = shapes[0]
    k, stride, pad = _int_param(op, "kernel", 1), _int_param(op, "stride", 1), _int_param(op, "padding", 0)
    _need(op, pad <= k // 2, "params.padding", f"must be <= kernel // 2 = {k // 2}, not {pad}")
    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    _need(op, oh >= 1 and ow >= 1, "params.kernel", f"window {k} does not fit input {h}x{w}")
    return (t, c, oh, ow), {}


def _infer_tokens(
    op: Op, shapes: list[Shape], cfg: nm.NumericsConfig, num_classes: int
) -> tuple[Shape, dict[str, Shape]]:
    _rank(op, shapes[0], 4, "tokens")
    t, c, h, w = shapes[0]
    return (t, h * w, c), {}


def _infer_attention(
    op: Op, shapes: list[Shape], cfg: nm.NumericsConfig, num_classes: int
) -> tuple[Shape, dict[str, Shape]]:
    _rank(op, shapes[0], 3, "attention")
    _need(op, shapes[0] == shapes[1] == shapes[2], "inputs", f"q, k, v shapes differ: {shapes}")
    heads = _int_param(op, "heads", 1)
    _need(op, shapes[0][2] % heads == 0, "params.heads", f"{heads} does not divide width {shapes[0][2]}")
    _need(
        op,
        op.params.get("grouping") in GROUPINGS,
        "params.grouping",
        f"must be one of {GROUPINGS}, not {op.params.get('grouping')!r}",
        "structure",
    )
    theta = _int_param(op, "threshold", 1)
    _need(
        op,
        theta <= cfg.membrane_max,
        "params.threshold",
        f"{theta} exceeds the membrane range (max {cfg.membrane_max})",
        "range",
    )
    return shapes[0], {}


def _infer_add(
    op: Op, shapes: list[Shape], cfg: nm.NumericsConfig, num_classes: int
) -> tuple[Shape, dict[str, Shape]]:
    _need(op, shapes[0] == shapes[1], "inputs", f"operand shapes differ: {shapes[0]} vs {shapes[1]}")
    return shapes[0], {}


def _infer_add_const(
    op: Op, shapes: list[Shape], cfg: nm.NumericsConfig, num_classes: int
) -> tuple[Shape, dict[str, Shape]]:
    return shapes[0], {"spikes": shapes[0]}


def _infer_head(
    op: Op, shapes: list[Shape], cfg: nm.NumericsConfig, num_classes: int
) -> tuple[Shape, dict[str, Shape]]:
    _rank(op, shapes[0], 3, "head")
    weight = op.tensors["weight"].shape
    d = shapes[0][2]
    _need(
        op,
        len(weight) == 2 and weight[1] == d and weight[0] == num_classes,
        "tensors.weight",
        f"must be [{num_classes}, {d}], got {weight}",
    )
    return (num_classes,), {"weight": weight, "bias": (num_classes,)}


_INFER: dict[str, _Infer] = {
    "conv": _infer_conv,
    "conv_maxpool": _infer_conv_maxpool,
    "maxpool": _infer_maxpool,
    "tokens": _infer_tokens,
    "linear": _infer_linear,
    "attention": _infer_attention,
    "add": _infer_add,
    "add_const": _infer_add_const,
    "head": _infer_head,
}
"""Op kind (every key of :data:`~.ops.OP_KINDS`) -> output shape and expected tensor shapes."""


def infer_shapes(
    ops: Sequence[Op], *, input_shape: Shape, numerics: nm.NumericsConfig, num_classes: int
) -> dict[str, Shape]:
    """Value name -> shape without the batch axis, ``"input"`` (``input_shape``) included.

    Parameters
    ----------
    ops:
        The ops in execution order.
    input_shape:
        ``(T, C, H, W)`` of the model input.
    numerics:
        Widths the tensors and thresholds must fit.
    num_classes:
        Width of the head's logits.

    Raises
    ------
    IntModelError
        The first op whose fields, shapes or values do not fit.
    """
    shapes: dict[str, Shape] = {"input": tuple(input_shape)}
    for op in ops:
        kind = OP_KINDS[op.kind]
        _need(op, op.name not in shapes, "name", "is used twice", "structure")
        _need(
            op,
            len(op.inputs) == kind.n_inputs,
            "inputs",
            f"needs {kind.n_inputs} input(s), got {op.inputs}",
            "structure",
        )
        for name in op.inputs:
            _need(op, name in shapes, "inputs", f"{name!r} is not 'input' or an earlier op", "structure")
        missing = [p for p in kind.params if p not in op.params]
        _need(op, not missing, "params", f"missing {missing}", "structure")
        _need(
            op,
            set(op.tensors) == set(kind.tensors),
            "tensors",
            f"must be exactly {sorted(kind.tensors)}, got {sorted(op.tensors)}",
            "structure",
        )
        out, tensor_shapes = _INFER[op.kind](op, [shapes[name] for name in op.inputs], numerics, num_classes)
        for role, shape in tensor_shapes.items():
            _need(
                op,
                op.tensors[role].shape == shape,
                f"tensors.{role}",
                f"shape {op.tensors[role].shape} != {shape}",
            )
        check_ranges(op, numerics)
        shapes[op.name] = tuple(int(s) for s in out)
    return shapes


def check_ranges(op: Op, cfg: nm.NumericsConfig) -> None:
    """Check the value ranges implied by the widths (docs/numerics.md sections 1, 4, 8).

    Raises
    ------
    IntModelError
        With category ``"range"`` when a weight, bias or threshold lies outside its range.
    """
    lo, hi = cfg.membrane_min, cfg.membrane_max
    limits = {"weight": (-cfg.weight_max, cfg.weight_max), "threshold": (1, hi), "spikes": (0, 1)}
    if op.kind != "head":
        limits["bias"] = (lo, hi)  # the head's bias is a 64-bit logit offset
    for role, (vmin, vmax) in limits.items():
        array = op.tensors.get(role)
        if array is not None and array.size and (array.min() < vmin or array.max() > vmax):
            raise IntModelError(
                op.name,
                f"tensors.{role}",
                f"values [{array.min()}, {array.max()}] outside [{vmin}, {vmax}]",
                category="range",
            )
