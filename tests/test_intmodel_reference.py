"""The integer model's op graph against a loop interpreter written from docs/numerics.md.

tests/test_numerics.py checks each integer helper of contract/numerics.py on its own; this file
checks what contract/intmodel adds on top: how each op kind applies them (the time and batch
axes, per-channel bias and threshold, the token order, the grouping of every attention
variant, the head's sum over time and tokens, the static input repeated over time). The
interpreter below uses Python integers and explicit loops only: it reads the ops' parameters
and tensors but calls nothing from contract/, so a bug in contract/ cannot hide in both
(the emulator of protocol/ cannot serve here: it calls the integer model's own functions).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from contract.intmodel import IntModel, Op, quantize_input
from contract.numerics import NumericsConfig

from intmodel_factory import banded_int_model, random_input, random_int_model

Value = np.ndarray
"""An object array of Python ints, time first (``[T, B, ...]``), as the docs lay values out."""


# ----------------------------------------------------------------------------- the reference
def sat(x: int, bits: int) -> int:
    """``sat_M``: clamp to ``[-2^(M-1), 2^(M-1) - 1]`` (docs section 1, notation)."""
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return min(max(x, lo), hi)


def zeros(shape: tuple[int, ...]) -> Value:
    out = np.empty(shape, dtype=object)
    for index in itertools.product(*map(range, shape)):
        out[index] = 0
    return out


def lif_over_time(currents: list[int], theta: int, cfg: NumericsConfig) -> list[int]:
    """Section 5 for one neuron: ``h = v + floor((x - v) / 2^k)``, fire on ``h >= theta``, reset to 0."""
    v, spikes = 0, []
    for x in currents:
        h = v + (x - v) // (2**cfg.leak_shift)
        spikes.append(1 if h >= theta else 0)
        v = 0 if h >= theta else h
    return spikes


def lif_layer(current: Value, thetas: Callable[[tuple[int, ...]], int], cfg: NumericsConfig) -> Value:
    """Run the LIF over time for every neuron ``current[:, index]``; ``thetas(index)`` its threshold."""
    spikes = zeros(current.shape)
    t = current.shape[0]
    for index in itertools.product(*map(range, current.shape[1:])):
        trace = lif_over_time([current[(s, *index)] for s in range(t)], thetas(index), cfg)
        for s in range(t):
            spikes[(s, *index)] = trace[s]
    return spikes


def ref_conv(op: Op, x: Value, cfg: NumericsConfig, trace: dict[str, Value]) -> Value:
    w, bias, theta = (op.tensors[k].tolist() for k in ("weight", "bias", "threshold"))
    stride, pad = op.params["stride"], op.params["padding"]
    t, b, c, h, wd = x.shape
    o, k = len(w), len(w[0][0])
    oh, ow = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
    current = zeros((t, b, o, oh, ow))
    for s, n, oc, y, xx in itertools.product(range(t), range(b), range(o), range(oh), range(ow)):
        acc = 0
        for ic, dy, dx in itertools.product(range(c), range(k), range(k)):
            iy, ix = y * stride + dy - pad, xx * stride + dx - pad
            if 0 <= iy < h and 0 <= ix < wd:  # zero padding
                acc += x[s, n, ic, iy, ix] * w[oc][ic][dy][dx]
        current[s, n, oc, y, xx] = sat(acc * 2**cfg.frac_bits + bias[oc], cfg.membrane_bits)
    trace[op.name + ".current"] = current
    return lif_layer(current, lambda i: theta[i[1]], cfg)


def ref_linear(op: Op, x: Value, cfg: NumericsConfig, trace: dict[str, Value]) -> Value:
    w, bias, theta = (op.tensors[k].tolist() for k in ("weight", "bias", "threshold"))
    t, b, n, i = x.shape
    current = zeros((t, b, n, len(w)))
    for s, bi, ni, oc in itertools.product(range(t), range(b), range(n), range(len(w))):
        acc = sum(x[s, bi, ni, j] * w[oc][j] for j in range(i))
        current[s, bi, ni, oc] = sat(acc * 2**cfg.frac_bits + bias[oc], cfg.membrane_bits)
    trace[op.name + ".current"] = current
    return lif_layer(current, lambda idx: theta[idx[2]], cfg)


def ref_maxpool(op: Op, x: Value, cfg: NumericsConfig, trace: dict[str, Value]) -> Value:
    kernel, stride, pad = op.params["kernel"], op.params["stride"], op.params["padding"]
    t, b, c, h, w = x.shape
    oh, ow = (h + 2 * pad - kernel) // stride + 1, (w + 2 * pad - kernel) // stride + 1
    out = zeros((t, b, c, oh, ow))
    for s, bi, ci, y, xx in itertools.product(range(t), range(b), range(c), range(oh), range(ow)):
        best = 0  # a padded position holds 0
        for dy, dx in itertools.product(range(kernel), range(kernel)):
            iy, ix = y * stride + dy - pad, xx * stride + dx - pad
            if 0 <= iy < h and 0 <= ix < w:
                best = max(best, x[s, bi, ci, iy, ix])
        out[s, bi, ci, y, xx] = best
    return out


def ref_tokens(op: Op, x: Value, cfg: NumericsConfig, trace: dict[str, Value]) -> Value:
    t, b, c, h, w = x.shape
    out = zeros((t, b, h * w, c))
    for s, bi, n, ci in itertools.product(range(t), range(b), range(h * w), range(c)):
        out[s, bi, n, ci] = x[s, bi, ci, n // w, n % w]  # token n = h W' + w
    return out


def group_members(grouping: str, s: int, n: int, t: int, tokens: int) -> list[tuple[int, int]]:
    """The ``(step, token)`` pairs in the group of token ``n`` at step ``s`` (docs section 7)."""
    if grouping == "joint":
        return [(tj, nj) for tj in range(t) for nj in range(tokens)]
    if grouping == "temporal":
        return [(tj, n) for tj in range(t)]
    assert grouping == "spatial"
    return [(s, nj) for nj in range(tokens)]


def ref_attention(
    op: Op, q: Value, k: Value, v: Value, cfg: NumericsConfig, trace: dict[str, Value]
) -> Value:
    heads, grouping = op.params["heads"], op.params["grouping"]
    t, b, n, d = q.shape
    dh = d // heads
    current = zeros(q.shape)
    for s, bi, ni, c in itertools.product(range(t), range(b), range(n), range(d)):
        head = c // dh  # channel c = head * d + j
        total = 0
        for tj, nj in group_members(grouping, s, ni, t, n):
            a = sum(q[s, bi, ni, j] * k[tj, bi, nj, j] for j in range(head * dh, (head + 1) * dh))
            total += a * v[tj, bi, nj, c]
        current[s, bi, ni, c] = sat(total * 2**cfg.frac_bits, cfg.membrane_bits)
    trace[op.name + ".current"] = current
    return lif_layer(current, lambda idx: op.params["threshold"], cfg)


def ref_add(op: Op, a: Value, c: Value, cfg: NumericsConfig, trace: dict[str, Value]) -> Value:
    out = zeros(a.shape)
    for index in itertools.product(*map(range, a.shape)):
        out[index] = a[index] + c[index]
    return out


def ref_head(op: Op, x: Value, cfg: NumericsConfig, trace: dict[str, Value]) -> Value:
    w, bias = op.tensors["weight"].tolist(), op.tensors["bias"].tolist()
    t, b, n, d = x.shape
    pooled = zeros((b, d))
    for bi, c in itertools.product(range(b), range(d)):
        pooled[bi, c] = sum(x[s, bi, ni, c] for s in range(t) for ni in range(n))  # P = sum over t, n
    trace[op.name + ".pooled"] = pooled
    logits = zeros((b, len(w)))
    for bi, j in itertools.product(range(b), range(len(w))):
        acc = sum(w[j][c] * pooled[bi, c] for c in range(d))
        logits[bi, j] = acc * 2**cfg.frac_bits + bias[j]  # no saturation
    return logits


REFERENCE: dict[str, Callable[..., Value]] = {
    "conv": ref_conv,
    "linear": ref_linear,
    "maxpool": ref_maxpool,
    "tokens": ref_tokens,
    "attention": ref_attention,
    "add": ref_add,
    "head": ref_head,
}


def ref_input(model: IntModel, x: np.ndarray) -> Value:
    """``[B, T, C, H, W]`` events or ``[B, C, H, W]`` static (repeated over T) -> ``[T, B, C, H, W]``."""
    data = x.tolist()
    b, t = len(data), model.timesteps
    out = zeros((t, b, *model.input_shape))
    for s, bi, *rest in itertools.product(range(t), range(b), *map(range, model.input_shape)):
        c, y, xx = rest
        out[s, bi, c, y, xx] = data[bi][c][y][xx] if x.ndim == 4 else data[bi][s][c][y][xx]
    return out


def ref_run(model: IntModel, x: np.ndarray) -> tuple[Value, dict[str, Value]]:
    """Logits and the trace (every op's output, LIF currents, the head's sum-pool)."""
    values: dict[str, Value] = {"input": ref_input(model, x)}
    trace: dict[str, Value] = {}
    for op in model.ops:
        out = REFERENCE[op.kind](op, *(values[name] for name in op.inputs), model.numerics, trace)
        values[op.name] = trace[op.name] = out
    return values[model.ops[-1].name], trace


def ref_quantize_input(x: Any, input_max: int) -> list[Any]:
    """Section 3: integer counts clipped to ``input_max`` (nested lists of Python ints)."""
    if isinstance(x, list):
        return [ref_quantize_input(v, input_max) for v in x]
    assert x >= 0 and x == int(x)
    return min(int(x), input_max)


# ----------------------------------------------------------------------------- comparisons
def assert_same(name: str, expected: Value, actual: np.ndarray) -> None:
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape}, reference {expected.shape}"
    diff = [i for i in itertools.product(*map(range, expected.shape)) if int(actual[i]) != expected[i]]
    assert not diff, (
        f"{name}: {len(diff)} values differ from the loop reference, first at {diff[0]}: "
        f"integer model {int(actual[diff[0]])}, reference {expected[diff[0]]}"
    )


def check_model(model: IntModel, x: np.ndarray) -> dict[str, Value]:
    logits, trace = model.run(x, trace=True)
    ref_logits, ref_trace = ref_run(model, x)
    assert list(trace) == list(ref_trace)  # the same values, in op order
    for name, expected in ref_trace.items():
        assert_same(name, expected, trace[name])
    assert_same("logits", ref_logits, logits)
    return ref_trace


def fires(trace: dict[str, Value], model: IntModel, kind: str) -> bool:
    """Whether every op of ``kind`` spikes somewhere and stays silent somewhere (a comparison
    between all-zero or all-one layers would prove little)."""
    names = [op.name for op in model.ops if op.kind == kind]
    return all(0 < sum(np.ravel(trace[name])) < trace[name].size for name in names)


# ----------------------------------------------------------------------------- tests
@pytest.mark.parametrize("groupings", [("joint",), ("temporal", "spatial"), ("spatial",)])
def test_every_op_matches_the_loop_reference(groupings: tuple[str, ...]) -> None:
    """All op kinds, every attention grouping, on a random model with firing attention."""
    model = random_int_model(7, groupings=groupings, img=4, firing_attention=True)
    trace = check_model(model, random_input(model, 2, seed=11))
    assert fires(trace, model, "conv") and fires(trace, model, "attention")


def test_strided_and_padded_conv_and_pool_match_the_loop_reference() -> None:
    """A stride-2 conv and a padded 3x3 max-pool (the banded model's tokenizer)."""
    model = banded_int_model(2, img=8, d=8)
    trace = check_model(model, random_input(model, 1, seed=3))
    assert fires(trace, model, "conv")


@pytest.mark.parametrize(
    "numerics",
    [
        NumericsConfig(leak_shift=0),  # h = x: no memory
        NumericsConfig(leak_shift=2, frac_bits=2),
        NumericsConfig(frac_bits=0),
        NumericsConfig(membrane_bits=16),  # currents beyond 16 bits saturate
    ],
    ids=["k0", "k2-f2", "f0", "m16"],
)
def test_numerics_variants_match_the_loop_reference(numerics: NumericsConfig) -> None:
    # Firing attention draws thresholds in [2^F / 2, 2^F): none exist for F = 0.
    model = random_int_model(4, numerics=numerics, img=4, firing_attention=numerics.frac_bits > 0)
    trace = check_model(model, random_input(model, 2, seed=5))
    if numerics.membrane_bits == 16:
        top = 2**15 - 1
        assert any((np.asarray(v) == top).any() for k, v in trace.items() if k.endswith(".current"))


def test_static_input_is_repeated_over_time() -> None:
    model = random_int_model(6, event=False, img=4)
    x = np.random.default_rng(8).integers(0, 256, (2, *model.input_shape))
    check_model(model, x)


def test_quantize_input_matches_the_loop_reference() -> None:
    rng = np.random.default_rng(9)
    counts = rng.integers(0, 20, (2, 3, 2, 4, 4))
    for input_max in (7, 15, 255):
        got = quantize_input(counts, input_max=input_max)
        assert got.dtype == np.int64
        assert got.tolist() == ref_quantize_input(counts.tolist(), input_max)
        assert quantize_input(counts.astype(np.float32), input_max=input_max).tolist() == got.tolist()
    for bad in (counts - 1, counts + 0.5):
        with pytest.raises(ValueError):
            quantize_input(bad, input_max=255)
    with pytest.raises(ValueError, match="input_max"):
        quantize_input(counts, input_max=7, strict=True)
