"""Integer semantics shared by the golden integer model, the RTL testbenches and the docs.

This module is the single source of the accelerator's arithmetic (docs/numerics.md
states the same rules in prose). Every function takes and returns integer numpy
arrays (``int64``) and never touches floating point, so it can serve as the
bit-exact reference for the RTL processing elements.

Layouts follow the golden model: time first, ``[T, ...]``.

Rules, in short (``k`` = leak shift, tau = 2**k; ``F`` = fractional bits):

* synaptic current   ``x = sat_M((W_q . s) << F + b)``            (per output channel)
* LIF charge         ``h = v + ((x - v) >> k)``                   (arithmetic shift = floor)
* fire               ``s = h >= theta``
* hard reset         ``v = 0 if s else h``
* attention current  ``x = sat_M(((Q K^T) V) << F)``              (per head, per token group)
* max-pool on spikes ``max`` over the window (OR for binary spikes), zero padding
* residual           ``a + b`` of non-negative integers
* sum-pool           sum over time and tokens
* logits             ``L = (W_q . P) << F + b``                   (per-tensor head scale)

``sat_M`` clamps to the signed ``membrane_bits`` range. Because ``h`` always lies
between ``v`` and ``x`` (floor towards ``x`` never overshoots), saturating the current
is enough: the membrane can never leave the range afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .checks import check_int

__all__ = [
    "NumericsConfig",
    "signed_range",
    "saturate",
    "bit_planes",
    "lif_step",
    "lif",
    "lif_trace",
    "synaptic_current",
    "linear_accumulate",
    "conv2d_accumulate",
    "attention_accumulate",
    "attention_current",
    "maxpool2d",
    "current_maxpool2d",
    "residual_add",
    "sum_pool",
    "head_logits",
]


@dataclass(frozen=True)
class NumericsConfig:
    """Bit widths and fixed-point parameters of the integer model.

    Parameters
    ----------
    weight_bits:
        Signed weight width; weights lie in ``[-(2**(b-1) - 1), 2**(b-1) - 1]``
        (symmetric, so the scale is always positive).
    frac_bits:
        Fractional bits ``F`` of currents, biases and thresholds.
    membrane_bits:
        Signed width of currents and membrane potentials; currents saturate here.
    leak_shift:
        ``k`` with ``tau = 2**k``; ``k = 0`` is a non-leaky integrate-and-fire
        that forgets its membrane every step.
    input_bits:
        Unsigned width of multi-bit inputs (pixels, event counts, residual sums).
    """

    weight_bits: int = 8
    frac_bits: int = 4
    membrane_bits: int = 24
    leak_shift: int = 1
    input_bits: int = 8

    def __post_init__(self) -> None:
        name = type(self).__name__
        check_int(name, "weight_bits", self.weight_bits, minimum=2, maximum=16)
        check_int(name, "frac_bits", self.frac_bits, minimum=0, maximum=16)
        check_int(name, "membrane_bits", self.membrane_bits, minimum=4, maximum=48)
        check_int(name, "leak_shift", self.leak_shift, minimum=0, maximum=8)
        check_int(name, "input_bits", self.input_bits, minimum=1, maximum=16)

    @property
    def weight_max(self) -> int:
        return signed_range(self.weight_bits)[1]

    @property
    def membrane_min(self) -> int:
        return signed_range(self.membrane_bits)[0]

    @property
    def membrane_max(self) -> int:
        return signed_range(self.membrane_bits)[1]

    @property
    def input_max(self) -> int:
        return (1 << self.input_bits) - 1

    def to_dict(self) -> dict[str, int]:
        return {
            "weight_bits": self.weight_bits,
            "frac_bits": self.frac_bits,
            "membrane_bits": self.membrane_bits,
            "leak_shift": self.leak_shift,
            "input_bits": self.input_bits,
        }


def signed_range(bits: int) -> tuple[int, int]:
    """``(min, max)`` of a two's-complement integer of ``bits`` bits."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def _as_int(array: np.ndarray | int, name: str) -> np.ndarray:
    array = np.asarray(array)
    if array.dtype.kind not in "iub":
        raise TypeError(f"{name} must be an integer array, not dtype {array.dtype}")
    return array.astype(np.int64, copy=False)


def saturate(x: np.ndarray, bits: int) -> np.ndarray:
    """Clamp to the signed ``bits`` range (two's complement saturation)."""
    lo, hi = signed_range(bits)
    return np.clip(_as_int(x, "x"), lo, hi)


def bit_planes(x: np.ndarray, bits: int) -> np.ndarray:
    """Split non-negative integers into ``bits`` binary planes, LSB first.

    ``x == sum(2**b * planes[b])``; values outside ``[0, 2**bits)`` are an error,
    because a spike-only PE would silently drop their high bits.
    """
    x = _as_int(x, "x")
    if x.size and (x.min() < 0 or x.max() >= (1 << bits)):
        raise ValueError(
            f"values must lie in [0, {(1 << bits) - 1}] for {bits} bit planes, got [{x.min()}, {x.max()}]"
        )
    return np.stack([(x >> b) & 1 for b in range(bits)])


def lif_step(
    v: np.ndarray, x: np.ndarray, theta: np.ndarray, *, leak_shift: int
) -> tuple[np.ndarray, np.ndarray]:
    """One integer LIF step: returns ``(spike, v_next)``.

    ``h = v + ((x - v) >> leak_shift)``; ``spike = h >= theta``; ``v_next = 0 if spike else h``.
    ``x`` must already be saturated to the membrane range (see :func:`synaptic_current`).
    """
    h = v + ((x - v) >> leak_shift)
    spike = h >= theta
    return spike.astype(np.int64), np.where(spike, 0, h)


def lif_trace(
    x: np.ndarray, theta: np.ndarray | int, *, leak_shift: int, membrane_bits: int, v0: np.ndarray | int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Integer LIF over ``T = x.shape[0]`` steps; returns ``(spikes, membrane)``.

    ``membrane[t]`` is the potential after the reset of step ``t``. ``theta``
    broadcasts against one time step ``x[t]`` (per-channel thresholds go last or
    are pre-shaped by the caller). The current is saturated to ``membrane_bits``
    before charging, which keeps every later value in range.
    """
    x = saturate(_as_int(x, "x"), membrane_bits)
    theta = _as_int(theta, "theta")
    v = np.broadcast_to(_as_int(v0, "v0"), x.shape[1:]).copy()
    spikes = np.empty_like(x)
    membrane = np.empty_like(x)
    for t in range(x.shape[0]):
        spikes[t], v = lif_step(v, x[t], theta, leak_shift=leak_shift)
        membrane[t] = v
    return spikes, membrane


def lif(x: np.ndarray, theta: np.ndarray | int, *, leak_shift: int, membrane_bits: int) -> np.ndarray:
    """Integer LIF spikes ``[T, ...]`` (0/1) for currents ``x`` ``[T, ...]``."""
    return lif_trace(x, theta, leak_shift=leak_shift, membrane_bits=membrane_bits)[0]


def synaptic_current(
    acc: np.ndarray, bias: np.ndarray | int, *, frac_bits: int, membrane_bits: int
) -> np.ndarray:
    """``sat((acc << F) + bias)``: the LIF input current of an accumulated sum."""
    return saturate((_as_int(acc, "acc") << frac_bits) + _as_int(bias, "bias"), membrane_bits)


def linear_accumulate(s: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``s @ w.T`` on integers: ``s`` is ``[..., I]`` (spikes or small integers), ``w`` ``[O, I]``."""
    s, w = _as_int(s, "s"), _as_int(w, "w")
    if s.shape[-1] != w.shape[1]:
        raise ValueError(f"input features {s.shape[-1]} do not match weight shape {w.shape}")
    return s @ w.T


def conv2d_accumulate(s: np.ndarray, w: np.ndarray, *, stride: int = 1, padding: int = 0) -> np.ndarray:
    """2-D convolution (cross-correlation, zero padding) on integers.

    ``s`` is ``[N, C, H, W]``, ``w`` is ``[O, C, kh, kw]``; returns ``[N, O, H', W']``.
    """
    s, w = _as_int(s, "s"), _as_int(w, "w")
    n, c, h, wd = s.shape
    o, ci, kh, kw = w.shape
    if c != ci:
        raise ValueError(f"input channels {c} do not match weight shape {w.shape}")
    padded = np.pad(s, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    oh = (h + 2 * padding - kh) // stride + 1
    ow = (wd + 2 * padding - kw) // stride + 1
    # im2col as a strided view: [N, C, oh, ow, kh, kw]
    sn, sc, sh, sw = padded.strides
    cols = np.lib.stride_tricks.as_strided(
        padded,
        shape=(n, c, oh, ow, kh, kw),
        strides=(sn, sc, sh * stride, sw * stride, sh, sw),
        writeable=False,
    )
    cols = cols.transpose(0, 2, 3, 1, 4, 5).reshape(n, oh, ow, c * kh * kw)
    out = cols @ w.reshape(o, -1).T
    return out.transpose(0, 3, 1, 2)


def attention_accumulate(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``(Q K^T) V`` on binary spikes, per token group: ``[..., G, d]`` each -> ``[..., G, d]``.

    ``Q (K^T V)`` gives the same integers; the RTL may use either order.
    """
    q, k, v = _as_int(q, "q"), _as_int(k, "k"), _as_int(v, "v")
    if not (q.shape == k.shape == v.shape):
        raise ValueError(f"q, k, v shapes differ: {q.shape}, {k.shape}, {v.shape}")
    return (q @ np.swapaxes(k, -1, -2)) @ v


def attention_current(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, *, frac_bits: int, membrane_bits: int
) -> np.ndarray:
    """Attention-LIF input current ``sat(((Q K^T) V) << F)``; the scale is folded into theta."""
    return synaptic_current(
        attention_accumulate(q, k, v), 0, frac_bits=frac_bits, membrane_bits=membrane_bits
    )


def _window_max(padded: np.ndarray, kernel: int, stride: int) -> np.ndarray:
    """Maximum over every ``kernel x kernel`` window at ``stride`` of the last two axes (no padding added)."""
    h, w = padded.shape[-2:]
    oh, ow = (h - kernel) // stride + 1, (w - kernel) // stride + 1
    windows = np.lib.stride_tricks.sliding_window_view(padded, (kernel, kernel), axis=(-2, -1))
    return windows[..., ::stride, ::stride, :, :][..., :oh, :ow, :, :].max(axis=(-2, -1))


def maxpool2d(s: np.ndarray, *, kernel: int, stride: int, padding: int = 0) -> np.ndarray:
    """Max-pool ``[..., H, W]`` of non-negative integers with zero padding (OR on spikes)."""
    s = _as_int(s, "s")
    if s.size and s.min() < 0:
        raise ValueError("max-pool with zero padding needs non-negative inputs")
    pad = [(0, 0)] * (s.ndim - 2) + [(padding, padding), (padding, padding)]
    padded = np.pad(s, pad)
    return _window_max(padded, kernel, stride)


def current_maxpool2d(
    x: np.ndarray, *, kernel: int, stride: int, padding: int, membrane_bits: int
) -> np.ndarray:
    """Max-pool ``[..., H, W]`` of saturated LIF input currents (docs/numerics.md section 6).

    Currents may be negative, so padded taps hold the minimum ``M``-bit current
    ``-2^(M-1)``: no current of the window is below it, which makes them the same as
    skipped taps (the float model pads with ``-inf``) as long as every window holds one
    real tap (``padding <= kernel // 2``). ``x`` must already be saturated to ``M`` bits.
    """
    x = _as_int(x, "x")
    lo, hi = signed_range(membrane_bits)
    if x.size and (x.min() < lo or x.max() > hi):
        raise ValueError(f"currents must be saturated to {membrane_bits} bits, got [{x.min()}, {x.max()}]")
    if padding > kernel // 2:
        raise ValueError(f"padding {padding} > kernel // 2 = {kernel // 2} leaves windows without a real tap")
    pad = [(0, 0)] * (x.ndim - 2) + [(padding, padding), (padding, padding)]
    padded = np.pad(x, pad, constant_values=lo)
    return _window_max(padded, kernel, stride)


def residual_add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Residual sum of two non-negative integer tensors (spike counts)."""
    return _as_int(a, "a") + _as_int(b, "b")


def sum_pool(s: np.ndarray, *, axes: tuple[int, ...]) -> np.ndarray:
    """Sum over ``axes`` (time and tokens); the float model's mean folds into the head scale."""
    return _as_int(s, "s").sum(axis=axes)


def head_logits(pooled: np.ndarray, w: np.ndarray, bias: np.ndarray, *, frac_bits: int) -> np.ndarray:
    """Integer logits ``(pooled @ w.T) << F + bias`` (no saturation: int64 throughout)."""
    return (linear_accumulate(pooled, w) << frac_bits) + _as_int(bias, "bias")
