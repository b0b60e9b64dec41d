"""Bit-accurate execution of an op graph (docs/numerics.md, section 10).

Each op kind applies the integer rules of :mod:`contract.numerics` batch-wise on ``int64``
numpy arrays: no floating point anywhere. Value layouts (``B`` = batch): image-like
``[T, B, C, H, W]``, tokens ``[T, B, N, D]``, logits ``[B, classes]``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .. import numerics as nm
from .ops import GROUPINGS, Op, Trace

__all__ = ["execute", "group_tokens", "ungroup_tokens"]

_Run = Callable[[Op, list[np.ndarray], nm.NumericsConfig, Trace | None], np.ndarray]


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
def _run_lif(
    op: Op, current: np.ndarray, theta: np.ndarray | int, cfg: nm.NumericsConfig, trace: Trace | None
) -> np.ndarray:
    current = nm.saturate(current, cfg.membrane_bits)
    if trace is not None:
        trace[op.name + ".current"] = current
    return nm.lif(current, theta, leak_shift=cfg.leak_shift, membrane_bits=cfg.membrane_bits)


def _conv_current(op: Op, x: np.ndarray, cfg: nm.NumericsConfig) -> np.ndarray:
    """The conv's synaptic currents ``[T * B, C, H', W']`` of the input ``x`` ``[T, B, ...]``."""
    t, b = x.shape[:2]
    acc = nm.conv2d_accumulate(
        x.reshape(t * b, *x.shape[2:]),
        op.tensors["weight"],
        stride=op.params["stride"],
        padding=op.params["padding"],
    )
    return nm.synaptic_current(
        acc, op.tensors["bias"][:, None, None], frac_bits=cfg.frac_bits, membrane_bits=cfg.membrane_bits
    )


def _run_image_lif(
    op: Op, current: np.ndarray, steps: tuple[int, int], cfg: nm.NumericsConfig, trace: Trace | None
) -> np.ndarray:
    """The per-channel LIF of image-shaped currents ``[T * B, C, H, W]`` (``steps`` = ``(T, B)``)."""
    theta = op.tensors["threshold"][:, None, None]
    return _run_lif(op, current.reshape(*steps, *current.shape[1:]), theta, cfg, trace)


def _run_conv(op: Op, xs: list[np.ndarray], cfg: nm.NumericsConfig, trace: Trace | None) -> np.ndarray:
    return _run_image_lif(op, _conv_current(op, xs[0], cfg), xs[0].shape[:2], cfg, trace)


def _run_conv_maxpool(
    op: Op, xs: list[np.ndarray], cfg: nm.NumericsConfig, trace: Trace | None
) -> np.ndarray:
    # Max of saturated currents = saturation of the max (both monotone), as the float model pools.
    pooled = nm.current_maxpool2d(
        _conv_current(op, xs[0], cfg),
        kernel=op.params["pool_kernel"],
        stride=op.params["pool_stride"],
        padding=op.params["pool_padding"],
        membrane_bits=cfg.membrane_bits,
    )
    return _run_image_lif(op, pooled, xs[0].shape[:2], cfg, trace)


def _run_linear(op: Op, xs: list[np.ndarray], cfg: nm.NumericsConfig, trace: Trace | None) -> np.ndarray:
    current = nm.synaptic_current(
        nm.linear_accumulate(xs[0], op.tensors["weight"]),
        op.tensors["bias"],
        frac_bits=cfg.frac_bits,
        membrane_bits=cfg.membrane_bits,
    )
    return _run_lif(op, current, op.tensors["threshold"], cfg, trace)


def _run_attention(op: Op, xs: list[np.ndarray], cfg: nm.NumericsConfig, trace: Trace | None) -> np.ndarray:
    grouping, heads = op.params["grouping"], op.params["heads"]
    q, k, v = (group_tokens(x, grouping=grouping, heads=heads) for x in xs)
    current = nm.attention_current(q, k, v, frac_bits=cfg.frac_bits, membrane_bits=cfg.membrane_bits)
    return _run_lif(
        op, ungroup_tokens(current, grouping=grouping, shape=xs[0].shape), op.params["threshold"], cfg, trace
    )


def _run_maxpool(op: Op, xs: list[np.ndarray], cfg: nm.NumericsConfig, trace: Trace | None) -> np.ndarray:
    return nm.maxpool2d(
        xs[0], kernel=op.params["kernel"], stride=op.params["stride"], padding=op.params["padding"]
    )


def _run_tokens(op: Op, xs: list[np.ndarray], cfg: nm.NumericsConfig, trace: Trace | None) -> np.ndarray:
    t, b, c, h, w = xs[0].shape
    return np.ascontiguousarray(xs[0].reshape(t, b, c, h * w).transpose(0, 1, 3, 2))


def _run_add(op: Op, xs: list[np.ndarray], cfg: nm.NumericsConfig, trace: Trace | None) -> np.ndarray:
    return nm.residual_add(xs[0], xs[1])


def _run_add_const(op: Op, xs: list[np.ndarray], cfg: nm.NumericsConfig, trace: Trace | None) -> np.ndarray:
    # The constant has no batch axis: every sample gets the same one.
    return nm.residual_add(xs[0], np.expand_dims(op.tensors["spikes"], 1))


def _run_head(op: Op, xs: list[np.ndarray], cfg: nm.NumericsConfig, trace: Trace | None) -> np.ndarray:
    pooled = nm.sum_pool(xs[0], axes=(0, 2))
    if trace is not None:
        trace[op.name + ".pooled"] = pooled
    return nm.head_logits(pooled, op.tensors["weight"], op.tensors["bias"], frac_bits=cfg.frac_bits)


_RUN: dict[str, _Run] = {
    "conv": _run_conv,
    "conv_maxpool": _run_conv_maxpool,
    "maxpool": _run_maxpool,
    "tokens": _run_tokens,
    "linear": _run_linear,
    "attention": _run_attention,
    "add": _run_add,
    "add_const": _run_add_const,
    "head": _run_head,
}
"""Op kind (every key of :data:`~.ops.OP_KINDS`) -> its integer execution."""


def execute(
    ops: Sequence[Op], x: np.ndarray, numerics: nm.NumericsConfig, *, trace: bool = False
) -> tuple[np.ndarray, Trace]:
    """Run checked ops on a time-major integer input ``x`` ``[T, B, C, H, W]``.

    Parameters
    ----------
    ops:
        The ops in execution order (checked by :func:`~.shapes.infer_shapes`); the last
        one's output is returned.
    x:
        ``int64`` input, time first.
    numerics:
        Widths and fixed-point parameters.
    trace:
        Record every value.

    Returns
    -------
    output:
        The last op's output (the logits ``[B, classes]`` of a model).
    trace:
        Empty unless ``trace``: every op's output under its name, LIF input currents under
        ``name + ".current"``, the head's sum-pool under ``name + ".pooled"`` (op order).
    """
    values: dict[str, np.ndarray] = {"input": x}
    record: Trace | None = {} if trace else None
    for op in ops:
        out = _RUN[op.kind](op, [values[name] for name in op.inputs], numerics, record)
        values[op.name] = out
        if record is not None:
            record[op.name] = out
    return values[ops[-1].name], record if record is not None else {}
