"""Property tests of every integer op in contract/numerics.py against plain-Python loop references.

Each reference below is written from docs/numerics.md with Python integers and explicit
loops (no numpy arithmetic), so a vectorization, broadcasting or shift-semantics bug in the
numpy implementation cannot hide in both.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from contract import numerics as nm
from contract.checks import check_int
from contract.intmodel import GROUPINGS, group_tokens, ungroup_tokens

settings.register_profile(
    "numerics", deadline=None, max_examples=80, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("numerics")


# ----------------------------------------------------------------------------- references
def ref_sat(x: int, bits: int) -> int:
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return lo if x < lo else hi if x > hi else x


def ref_lif(xs: list[int], theta: int, *, k: int, bits: int) -> tuple[list[int], list[int]]:
    """One neuron over time; ``//`` is floor division, as the arithmetic shift must be."""
    v, spikes, mem = 0, [], []
    for x in xs:
        x = ref_sat(x, bits)
        h = v + (x - v) // (2**k)
        s = 1 if h >= theta else 0
        v = 0 if s else h
        spikes.append(s)
        mem.append(v)
    return spikes, mem


def ref_linear(s: np.ndarray, w: np.ndarray) -> list[list[int]]:
    rows, (o, i) = s.reshape(-1, s.shape[-1]).tolist(), w.shape
    wl = w.tolist()
    return [[sum(row[j] * wl[c][j] for j in range(i)) for c in range(o)] for row in rows]


def ref_conv(s: np.ndarray, w: np.ndarray, stride: int, pad: int) -> np.ndarray:
    n, c, h, wd = s.shape
    o, _, kh, kw = w.shape
    oh, ow = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    sl, wl = s.tolist(), w.tolist()
    out = np.zeros((n, o, oh, ow), dtype=object)
    for b, oc, y, x in itertools.product(range(n), range(o), range(oh), range(ow)):
        acc = 0
        for ic, dy, dx in itertools.product(range(c), range(kh), range(kw)):
            iy, ix = y * stride + dy - pad, x * stride + dx - pad
            if 0 <= iy < h and 0 <= ix < wd:
                acc += sl[b][ic][iy][ix] * wl[oc][ic][dy][dx]
        out[b, oc, y, x] = acc
    return out


def ref_attention(q: list[list[int]], k: list[list[int]], v: list[list[int]]) -> list[list[int]]:
    g, d = len(q), len(q[0])
    a = [[sum(q[i][j] * k[m][j] for j in range(d)) for m in range(g)] for i in range(g)]
    return [[sum(a[i][m] * v[m][c] for m in range(g)) for c in range(d)] for i in range(g)]


def ref_maxpool(s: list[list[int]], kernel: int, stride: int, pad: int) -> list[list[int]]:
    h, w = len(s), len(s[0])
    oh, ow = (h + 2 * pad - kernel) // stride + 1, (w + 2 * pad - kernel) // stride + 1
    out = []
    for y in range(oh):
        row = []
        for x in range(ow):
            best = 0  # zero padding: a padded position contributes 0
            for dy, dx in itertools.product(range(kernel), range(kernel)):
                iy, ix = y * stride + dy - pad, x * stride + dx - pad
                if 0 <= iy < h and 0 <= ix < w:
                    best = max(best, s[iy][ix])
            row.append(best)
        out.append(row)
    return out


def as_obj(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.int64).astype(object)


# ----------------------------------------------------------------------------- strategies
spikes_st = st.sampled_from(["random", "zeros", "ones"])


def spike_array(draw: st.DrawFn, shape: tuple[int, ...], mode: str) -> np.ndarray:
    if mode == "zeros":
        return np.zeros(shape, np.int64)
    if mode == "ones":
        return np.ones(shape, np.int64)
    return draw(hnp.arrays(np.int64, shape, elements=st.integers(0, 1)))


weights_st = st.integers(-127, 127)


# ----------------------------------------------------------------------------- config
@pytest.mark.parametrize(
    "field,value,exc",
    [
        ("weight_bits", 1, ValueError),
        ("frac_bits", -1, ValueError),
        ("membrane_bits", 64, ValueError),
        ("leak_shift", 1.0, TypeError),
        ("input_bits", True, TypeError),
        ("input_bits", 0, ValueError),
    ],
)
def test_config_rejects_bad_widths(field: str, value: object, exc: type) -> None:
    with pytest.raises(exc, match=field):
        nm.NumericsConfig(**{field: value})


def test_check_int_has_one_message_shape() -> None:
    assert check_int("Owner", "field", np.int64(3), minimum=0, maximum=3) == 3
    with pytest.raises(TypeError, match=r"^Owner\.field must be an integer, not 2\.0$"):
        check_int("Owner", "field", 2.0, minimum=0)
    with pytest.raises(TypeError, match=r"^Owner\.field must be an integer, not True$"):
        check_int("Owner", "field", True, minimum=0)
    with pytest.raises(TypeError, match=r"^Owner\.field must be an integer, not "):
        check_int("Owner", "field", np.int64(3), minimum=0, numpy=False)
    with pytest.raises(ValueError, match=r"^Owner\.field must be an integer in \[1, 4\], not 5$"):
        check_int("Owner", "field", 5, minimum=1, maximum=4)
    with pytest.raises(KeyError, match=r"Owner\.field must be an integer >= 1, not 0"):
        check_int("Owner", "field", 0, minimum=1, error=KeyError)
    with pytest.raises(
        ValueError, match=r"^NumericsConfig\.frac_bits must be an integer in \[0, 16\], not -1$"
    ):
        nm.NumericsConfig(frac_bits=-1)


def test_config_derived_ranges() -> None:
    cfg = nm.NumericsConfig()
    assert (cfg.weight_max, cfg.membrane_min, cfg.membrane_max, cfg.input_max) == (
        127,
        -(2**23),
        2**23 - 1,
        255,
    )
    assert nm.NumericsConfig(**cfg.to_dict()) == cfg


# ----------------------------------------------------------------------------- saturate, bit planes
@given(
    x=hnp.arrays(np.int64, st.integers(0, 40), elements=st.integers(-(2**40), 2**40)), bits=st.integers(2, 40)
)
def test_saturate_matches_reference(x: np.ndarray, bits: int) -> None:
    assert nm.saturate(x, bits).tolist() == [ref_sat(int(v), bits) for v in x]


def test_saturate_edges_and_dtype_check() -> None:
    assert nm.saturate(np.array([-129, -128, 127, 128]), 8).tolist() == [-128, -128, 127, 127]
    with pytest.raises(TypeError, match="integer array"):
        nm.saturate(np.array([0.5]), 8)


@given(bits=st.integers(1, 12), data=st.data())
def test_bit_planes_reconstruct(bits: int, data: st.DataObject) -> None:
    x = data.draw(hnp.arrays(np.int64, (3, 4), elements=st.integers(0, 2**bits - 1)))
    planes = nm.bit_planes(x, bits)
    assert planes.shape == (bits, 3, 4)
    for b in range(bits):
        assert planes[b].tolist() == [[(int(v) >> b) & 1 for v in row] for row in x.tolist()]
    assert (sum(int(2**b) * planes[b] for b in range(bits)) == x).all()


@pytest.mark.parametrize("value", [-1, 256])
def test_bit_planes_reject_out_of_range(value: int) -> None:
    with pytest.raises(ValueError, match="8 bit planes"):
        nm.bit_planes(np.array([0, value]), 8)


# ----------------------------------------------------------------------------- LIF
@st.composite
def lif_case(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, int, int]:
    bits = draw(st.integers(4, 24))
    k = draw(st.integers(0, 4))
    t = draw(st.integers(1, 12))
    n = draw(st.integers(1, 6))
    span = 2 ** (bits + 1)  # wider than the membrane: exercises saturation
    x = draw(hnp.arrays(np.int64, (t, n), elements=st.integers(-span, span)))
    theta = draw(hnp.arrays(np.int64, (n,), elements=st.integers(1, 2 ** (bits - 1) - 1)))
    return x, theta, k, bits


@given(case=lif_case())
def test_lif_trace_matches_reference(case: tuple[np.ndarray, np.ndarray, int, int]) -> None:
    x, theta, k, bits = case
    spikes, mem = nm.lif_trace(x, theta, leak_shift=k, membrane_bits=bits)
    for j in range(x.shape[1]):
        rs, rm = ref_lif([int(v) for v in x[:, j]], int(theta[j]), k=k, bits=bits)
        assert spikes[:, j].tolist() == rs
        assert mem[:, j].tolist() == rm
    # The membrane never leaves the M-bit range (docs/numerics.md section 5).
    lo, hi = nm.signed_range(bits)
    assert mem.min() >= lo and mem.max() <= hi
    assert (nm.lif(x, theta, leak_shift=k, membrane_bits=bits) == spikes).all()


def test_lif_fires_on_threshold_equality() -> None:
    # k = 1: h = 0 + (8 - 0) >> 1 = 4 == theta -> spike, reset; then 4 again -> spike.
    spikes, mem = nm.lif_trace(np.array([[8], [8], [7]]), 4, leak_shift=1, membrane_bits=16)
    assert spikes[:, 0].tolist() == [1, 1, 0]
    assert mem[:, 0].tolist() == [0, 0, 3]


def test_lif_negative_current_floors_toward_minus_infinity() -> None:
    # (x - v) >> 1 with x - v = -3 is -2 (floor), not -1 (truncation).
    spikes, mem = nm.lif_trace(np.array([[-3], [0], [1]]), 5, leak_shift=1, membrane_bits=16)
    assert mem[:, 0].tolist() == [-2, -1, 0]
    assert spikes.sum() == 0


def test_lif_saturates_the_current_first() -> None:
    big = 2**30
    spikes, mem = nm.lif_trace(np.array([[-big], [-big]]), 1, leak_shift=1, membrane_bits=8)
    # sat(-2^30) = -128 -> h = -64, then -64 + (-128 + 64) >> 1 = -96
    assert mem[:, 0].tolist() == [-64, -96]


@given(case=lif_case(), data=st.data())
def test_lif_step_matches_one_step_of_trace(
    case: tuple[np.ndarray, np.ndarray, int, int], data: st.DataObject
) -> None:
    x, theta, k, bits = case
    lo, hi = nm.signed_range(bits)
    v = data.draw(hnp.arrays(np.int64, theta.shape, elements=st.integers(lo, hi)))
    xs = nm.saturate(x[0], bits)
    s, v_next = nm.lif_step(v, xs, theta, leak_shift=k)
    for j in range(theta.size):
        h = int(v[j]) + (int(xs[j]) - int(v[j])) // 2**k
        assert s[j] == int(h >= theta[j])
        assert v_next[j] == (0 if h >= theta[j] else h)


@given(t=st.integers(1, 4), k=st.integers(1, 2), data=st.data())
def test_integer_lif_equals_float_lif_when_the_floor_is_exact(t: int, k: int, data: st.DataObject) -> None:
    """With currents that are multiples of 2^(k t) the shift never rounds (docs section 5)."""
    unit = 2 ** (k * t)
    counts = data.draw(hnp.arrays(np.int64, (t, 5), elements=st.integers(-20, 60)))
    theta = data.draw(st.integers(1, 40 * unit))
    x = counts * unit
    spikes = nm.lif(x, theta, leak_shift=k, membrane_bits=32)
    tau = float(2**k)
    v = np.zeros(5)
    for step in range(t):
        h = v + (x[step].astype(np.float64) - v) / tau
        s = h >= theta
        assert spikes[step].tolist() == s.astype(int).tolist()
        v = np.where(s, 0.0, h)


# ----------------------------------------------------------------------------- synapses
@st.composite
def linear_case(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    i, o = draw(st.integers(1, 9)), draw(st.integers(1, 5))
    lead = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    mode = draw(st.sampled_from(["random", "zeros", "ones", "multibit"]))
    if mode == "multibit":
        s = draw(hnp.arrays(np.int64, (*lead, i), elements=st.integers(0, 255)))
    else:
        s = spike_array(draw, (*lead, i), mode)
    return s, draw(hnp.arrays(np.int64, (o, i), elements=weights_st))


@given(case=linear_case())
def test_linear_accumulate_matches_reference(case: tuple[np.ndarray, np.ndarray]) -> None:
    s, w = case
    out = nm.linear_accumulate(s, w)
    assert out.shape == (*s.shape[:-1], w.shape[0])
    assert out.reshape(-1, w.shape[0]).tolist() == ref_linear(s, w)


def test_linear_accumulate_rejects_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="input features"):
        nm.linear_accumulate(np.zeros((2, 3), np.int64), np.zeros((4, 5), np.int64))


@st.composite
def conv_case(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, int, int]:
    kernel = draw(st.integers(1, 3))
    pad = draw(st.integers(0, kernel - 1))
    stride = draw(st.integers(1, 2))
    h, w = draw(st.integers(kernel, 6)), draw(st.integers(kernel, 6))
    c, o, n = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 2))
    mode = draw(st.sampled_from(["random", "zeros", "ones", "multibit"]))
    if mode == "multibit":
        s = draw(hnp.arrays(np.int64, (n, c, h, w), elements=st.integers(0, 255)))
    else:
        s = spike_array(draw, (n, c, h, w), mode)
    return s, draw(hnp.arrays(np.int64, (o, c, kernel, kernel), elements=weights_st)), stride, pad


@given(case=conv_case())
def test_conv2d_accumulate_matches_reference(case: tuple[np.ndarray, np.ndarray, int, int]) -> None:
    s, w, stride, pad = case
    out = nm.conv2d_accumulate(s, w, stride=stride, padding=pad)
    assert (as_obj(out) == ref_conv(s, w, stride, pad)).all()


@given(
    acc=hnp.arrays(np.int64, (3, 4), elements=st.integers(-(2**24), 2**24)),
    bias=hnp.arrays(np.int64, (4,), elements=st.integers(-(2**12), 2**12)),
    frac=st.integers(0, 8),
    bits=st.integers(8, 32),
)
def test_synaptic_current_matches_reference(acc: np.ndarray, bias: np.ndarray, frac: int, bits: int) -> None:
    out = nm.synaptic_current(acc, bias, frac_bits=frac, membrane_bits=bits)
    ref = [[ref_sat(int(a) * 2**frac + int(b), bits) for a, b in zip(row, bias, strict=True)] for row in acc]
    assert out.tolist() == ref


# ----------------------------------------------------------------------------- attention
@st.composite
def attention_case(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    g, d, groups = draw(st.integers(1, 6)), draw(st.integers(1, 5)), draw(st.integers(1, 3))
    shape = (groups, g, d)
    return tuple(spike_array(draw, shape, draw(spikes_st)) for _ in range(3))


@given(case=attention_case(), frac=st.integers(0, 6))
def test_attention_matches_reference(case: tuple[np.ndarray, ...], frac: int) -> None:
    q, k, v = case
    acc = nm.attention_accumulate(q, k, v)
    for gi in range(q.shape[0]):
        ref = ref_attention(q[gi].tolist(), k[gi].tolist(), v[gi].tolist())
        assert acc[gi].tolist() == ref
    # The other association order gives the same integers (the RTL may use either).
    assert (acc == q @ (np.swapaxes(k, -1, -2) @ v)).all()
    g, d = q.shape[-2:]
    assert acc.min() >= 0 and acc.max() <= g * d  # docs section 9
    cur = nm.attention_current(q, k, v, frac_bits=frac, membrane_bits=24)
    assert (cur == acc * 2**frac).all()


def ref_grouped_attention(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, heads: int, grouping: str
) -> np.ndarray:
    """``(Q K^T) V`` per head over the token groups of docs/numerics.md section 7, by loops."""
    t, b, n, d = q.shape
    dh = d // heads
    ql, kl, vl = q.tolist(), k.tolist(), v.tolist()
    out = np.zeros(q.shape, dtype=object)
    for ti, bi, ni, c in itertools.product(range(t), range(b), range(n), range(d)):
        head = c // dh
        if grouping == "joint":
            members = [(tj, nj) for tj in range(t) for nj in range(n)]
        elif grouping == "temporal":
            members = [(tj, ni) for tj in range(t)]
        else:
            members = [(ti, nj) for nj in range(n)]
        total = 0
        for tj, nj in members:
            a = sum(ql[ti][bi][ni][j] * kl[tj][bi][nj][j] for j in range(head * dh, (head + 1) * dh))
            total += a * vl[tj][bi][nj][c]
        out[ti, bi, ni, c] = total
    return out


@given(
    grouping=st.sampled_from(GROUPINGS),
    t=st.integers(1, 3),
    n=st.integers(1, 4),
    heads=st.integers(1, 2),
    dh=st.integers(1, 3),
    mode=spikes_st,
    data=st.data(),
)
def test_grouped_attention_matches_reference(
    grouping: str, t: int, n: int, heads: int, dh: int, mode: str, data: st.DataObject
) -> None:
    shape = (t, 2, n, heads * dh)
    q, k, v = (spike_array(data.draw, shape, mode) for _ in range(3))
    grouped = [group_tokens(z, grouping=grouping, heads=heads) for z in (q, k, v)]
    assert (ungroup_tokens(grouped[0], grouping=grouping, shape=shape) == q).all()
    out = ungroup_tokens(nm.attention_accumulate(*grouped), grouping=grouping, shape=shape)
    assert (as_obj(out) == ref_grouped_attention(q, k, v, heads, grouping)).all()


def test_attention_all_ones_reaches_the_bound_and_saturates() -> None:
    g, d = 5, 4
    ones = np.ones((g, d), np.int64)
    assert (nm.attention_accumulate(ones, ones, ones) == g * d).all()
    cur = nm.attention_current(ones, ones, ones, frac_bits=4, membrane_bits=8)
    assert (cur == 127).all()  # 20 << 4 = 320 saturates at 127 in 8 bits


def test_attention_rejects_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        nm.attention_accumulate(
            np.zeros((2, 3), np.int64), np.zeros((2, 3), np.int64), np.zeros((3, 3), np.int64)
        )


# ----------------------------------------------------------------------------- pooling, residual, head
@st.composite
def pool_case(draw: st.DrawFn) -> tuple[np.ndarray, int, int, int]:
    kernel = draw(st.integers(1, 3))
    pad = draw(st.integers(0, kernel // 2))
    stride = draw(st.integers(1, 3))
    h, w = draw(st.integers(kernel, 7)), draw(st.integers(kernel, 7))
    mode = draw(st.sampled_from(["random", "zeros", "ones", "multibit"]))
    if mode == "multibit":
        s = draw(hnp.arrays(np.int64, (2, 2, h, w), elements=st.integers(0, 9)))
    else:
        s = spike_array(draw, (2, 2, h, w), mode)
    return s, kernel, stride, pad


@given(case=pool_case())
def test_maxpool_matches_reference(case: tuple[np.ndarray, int, int, int]) -> None:
    s, kernel, stride, pad = case
    out = nm.maxpool2d(s, kernel=kernel, stride=stride, padding=pad)
    for i, j in itertools.product(range(2), range(2)):
        assert out[i, j].tolist() == ref_maxpool(s[i, j].tolist(), kernel, stride, pad)
    if s.max(initial=0) <= 1:  # on spikes max-pool is an OR
        assert set(np.unique(out).tolist()) <= {0, 1}


def test_maxpool_rejects_negative_values() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        nm.maxpool2d(np.array([[-1, 0], [0, 0]]), kernel=2, stride=1)


@given(
    a=hnp.arrays(np.int64, (3, 4), elements=st.integers(0, 200)),
    b=hnp.arrays(np.int64, (3, 4), elements=st.integers(0, 1)),
)
def test_residual_add_and_sum_pool(a: np.ndarray, b: np.ndarray) -> None:
    r = nm.residual_add(a, b)
    ref = [[int(x) + int(y) for x, y in zip(ra, rb, strict=True)] for ra, rb in zip(a, b, strict=True)]
    assert r.tolist() == ref
    x = r.reshape(1, 3, 4)
    assert nm.sum_pool(x, axes=(0, 1)).tolist() == [sum(int(r[i, j]) for i in range(3)) for j in range(4)]


@given(
    p=hnp.arrays(np.int64, (2, 5), elements=st.integers(0, 2**12)),
    w=hnp.arrays(np.int64, (3, 5), elements=weights_st),
    b=hnp.arrays(np.int64, (3,), elements=st.integers(-(2**30), 2**30)),
    frac=st.integers(0, 8),
)
def test_head_logits_match_reference(p: np.ndarray, w: np.ndarray, b: np.ndarray, frac: int) -> None:
    ref = [
        [sum(int(p[i, j]) * int(w[c, j]) for j in range(5)) * 2**frac + int(b[c]) for c in range(3)]
        for i in range(2)
    ]
    assert nm.head_logits(p, w, b, frac_bits=frac).tolist() == ref


def test_head_logits_preserve_argmax_under_positive_scale() -> None:
    rng = np.random.default_rng(0)
    p = rng.integers(0, 50, (64, 8))
    w = rng.integers(-127, 128, (10, 8))
    logits = nm.head_logits(p, w, np.zeros(10, np.int64), frac_bits=4)
    real = p.astype(np.float64) @ (w.astype(np.float64) * 0.0137).T
    assert (logits.argmax(1) == real.argmax(1)).all()
    assert math.isclose(float(logits[0, 0]), float(p[0] @ w[0]) * 16)
