"""Stimulus of the PE tests: random and edge-case vectors, and the payloads that carry them.

One generator per PE, pure numpy, shared by the Amaranth-simulator tests
(``tests/test_hw_*.py``) and the cocotb testbenches (``sim/tb_*.py``), so both check
the same kinds of vectors. Every generator draws only from the ``rng`` it is given:
a seed reproduces the vectors. The ``*_payloads`` functions turn vectors into stream
beats as ``{field: value}`` mappings of the port layouts, which
:class:`sim.payload.PayloadCodec` packs for either simulator.

* LIF array: :class:`LIFBeats`, :func:`lif_vectors`, :func:`lif_edge_vectors`,
  :func:`lif_exported_vectors`, :func:`lif_payloads`.
* Synapse array: :class:`DotProduct`, :func:`synapse_dot`, :func:`synapse_vectors`,
  :func:`synapse_edge_vectors`, :func:`synapse_exported_vectors`, :func:`synapse_payloads`.
* Attention PE: :class:`Group`, :func:`attention_group`, :func:`attention_vectors`,
  :func:`attention_grouped`, :func:`attention_edge_vectors`,
  :func:`attention_exported_vectors`, :func:`attention_payloads`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from contract import numerics
from contract.intmodel import group_tokens
from protocol.params import AttentionParams, LIFArrayParams, SynapseArrayParams

__all__ = [
    "DotProduct",
    "Group",
    "LIFBeats",
    "attention_edge_vectors",
    "attention_exported_vectors",
    "attention_group",
    "attention_grouped",
    "attention_payloads",
    "attention_vectors",
    "bit_rows",
    "lif_edge_vectors",
    "lif_exported_vectors",
    "lif_payloads",
    "lif_vectors",
    "spike_bits",
    "synapse_dot",
    "synapse_edge_vectors",
    "synapse_exported_vectors",
    "synapse_payloads",
    "synapse_vectors",
]


def spike_bits(row: np.ndarray) -> int:
    """0/1 spikes ``[n]`` as the integer whose bit ``i`` is ``row[i]`` (a spike-vector field)."""
    return int(sum(int(bit) << i for i, bit in enumerate(row)))


def bit_rows(words: list[int], width: int) -> np.ndarray:
    """Inverse of :func:`spike_bits` for several fields: ``[len(words), width]`` of 0/1."""
    return np.array([[(int(w) >> i) & 1 for i in range(width)] for w in words], dtype=np.int64)


# ---------------------------------------------------------------------------------------- LIF
@dataclass
class LIFBeats:
    """A batch of LIF input beats: ``currents [N, T, L]``, ``thresholds [N, L]``, ``last [N]``."""

    currents: np.ndarray
    thresholds: np.ndarray
    last: np.ndarray

    def __len__(self) -> int:
        return len(self.currents)


def _lif_limits(p: LIFArrayParams) -> tuple[int, int, int, int]:
    lo, hi = numerics.signed_range(p.membrane_bits)
    tlo, thi = numerics.signed_range(p.threshold_bits)
    return lo, hi, tlo, thi


def lif_vectors(p: LIFArrayParams, rng: np.random.Generator, count: int) -> LIFBeats:
    """Constrained-random beats: each lane draws one of several current/threshold regimes."""
    lo, hi, tlo, thi = _lif_limits(p)
    shape = (count, p.timesteps, p.lanes)
    # Thresholds: mostly realistic positive ones (theta = V_th 2**F / alpha), some anywhere
    # in the port's M + 1-bit range, some at the corners.
    typical = rng.integers(1, min(hi, 1 << 12), size=(count, p.lanes), endpoint=True)
    anywhere = rng.integers(tlo, thi, size=(count, p.lanes), endpoint=True)
    corners = rng.choice(np.array([tlo, lo, -1, 0, 1, hi, hi + 1, thi]), size=(count, p.lanes))
    theta_kind = rng.choice(3, size=(count, p.lanes), p=[0.7, 0.2, 0.1])
    thresholds = np.choose(theta_kind, [typical, anywhere, corners])
    # Currents: near the threshold (spikes both ways), full range, corners, constant drive.
    scale = np.maximum(np.abs(thresholds), 1)[:, None, :]
    near = np.clip(np.rint(rng.normal(1.0, 1.5, size=shape) * scale), lo, hi).astype(np.int64)
    full = rng.integers(lo, hi, size=shape, endpoint=True)
    extremes = rng.choice(np.array([lo, lo + 1, -1, 0, 1, hi - 1, hi]), size=shape)
    constant = np.broadcast_to(rng.integers(lo, hi, size=(count, 1, p.lanes), endpoint=True), shape)
    current_kind = rng.choice(4, size=(count, 1, p.lanes), p=[0.5, 0.25, 0.15, 0.1])
    currents = np.choose(np.broadcast_to(current_kind, shape), [near, full, extremes, constant])
    return LIFBeats(
        currents.astype(np.int64), thresholds.astype(np.int64), rng.integers(0, 1, size=count, endpoint=True)
    )


def _free_membrane(p: LIFArrayParams, currents: np.ndarray) -> np.ndarray:
    """``h`` of every step when the neuron never fires (threshold beyond the range): ``[N, T, L]``."""
    never = np.full(currents.shape[::2], _lif_limits(p)[1] + 1)
    _, v = numerics.lif_trace(
        np.moveaxis(currents, 1, 0), never, leak_shift=p.leak_shift, membrane_bits=p.membrane_bits
    )
    return np.moveaxis(v, 0, 1)


def lif_edge_vectors(p: LIFArrayParams, rng: np.random.Generator, *, drives: int = 64) -> LIFBeats:
    """Corner cases, then threshold-equality beats built from ``drives`` random drives.

    Corners: extreme, zero, unit and alternating currents against thresholds at the port
    bounds, the membrane bounds and around zero; exact equality on the first step
    (``5 << leak_shift`` against 5, and one below), on the negative side, and after
    charging.
    """
    lo, hi, tlo, thi = _lif_limits(p)
    steps, lanes, k = p.timesteps, p.lanes, p.leak_shift
    cases: list[tuple[np.ndarray, np.ndarray]] = []

    def add(current: np.ndarray | int, theta: np.ndarray | int) -> None:
        cases.append(
            (
                np.broadcast_to(np.asarray(current, dtype=np.int64), (steps, lanes)).copy(),
                np.broadcast_to(np.asarray(theta, dtype=np.int64), (lanes,)).copy(),
            )
        )

    alternating = np.where(np.arange(steps)[:, None] % 2 == 0, hi, lo)
    for current in (hi, lo, 0, 1, -1, alternating, -alternating - 1):
        for theta in (tlo, lo, -1, 0, 1, hi - 1, hi, hi + 1, thi):
            add(current, theta)
    for current, theta in (
        (5 << k, 5),  # the first step lands exactly on theta
        ((5 << k) - 1, 5),  # one below: fires only after charging
        (-(1 << k), -1),  # equality on the negative side
    ):
        if lo <= current <= hi:
            add(current, theta)
    # Threshold equality: with theta = the largest free-running h, the first spike comes
    # exactly when h == theta; theta + 1 must then stay silent at that step.
    if drives:
        currents = lif_vectors(p, rng, drives).currents
        half = drives // 2
        currents[:half] = np.clip(currents[:half] // 64, lo, hi)  # small drives: h far from the limits
        peak = _free_membrane(p, currents).max(axis=1)
        for n in range(drives):
            add(currents[n], peak[n])
            add(currents[n], peak[n] + 1)
            add(currents[n], peak[n] - 1)
    return LIFBeats(
        np.stack([c for c, _ in cases]),
        np.stack([t for _, t in cases]),
        (np.arange(len(cases)) % 7 == 0).astype(np.int64),
    )


def lif_exported_vectors(p: LIFArrayParams, path: str) -> LIFBeats:
    """Beats from a ``.npz`` of exported-model LIF inputs, regrouped into ``L`` lanes of ``T`` steps."""
    with np.load(path) as data:
        currents, thresholds = data["currents"].astype(np.int64), data["thresholds"].astype(np.int64)
    if currents.ndim != 2 or thresholds.shape != currents.shape[1:]:
        raise ValueError(
            f"{path}: expected currents [T, neurons] and thresholds [neurons], got "
            f"{currents.shape} and {thresholds.shape}"
        )
    lo, hi = numerics.signed_range(p.membrane_bits)
    currents = np.clip(currents, lo, hi)  # the LIF input is the saturated current
    thresholds = p.clamp_threshold(thresholds)
    steps, neurons = currents.shape
    if steps != p.timesteps:
        raise ValueError(f"{path}: exported T = {steps}, the array has T = {p.timesteps}")
    count = -(-neurons // p.lanes)
    pad = count * p.lanes - neurons
    currents = np.pad(currents, ((0, 0), (0, pad)))
    thresholds = np.pad(thresholds, (0, pad), constant_values=1)
    return LIFBeats(
        currents.reshape(steps, count, p.lanes).transpose(1, 0, 2),
        thresholds.reshape(count, p.lanes),
        np.zeros(count, dtype=np.int64),
    )


def lif_payloads(beats: LIFBeats) -> list[dict]:
    """Input-port payloads of ``beats`` (``current`` is lane-major: ``[L][T]``)."""
    return [
        {"current": beats.currents[n].T, "threshold": beats.thresholds[n], "last": int(beats.last[n])}
        for n in range(len(beats))
    ]


# ------------------------------------------------------------------------------------ synapse
@dataclass
class DotProduct:
    """One dot product: ``values [I, T]`` (>= 0), ``weights [L, I]``, ``bias [L]``, ``planes`` per value."""

    values: np.ndarray
    weights: np.ndarray
    bias: np.ndarray
    planes: int

    @property
    def beats(self) -> int:
        return self.values.shape[0] * self.planes


def _plane_choices(p: SynapseArrayParams) -> list[int]:
    return [1] if p.input_bits == 1 else sorted({1, 2, p.input_bits // 2, p.input_bits})


def synapse_dot(
    p: SynapseArrayParams,
    rng: np.random.Generator,
    *,
    planes: int | None = None,
    max_fan_in: int | None = None,
) -> DotProduct:
    """A random in-bound dot product: fan-in (at most ``max_fan_in``), planes, density, weights
    and bias drawn per call."""
    if planes is None:
        choices = _plane_choices(p)
        planes = int(
            rng.choice(
                choices,
                p=None if len(choices) == 1 else [0.5] + [0.5 / (len(choices) - 1)] * (len(choices) - 1),
            )
        )
    value_max = (1 << planes) - 1
    # Half the provable bound leaves room for the occasional -2**(b-1) weight.
    bound = max(1, p.max_fan_in(value_max) // 2)
    if max_fan_in is not None:
        bound = min(bound, max_fan_in)
    # Shorter dot products for more planes keep the beats per result (and outputs checked) up.
    fan_in = int(min(bound, rng.geometric(min(1.0, planes / 16))))
    density = float(rng.choice([0.05, 0.3, 0.7, 1.0]))
    values = rng.integers(0, value_max, size=(fan_in, p.timesteps), endpoint=True)
    values *= rng.random((fan_in, p.timesteps)) < density
    wmax = p.weight_max
    weights = rng.integers(-wmax, wmax, size=(p.lanes, fan_in), endpoint=True)
    corner = rng.random(weights.shape) < 0.05
    weights[corner] = rng.choice([-wmax - 1, -wmax, 0, wmax], size=int(corner.sum()))
    lo, hi = numerics.signed_range(p.bias_width)
    typical = rng.integers(-(1 << (p.frac_bits + 8)), 1 << (p.frac_bits + 8), size=p.lanes, endpoint=True)
    bias = np.where(
        rng.random(p.lanes) < 0.2, rng.integers(lo, hi, size=p.lanes, endpoint=True), np.clip(typical, lo, hi)
    )
    return DotProduct(values, weights, bias, planes)


def synapse_vectors(
    p: SynapseArrayParams, rng: np.random.Generator, beats: int, *, max_fan_in: int | None = None
) -> list[DotProduct]:
    """Random dot products (:func:`synapse_dot`) until their beats reach ``beats``."""
    dots: list[DotProduct] = []
    total = 0
    while total < beats:
        dots.append(synapse_dot(p, rng, max_fan_in=max_fan_in))
        total += dots[-1].beats
    return dots


def synapse_edge_vectors(
    p: SynapseArrayParams, rng: np.random.Generator, *, fan_in_cap: int | None = None
) -> list[DotProduct]:
    """All-zero / all-one inputs, weight and bias extremes, fan-in 1 and the largest exact fan-in
    (at most ``fan_in_cap``, which keeps slow simulators' runs short)."""
    wmax, steps, lanes = p.weight_max, p.timesteps, p.lanes
    lo, hi = numerics.signed_range(p.bias_width)
    top_planes = p.input_bits
    value_max = (1 << top_planes) - 1
    dots = []
    for bias in (np.zeros(lanes), np.full(lanes, lo), np.full(lanes, hi), rng.integers(lo, hi, lanes)):
        bias = bias.astype(np.int64)
        fan_in = 5
        weights = rng.integers(-wmax, wmax, size=(lanes, fan_in), endpoint=True)
        dots.append(DotProduct(np.zeros((fan_in, steps), dtype=np.int64), weights, bias, 1))  # all zero
        dots.append(DotProduct(np.ones((fan_in, steps), dtype=np.int64), weights, bias, 1))  # all one
        for w in (wmax, -wmax, -wmax - 1):
            dots.append(DotProduct(np.ones((1, steps), dtype=np.int64), np.full((lanes, 1), w), bias, 1))
    alternating = (np.arange(steps)[None, :] + np.arange(7)[:, None]) % 2
    dots.append(DotProduct(alternating, np.full((lanes, 7), wmax), np.zeros(lanes, dtype=np.int64), 1))
    # The largest fan-in the accumulator provably holds, every term at +-wmax * value_max:
    # exact, and far beyond the current range, so the output saturates both ways.
    fan_in = p.max_fan_in(value_max)
    if fan_in_cap is not None:
        fan_in = min(fan_in, fan_in_cap)
    full = np.full((fan_in, steps), value_max, dtype=np.int64)
    zero_bias = np.zeros(lanes, dtype=np.int64)
    for w in (wmax, -wmax):
        dots.append(DotProduct(full, np.full((lanes, fan_in), w), zero_bias, top_planes))
    return dots


def synapse_exported_vectors(p: SynapseArrayParams, path: str) -> list[DotProduct]:
    """Dot products of the exported layers; output position ``n`` takes weight tile ``n mod tiles``."""
    dots = []
    with np.load(path) as data:
        for j, layer in enumerate(data["layers"]):
            values, weights, bias = (
                data[f"{key}.{j}"].astype(np.int64) for key in ("values", "weights", "bias")
            )
            if values.ndim != 3 or values.shape[2] != p.timesteps or weights.shape[1] != values.shape[1]:
                raise ValueError(
                    f"{path}: layer {layer}: expected values [N, I, T={p.timesteps}] and "
                    f"weights [O, I], got {values.shape} and {weights.shape}"
                )
            planes = max(1, int(values.max()).bit_length())
            if planes > p.input_bits:
                raise ValueError(
                    f"{path}: layer {layer} needs {planes} bit planes, the array takes {p.input_bits}"
                )
            tiles = -(-weights.shape[0] // p.lanes)
            for n, sample in enumerate(values):
                rows = (np.arange(p.lanes) + (n % tiles) * p.lanes) % weights.shape[0]
                dots.append(DotProduct(sample, weights[rows], bias[rows], planes))
    return dots


def synapse_payloads(
    p: SynapseArrayParams, dot: DotProduct, rng: np.random.Generator, *, shuffle: bool
) -> list[dict]:
    """Beats of ``dot``: one per (feature, plane); only the final one carries ``last`` and the bias.

    Within the port contract the beats also vary what the PE must ignore or must not
    depend on: the bias of the other beats is random, and with ``shuffle`` the
    (feature, plane) beats come in random order.
    """
    planes = numerics.bit_planes(dot.values, dot.planes)  # [planes, I, T]
    order = [(i, b) for i in range(dot.values.shape[0]) for b in range(dot.planes)]
    if shuffle:
        order = [order[k] for k in rng.permutation(len(order))]
    lo, hi = numerics.signed_range(p.bias_width)
    beats = []
    for n, (feature, plane) in enumerate(order):
        last = n == len(order) - 1
        beat = {
            "spikes": spike_bits(planes[plane, feature]),
            "weight": dot.weights[:, feature],
            "bias": dot.bias if last else rng.integers(lo, hi, size=p.lanes, endpoint=True),
            "last": int(last),
        }
        if p.plane_bits:
            beat["plane"] = plane
        elif plane:
            raise ValueError("a spike-only synapse array takes single-plane inputs")
        beats.append(beat)
    return beats


# ---------------------------------------------------------------------------------- attention
@dataclass
class Group:
    """One token group: ``q``, ``k``, ``v`` spikes ``[G, d]``."""

    q: np.ndarray
    k: np.ndarray
    v: np.ndarray

    @property
    def rows(self) -> int:
        return 2 * len(self.k)


def attention_group(p: AttentionParams, rng: np.random.Generator, size: int | None = None) -> Group:
    """A random group: size uniform in ``[1, max_group]`` unless given, one density per matrix."""
    size = int(rng.integers(1, p.max_group, endpoint=True)) if size is None else size
    q, k, v = (rng.random((size, p.head_dim)) < rng.choice([0.05, 0.25, 0.5, 0.9]) for _ in range(3))
    return Group(q.astype(np.int64), k.astype(np.int64), v.astype(np.int64))


def attention_vectors(p: AttentionParams, rng: np.random.Generator, rows: int) -> list[Group]:
    """Random groups (:func:`attention_group`) until their input rows reach ``rows``."""
    groups: list[Group] = []
    while sum(g.rows for g in groups) < rows:
        groups.append(attention_group(p, rng))
    return groups


def _token_shape(p: AttentionParams) -> tuple[int, int]:
    """``(T, N)`` of a token tensor whose joint group (``T * N`` tokens) fits ``max_group``."""
    steps = 1 << (math.isqrt(p.max_group).bit_length() - 1)
    return steps, max(1, p.max_group // steps)


def attention_grouped(
    p: AttentionParams, rng: np.random.Generator, grouping: str, heads: int = 2
) -> list[Group]:
    """Groups of one random token tensor ``[T, 1, N, heads * d]`` under ``grouping``
    (:func:`contract.intmodel.group_tokens`)."""
    steps, tokens = _token_shape(p)
    x = [(rng.random((steps, 1, tokens, heads * p.head_dim)) < 0.3).astype(np.int64) for _ in range(3)]
    q, k, v = (group_tokens(t, grouping=grouping, heads=heads) for t in x)
    size = q.shape[-2]
    q, k, v = (t.reshape(-1, size, p.head_dim) for t in (q, k, v))
    return [Group(q[i], k[i], v[i]) for i in range(len(q))]


def attention_edge_vectors(p: AttentionParams, rng: np.random.Generator) -> list[Group]:
    """All-zero / all-one rows, the smallest and largest group (every spike set: the largest
    sum ``d * G``, saturating a narrow membrane), random and diagonal one-hot rows."""
    d = p.head_dim
    groups = []
    for size in sorted({1, 2, p.max_group}):
        zeros, ones = np.zeros((size, d), dtype=np.int64), np.ones((size, d), dtype=np.int64)
        groups += [
            Group(ones, ones, ones),
            Group(zeros, ones, ones),
            Group(ones, zeros, ones),
            Group(ones, ones, zeros),
            Group(zeros, zeros, zeros),
        ]
        onehot = np.eye(d, dtype=np.int64)[rng.integers(0, d, size=size)]
        groups.append(Group(onehot, onehot, ones))
        diagonal = np.eye(d, dtype=np.int64)[np.arange(size) % d]  # token g matches only itself
        groups.append(Group(diagonal, diagonal, ones))
    return groups


def attention_exported_vectors(path: str) -> list[Group]:
    """Token groups of an exported attention layer."""
    with np.load(path) as data:
        q, k, v = (data[name].astype(np.int64) for name in ("q", "k", "v"))
    if q.shape != k.shape or q.shape != v.shape or q.ndim < 2:
        raise ValueError(
            f"{path}: q, k, v must be equal shapes [..., G, d], got {q.shape}, {k.shape}, {v.shape}"
        )
    size, d = q.shape[-2:]
    q, k, v = (t.reshape(-1, size, d) for t in (q, k, v))
    return [Group(q[i], k[i], v[i]) for i in range(len(q))]


def attention_payloads(groups: list[Group]) -> tuple[list[dict], list[dict]]:
    """``(kv, q)`` port payloads of ``groups``: a group's rows on each stream, ``last`` on its final row."""
    kv: list[dict] = []
    q: list[dict] = []
    for group in groups:
        size = len(group.k)
        kv += [
            {"k": spike_bits(group.k[g]), "v": spike_bits(group.v[g]), "last": int(g == size - 1)}
            for g in range(size)
        ]
        q += [{"q": spike_bits(group.q[g]), "last": int(g == len(group.q) - 1)} for g in range(len(group.q))]
    return kv, q
