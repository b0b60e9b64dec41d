"""Bit-accurate integer reference model of the Hardware Spikeformer (docs/numerics.md, section 10).

An :class:`IntModel` is a list of :class:`Op` s in execution order. Each op reads named
values (``"input"`` or an earlier op's name) and writes one value under its own name;
the integer rules are those of :mod:`golden.numerics`, applied batch-wise on ``int64``
numpy arrays: no floating point anywhere in :meth:`IntModel.run`.

Value layouts (``B`` = batch): image-like ``[T, B, C, H, W]``, tokens ``[T, B, N, D]``,
logits ``[B, classes]``. Shapes recorded per op leave out the batch axis.

The model is independent of PyTorch: it is built by :mod:`golden.quantize` from a
trained float model, or loaded from an export directory by :mod:`golden.export`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import numerics as nm

__all__ = [
    "OP_KINDS",
    "GROUPINGS",
    "IntModelError",
    "Op",
    "IntModel",
    "Mismatch",
    "group_tokens",
    "ungroup_tokens",
    "quantize_input",
    "compare_traces",
    "assert_traces_equal",
]

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
        Float scales for information only (``scale``, ``logit_scale``); never read by :meth:`IntModel.run`.
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
            raise IntModelError(str(self.name), "name",
                                "must match [A-Za-z0-9_][A-Za-z0-9_.-]* and not be 'input'")
        if self.kind not in OP_KINDS:
            raise IntModelError(self.name, "kind", f"must be one of {sorted(OP_KINDS)}, not {self.kind!r}")
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "params", dict(self.params))
        tensors = {}
        for role, array in self.tensors.items():
            array = np.asarray(array)
            if array.dtype.kind not in "iu":
                raise IntModelError(self.name, f"tensors.{role}",
                                    f"must be an integer array, not {array.dtype}")
            tensors[role] = array.astype(np.int64)
        object.__setattr__(self, "tensors", tensors)


# --------------------------------------------------------------------------- token grouping
def group_tokens(x: np.ndarray, *, grouping: str, heads: int) -> np.ndarray:
    """``[T, B, N, D]`` -> ``[..., G, d]`` token groups per head (docs/numerics.md section 7).

    ``joint``: ``[B, H, T*N, d]`` (``g = t N + n``); ``temporal``: ``[B, N, H, T, d]``;
    ``spatial``: ``[T, B, H, N, d]``.
    """
    t, b, n, d = x.shape
    if heads < 1 or d % heads:
        raise ValueError(f"heads ({heads}) must divide the token width ({d})")
    xh = x.reshape(t, b, n, heads, d // heads)
    if grouping == "joint":
        return xh.transpose(1, 3, 0, 2, 4).reshape(b, heads, t * n, d // heads)
    if grouping == "temporal":
        return xh.transpose(1, 2, 3, 0, 4)
    if grouping == "spatial":
        return xh.transpose(0, 1, 3, 2, 4)
    raise ValueError(f"grouping must be one of {GROUPINGS}, not {grouping!r}")


def ungroup_tokens(g: np.ndarray, *, grouping: str, shape: tuple[int, int, int, int]) -> np.ndarray:
    """Inverse of :func:`group_tokens`: back to ``[T, B, N, D]`` of ``shape``."""
    t, b, n, d = shape
    if grouping == "joint":
        heads = g.shape[1]
        xh = g.reshape(b, heads, t, n, d // heads).transpose(2, 0, 3, 1, 4)
    elif grouping == "temporal":
        xh = g.transpose(3, 0, 1, 2, 4)
    elif grouping == "spatial":
        xh = g.transpose(0, 1, 3, 2, 4)
    else:
        raise ValueError(f"grouping must be one of {GROUPINGS}, not {grouping!r}")
    return np.ascontiguousarray(xh).reshape(t, b, n, d)


# --------------------------------------------------------------------------- op kinds
Shape = tuple[int, ...]
Trace = dict[str, np.ndarray]


@dataclass(frozen=True)
class _Kind:
    n_inputs: int
    params: tuple[str, ...]
    tensors: tuple[str, ...]
    infer: Callable[[Op, list[Shape], IntModel], tuple[Shape, dict[str, Shape]]]
    run: Callable[[Op, list[np.ndarray], nm.NumericsConfig, Trace | None], np.ndarray]


def _need(op: Op, cond: bool, field_: str, reason: str, category: str = "shape") -> None:
    if not cond:
        raise IntModelError(op.name, field_, reason, category=category)


def _int_param(op: Op, key: str, minimum: int) -> int:
    value = op.params.get(key)
    _need(op, isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= minimum,
          f"params.{key}", f"must be an integer >= {minimum}, not {value!r}", "structure")
    return int(value)


def _rank(op: Op, shape: Shape, rank: int, what: str) -> None:
    _need(op, len(shape) == rank, "inputs",
          f"{what} input must have rank {rank} (no batch axis), got {shape}")


def _infer_conv(op: Op, shapes: list[Shape], model: IntModel) -> tuple[Shape, dict[str, Shape]]:
    _rank(op, shapes[0], 4, "conv")
    t, c, h, w = shapes[0]
    weight = op.tensors["weight"].shape
    _need(op, len(weight) == 4 and weight[1] == c and weight[2] == weight[3], "tensors.weight",
          f"must be [O, {c}, k, k], got {weight}")
    o, k = weight[0], weight[2]
    stride, pad = _int_param(op, "stride", 1), _int_param(op, "padding", 0)
    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    _need(op, oh >= 1 and ow >= 1, "tensors.weight", f"kernel {k} does not fit input {h}x{w}")
    return (t, o, oh, ow), {"weight": weight, "bias": (o,), "threshold": (o,)}


def _infer_linear(op: Op, shapes: list[Shape], model: IntModel) -> tuple[Shape, dict[str, Shape]]:
    _rank(op, shapes[0], 3, "linear")
    t, n, i = shapes[0]
    weight = op.tensors["weight"].shape
    _need(op, len(weight) == 2 and weight[1] == i, "tensors.weight", f"must be [O, {i}], got {weight}")
    o = weight[0]
    return (t, n, o), {"weight": weight, "bias": (o,), "threshold": (o,)}


def _infer_maxpool(op: Op, shapes: list[Shape], model: IntModel) -> tuple[Shape, dict[str, Shape]]:
    _rank(op, shapes[0], 4, "maxpool")
    t, c, h, w = shapes[0]
    k, stride, pad = _int_param(op, "kernel", 1), _int_param(op, "stride", 1), _int_param(op, "padding", 0)
    _need(op, pad <= k // 2, "params.padding", f"must be <= kernel // 2 = {k // 2}, not {pad}")
    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    _need(op, oh >= 1 and ow >= 1, "params.kernel", f"window {k} does not fit input {h}x{w}")
    return (t, c, oh, ow), {}


def _infer_tokens(op: Op, shapes: list[Shape], model: IntModel) -> tuple[Shape, dict[str, Shape]]:
    _rank(op, shapes[0], 4, "tokens")
    t, c, h, w = shapes[0]
    return (t, h * w, c), {}


def _infer_attention(op: Op, shapes: list[Shape], model: IntModel) -> tuple[Shape, dict[str, Shape]]:
    _rank(op, shapes[0], 3, "attention")
    _need(op, shapes[0] == shapes[1] == shapes[2], "inputs", f"q, k, v shapes differ: {shapes}")
    heads = _int_param(op, "heads", 1)
    _need(op, shapes[0][2] % heads == 0, "params.heads", f"{heads} does not divide width {shapes[0][2]}")
    _need(op, op.params.get("grouping") in GROUPINGS, "params.grouping",
          f"must be one of {GROUPINGS}, not {op.params.get('grouping')!r}", "structure")
    theta = _int_param(op, "threshold", 1)
    _need(op, theta <= model.numerics.membrane_max, "params.threshold",
          f"{theta} exceeds the membrane range (max {model.numerics.membrane_max})", "range")
    return shapes[0], {}


def _infer_add(op: Op, shapes: list[Shape], model: IntModel) -> tuple[Shape, dict[str, Shape]]:
    _need(op, shapes[0] == shapes[1], "inputs", f"operand shapes differ: {shapes[0]} vs {shapes[1]}")
    return shapes[0], {}


def _infer_head(op: Op, shapes: list[Shape], model: IntModel) -> tuple[Shape, dict[str, Shape]]:
    _rank(op, shapes[0], 3, "head")
    weight = op.tensors["weight"].shape
    d = shapes[0][2]
    _need(op, len(weight) == 2 and weight[1] == d and weight[0] == model.num_classes, "tensors.weight",
          f"must be [{model.num_classes}, {d}], got {weight}")
    return (model.num_classes,), {"weight": weight, "bias": (model.num_classes,)}


def _run_lif(op: Op, current: np.ndarray, theta: np.ndarray | int, cfg: nm.NumericsConfig,
             trace: Trace | None) -> np.ndarray:
    current = nm.saturate(current, cfg.membrane_bits)
    if trace is not None:
        trace[op.name + ".current"] = current
    return nm.lif(current, theta, leak_shift=cfg.leak_shift, membrane_bits=cfg.membrane_bits)


def _run_conv(op: Op, xs: list[np.ndarray], cfg: nm.NumericsConfig, trace: Trace | None) -> np.ndarray:
    x = xs[0]
    t, b = x.shape[:2]
    acc = nm.conv2d_accumulate(x.reshape(t * b, *x.shape[2:]), op.tensors["weight"],
                               stride=op.params["stride"], padding=op.params["padding"])
    current = nm.synaptic_current(acc, op.tensors["bias"][:, None, None], frac_bits=cfg.frac_bits,
                                  membrane_bits=cfg.membrane_bits)
    return _run_lif(op, current.reshape(t, b, *acc.shape[1:]), op.tensors["threshold"][:, None, None],
                    cfg, trace)


def _run_linear(op: Op, xs: list[np.ndarray], cfg: nm.NumericsConfig, trace: Trace | None) -> np.ndarray:
    current = nm.synaptic_current(nm.linear_accumulate(xs[0], op.tensors["weight"]), op.tensors["bias"],
                                  frac_bits=cfg.frac_bits, membrane_bits=cfg.membrane_bits)
    return _run_lif(op, current, op.tensors["threshold"], cfg, trace)


def _run_attention(op: Op, xs: list[np.ndarray], cfg: nm.NumericsConfig, trace: Trace | None) -> np.ndarray:
    grouping, heads = op.params["grouping"], op.params["heads"]
    q, k, v = (group_tokens(x, grouping=grouping, heads=heads) for x in xs)
    current = nm.attention_current(q, k, v, frac_bits=cfg.frac_bits, membrane_bits=cfg.membrane_bits)
    return _run_lif(op, ungroup_tokens(current, grouping=grouping, shape=xs[0].shape),
                    op.params["threshold"], cfg, trace)


def _run_maxpool(op: Op, xs: list[np.ndarray], cfg: nm.NumericsConfig, trace: Trace | None) -> np.ndarray:
    return nm.maxpool2d(xs[0], kernel=op.params["kernel"], stride=op.params["stride"],
                        padding=op.params["padding"])


def _run_tokens(op: Op, xs: list[np.ndarray], cfg: nm.NumericsConfig, trace: Trace | None) -> np.ndarray:
    t, b, c, h, w = xs[0].shape
    return np.ascontiguousarray(xs[0].reshape(t, b, c, h * w).transpose(0, 1, 3, 2))


def _run_add(op: Op, xs: list[np.ndarray], cfg: nm.NumericsConfig, trace: Trace | None) -> np.ndarray:
    return nm.residual_add(xs[0], xs[1])


def _run_head(op: Op, xs: list[np.ndarray], cfg: nm.NumericsConfig, trace: Trace | None) -> np.ndarray:
    pooled = nm.sum_pool(xs[0], axes=(0, 2))
    if trace is not None:
        trace[op.name + ".pooled"] = pooled
    return nm.head_logits(pooled, op.tensors["weight"], op.tensors["bias"], frac_bits=cfg.frac_bits)


OP_KINDS: dict[str, _Kind] = {
    "conv": _Kind(1, ("stride", "padding"), ("weight", "bias", "threshold"), _infer_conv, _run_conv),
    "maxpool": _Kind(1, ("kernel", "stride", "padding"), (), _infer_maxpool, _run_maxpool),
    "tokens": _Kind(1, (), (), _infer_tokens, _run_tokens),
    "linear": _Kind(1, (), ("weight", "bias", "threshold"), _infer_linear, _run_linear),
    "attention": _Kind(3, ("grouping", "heads", "threshold"), (), _infer_attention, _run_attention),
    "add": _Kind(2, (), (), _infer_add, _run_add),
    "head": _Kind(1, (), ("weight", "bias"), _infer_head, _run_head),
}
"""Op kind -> its inputs, parameters, tensors, shape inference and integer execution."""

LIF_KINDS = ("conv", "linear", "attention")
"""Kinds whose output is LIF spikes (their traces also hold ``name + '.current'``)."""


# --------------------------------------------------------------------------- the model
@dataclass(frozen=True, eq=False)
class IntModel:
    """Integer reference model: validated on construction, run with :meth:`run`.

    Parameters
    ----------
    numerics:
        Widths and fixed-point parameters.
    input_shape:
        ``(C, H, W)`` of one time step of the input.
    timesteps:
        ``T``.
    num_classes:
        Width of the logits.
    ops:
        Operations in execution order; the last one is the ``head``.
    preset, model_config:
        The float model this was quantized from (informational).
    event:
        ``True`` when the input is event frames ``[B, T, C, H, W]`` rather than a static image.

    Attributes
    ----------
    shapes:
        Value name -> shape without the batch axis (``"input"`` included).
    """

    numerics: nm.NumericsConfig
    input_shape: tuple[int, int, int]
    timesteps: int
    num_classes: int
    ops: tuple[Op, ...]
    preset: str = ""
    model_config: Mapping[str, Any] = field(default_factory=dict)
    event: bool = False
    shapes: dict[str, Shape] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.numerics, nm.NumericsConfig):
            raise IntModelError("", "numerics",
                                f"must be a NumericsConfig, not {type(self.numerics).__name__}")
        object.__setattr__(self, "input_shape", tuple(int(s) for s in self.input_shape))
        object.__setattr__(self, "ops", tuple(self.ops))
        if len(self.input_shape) != 3 or min(self.input_shape) < 1:
            raise IntModelError("", "input_shape",
                                f"must be three positive sizes (C, H, W), not {self.input_shape}")
        for key in ("timesteps", "num_classes"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise IntModelError("", key, f"must be a positive integer, not {value!r}")
        if not self.ops or self.ops[-1].kind != "head" or sum(op.kind == "head" for op in self.ops) != 1:
            raise IntModelError("", "ops", "must end with the one and only 'head' op")
        object.__setattr__(self, "shapes", self._infer_shapes())

    def _infer_shapes(self) -> dict[str, Shape]:
        shapes: dict[str, Shape] = {"input": (self.timesteps, *self.input_shape)}
        cfg = self.numerics
        for op in self.ops:
            kind = OP_KINDS[op.kind]
            _need(op, op.name not in shapes, "name", "is used twice", "structure")
            _need(op, len(op.inputs) == kind.n_inputs, "inputs",
                  f"needs {kind.n_inputs} input(s), got {op.inputs}", "structure")
            for name in op.inputs:
                _need(op, name in shapes, "inputs", f"{name!r} is not 'input' or an earlier op", "structure")
            missing = [p for p in kind.params if p not in op.params]
            _need(op, not missing, "params", f"missing {missing}", "structure")
            _need(op, set(op.tensors) == set(kind.tensors), "tensors",
                  f"must be exactly {sorted(kind.tensors)}, got {sorted(op.tensors)}", "structure")
            out, tensor_shapes = kind.infer(op, [shapes[name] for name in op.inputs], self)
            for role, shape in tensor_shapes.items():
                _need(op, op.tensors[role].shape == shape, f"tensors.{role}",
                      f"shape {op.tensors[role].shape} != {shape}")
            _check_ranges(op, cfg)
            shapes[op.name] = tuple(int(s) for s in out)
        return shapes

    @property
    def op_names(self) -> tuple[str, ...]:
        return tuple(op.name for op in self.ops)

    def op(self, name: str) -> Op:
        """The op called ``name``."""
        for op in self.ops:
            if op.name == name:
                return op
        raise KeyError(f"integer model has no op {name!r}; ops: {', '.join(self.op_names)}")

    def run(self, x: np.ndarray, *, trace: bool = False) -> tuple[np.ndarray, Trace]:
        """Run a batch: ``x`` integers ``[B, T, C, H, W]`` or ``[B, C, H, W]`` (static, repeated over T).

        Returns
        -------
        logits:
            ``int64 [B, classes]``.
        trace:
            Empty unless ``trace``: every op's output under its name, LIF input currents under
            ``name + ".current"``, the head's sum-pool under ``"head.pooled"`` (op order).
        """
        x = quantize_input(x, input_max=self.numerics.input_max, strict=True)
        x = self._time_major(x)
        values: dict[str, np.ndarray] = {"input": x}
        record: Trace | None = {} if trace else None
        for op in self.ops:
            out = OP_KINDS[op.kind].run(op, [values[name] for name in op.inputs], self.numerics, record)
            values[op.name] = out
            if record is not None:
                record[op.name] = out
        return values[self.ops[-1].name], record if record is not None else {}

    def predict(self, x: np.ndarray) -> np.ndarray:
        """``argmax`` of the logits (first index on ties)."""
        return self.run(x)[0].argmax(axis=1)

    def _time_major(self, x: np.ndarray) -> np.ndarray:
        step = self.input_shape
        if x.ndim == 4 and x.shape[1:] == step:
            return np.broadcast_to(x[None], (self.timesteps, *x.shape))
        if x.ndim == 5 and x.shape[1:] == (self.timesteps, *step):
            return x.transpose(1, 0, 2, 3, 4)
        raise ValueError(f"input must be [B, {self.timesteps}, {', '.join(map(str, step))}] or "
                         f"[B, {', '.join(map(str, step))}], got shape {x.shape}")


def _check_ranges(op: Op, cfg: nm.NumericsConfig) -> None:
    """Value ranges implied by the widths (docs/numerics.md sections 1, 4, 8)."""
    lo, hi = cfg.membrane_min, cfg.membrane_max
    limits = {"weight": (-cfg.weight_max, cfg.weight_max), "threshold": (1, hi)}
    if op.kind != "head":
        limits["bias"] = (lo, hi)  # the head's bias is a 64-bit logit offset
    for role, (vmin, vmax) in limits.items():
        array = op.tensors.get(role)
        if array is not None and array.size and (array.min() < vmin or array.max() > vmax):
            raise IntModelError(op.name, f"tensors.{role}",
                                f"values [{array.min()}, {array.max()}] outside [{vmin}, {vmax}]",
                                category="range")


def quantize_input(x: Any, *, input_max: int, strict: bool = False) -> np.ndarray:
    """Integer input of the model (docs/numerics.md section 3) as ``int64``.

    Float arrays / tensors must hold integers; values above ``input_max`` (event counts)
    are clipped to it unless ``strict``, which rejects them (the integer model's own
    entry check). Negative values are always an error.
    """
    if hasattr(x, "detach"):  # a torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.dtype.kind == "f":
        if not np.isfinite(x).all() or (x != np.round(x)).any():
            raise ValueError("input must hold integers (pixels or event counts), found fractional values")
        x = x.astype(np.int64)
    elif x.dtype.kind not in "iub":
        raise TypeError(f"input must be an integer or integer-valued float array, not {x.dtype}")
    x = x.astype(np.int64, copy=False)
    if x.size and x.min() < 0:
        raise ValueError(f"input must be non-negative, found {x.min()}")
    if x.size and x.max() > input_max:
        if strict:
            raise ValueError(f"input values must be <= input_max = {input_max}, found {x.max()}; "
                             "clip event counts with quantize_input first")
        x = np.minimum(x, input_max)
    return x


# --------------------------------------------------------------------------- traces
@dataclass(frozen=True)
class Mismatch:
    """First difference between two traces (see :func:`compare_traces`)."""

    name: str
    reason: str
    index: tuple[int, ...] | None = None
    expected: int | None = None
    actual: int | None = None
    count: int = 0

    def __str__(self) -> str:
        if self.index is None:
            return f"trace {self.name!r}: {self.reason}"
        return (f"trace {self.name!r} differs at index {self.index}: expected {self.expected}, got "
                f"{self.actual} ({self.count} differing elements; {self.reason})")


def compare_traces(expected: Mapping[str, Any], actual: Mapping[str, Any], *,
                   names: list[str] | None = None) -> Mismatch | None:
    """The first differing entry of two traces, in ``expected`` order, or ``None``.

    Every name of ``names`` (default: all names of ``expected``) must be present in
    ``actual`` with the same shape and values. Arrays may be numpy or torch (compared
    as integers after an exactness check).
    """
    for name in names if names is not None else list(expected):
        if name not in expected:
            return Mismatch(name, "missing from the expected trace")
        if name not in actual:
            return Mismatch(name, "missing from the actual trace")
        a, b = _as_exact_int(expected[name], name), _as_exact_int(actual[name], name)
        if a.shape != b.shape:
            return Mismatch(name, f"shape {a.shape} expected, got {b.shape}")
        diff = a != b
        if diff.any():
            index = tuple(int(i) for i in np.argwhere(diff)[0])
            return Mismatch(name, "first index in C order", index, int(a[index]), int(b[index]),
                            int(diff.sum()))
    return None


def assert_traces_equal(expected: Mapping[str, Any], actual: Mapping[str, Any], *,
                        names: list[str] | None = None) -> None:
    """Raise ``AssertionError`` naming the first differing trace entry and index."""
    mismatch = compare_traces(expected, actual, names=names)
    if mismatch is not None:
        raise AssertionError(str(mismatch))


def _as_exact_int(array: Any, name: str) -> np.ndarray:
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    array = np.asarray(array)
    if array.dtype.kind == "f":
        rounded = np.round(array)
        if not (rounded == array).all():
            raise ValueError(f"trace {name!r} holds non-integer values")
        return rounded.astype(np.int64)
    return array.astype(np.int64, copy=False)
