# amaranth: UnusedElaboratable=no
"""cocotb testbench of the synapse PE array (:class:`hw.synapse_pe.SynapseArray`).

A dot product of ``I`` input features with ``L`` weight rows over ``T`` time steps
is streamed as one beat per (feature, bit plane); its output beat carries the
``L x T`` currents, compared with :func:`golden.numerics.synaptic_current` of
:func:`golden.numerics.linear_accumulate`. A "vector" is one input beat. Within the
port contract the testbench also varies what the PE must ignore or must not depend
on: the bias of non-final beats is random, and the bit-plane beats of a dot product
come in random order. The tests:

* ``random_vectors``: random fan-in, bit planes (1 for spike layers up to
  ``input_bits``), spike density, weights and biases, under random idle and
  back-pressure; :data:`sim.bench.VECTORS_ENV` beats.
* ``edge_vectors``: all-zero and all-one inputs, extreme weights and biases,
  fan-in 1, the largest provably exact fan-in with all-maximum terms (positive and
  negative saturation of the current).
* ``overflow_flag``: one term past :meth:`SynapseArrayParams.max_fan_in` raises the
  sticky ``overflow`` output; it stays low for every in-bound test.
* ``exported_vectors``: a linear layer of the exported model (``SIM_EXPORT_VECTORS``).
* ``throughput``: spike dot products back to back at one beat per cycle,
  ``params.cycles(fan_in, outputs=n)`` cycles in total (``L x T`` synaptic ops/cycle).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import cocotb
import numpy as np
from cocotb.handle import SimHandleBase

from golden import numerics
from hw.params import SynapseArrayParams
from hw.synapse_pe import SynapseArray
from sim.bench import (
    EXPORT_VECTORS_ENV,
    StreamBench,
    assert_cycles,
    budget_cycles,
    load_params,
    stimulus_rng,
    vector_budget,
)


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


class SynapseBench(StreamBench):
    """Streams dot products into the synapse array and checks every current."""

    def __init__(self, dut: SimHandleBase) -> None:
        self.params = load_params(SynapseArrayParams)
        super().__init__(dut, component=SynapseArray(self.params), inputs=["inp"], outputs=["out"])
        self.has_plane = "plane" in self.codecs["inp"].shape.members

    def reference(self, dot: DotProduct) -> np.ndarray:
        """Expected currents ``[T, L]``."""
        p = self.params
        acc = numerics.linear_accumulate(dot.values.T, dot.weights)
        return numerics.synaptic_current(acc, dot.bias, frac_bits=p.frac_bits, membrane_bits=p.membrane_bits)

    def payloads(self, dot: DotProduct, rng: np.random.Generator, *, shuffle: bool) -> list[dict]:
        """Beats of ``dot``: one per (feature, plane); only the final one carries ``last`` and the bias."""
        p = self.params
        planes = numerics.bit_planes(dot.values, dot.planes)  # [planes, I, T]
        order = [(i, b) for i in range(dot.values.shape[0]) for b in range(dot.planes)]
        if shuffle:
            order = [order[k] for k in rng.permutation(len(order))]
        lo, hi = numerics.signed_range(p.bias_width)
        beats = []
        for n, (feature, plane) in enumerate(order):
            last = n == len(order) - 1
            beat = {
                "spikes": int(sum(int(s) << t for t, s in enumerate(planes[plane, feature]))),
                "weight": dot.weights[:, feature],
                # Not the final beat: the PE must ignore this bias, so make it noise.
                "bias": dot.bias if last else rng.integers(lo, hi, size=p.lanes, endpoint=True),
                "last": int(last),
            }
            if self.has_plane:
                beat["plane"] = plane
            elif plane:
                raise ValueError("a spike-only synapse array takes single-plane inputs")
            beats.append(beat)
        return beats

    async def check(self, dots: list[DotProduct], rng: np.random.Generator, *, valid_prob: float = 1.0,
                    ready_prob: float = 1.0, shuffle: bool = True) -> None:
        """Stream ``dots`` and compare each output beat with the reference."""
        p = self.params
        start = len(self.sinks["out"].words)
        beats = [beat for dot in dots for beat in self.payloads(dot, rng, shuffle=shuffle)]
        self.set_traffic(valid_prob=valid_prob, ready_prob=ready_prob)
        self.send("inp", beats)
        budget = budget_cycles(len(beats), valid_prob=valid_prob, ready_prob=ready_prob, latency=p.latency)
        await self.sinks["out"].wait_for(start + len(dots), max_cycles=budget)
        received = self.received("out", start)
        if len(received) != len(dots):
            raise AssertionError(f"{len(received)} output beats for {len(dots)} dot products")
        for n, (dot, word) in enumerate(zip(dots, received, strict=True)):
            got = np.array(word["current"], dtype=np.int64).T  # [L][T] -> [T, L]
            expected = self.reference(dot)
            if not np.array_equal(got, expected):
                t, lane = np.argwhere(got != expected)[0]
                raise AssertionError(
                    f"dot product {n} (fan-in {dot.values.shape[0]}, {dot.planes} plane(s)) differs from "
                    f"golden.numerics ({p}): step {t}, lane {lane}: expected {expected[t, lane]}, got "
                    f"{got[t, lane]}; values[:, {t}] = {dot.values[:, t].tolist()}, weights[{lane}] = "
                    f"{dot.weights[lane].tolist()}, bias {dot.bias[lane]}")

    def overflow(self) -> int:
        return int(self.dut.overflow.value)


def _plane_choices(p: SynapseArrayParams) -> list[int]:
    return [1] if p.input_bits == 1 else sorted({1, 2, p.input_bits // 2, p.input_bits})


def random_dot(p: SynapseArrayParams, rng: np.random.Generator, *, planes: int | None = None) -> DotProduct:
    """A random in-bound dot product: fan-in, planes, density, weights and bias drawn per call."""
    if planes is None:
        choices = _plane_choices(p)
        planes = int(rng.choice(choices, p=None if len(choices) == 1 else
                                [0.5] + [0.5 / (len(choices) - 1)] * (len(choices) - 1)))
    value_max = (1 << planes) - 1
    # Half the provable bound leaves room for the occasional -2**(b-1) weight.
    bound = max(1, p.max_fan_in(value_max) // 2)
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
    bias = np.where(rng.random(p.lanes) < 0.2, rng.integers(lo, hi, size=p.lanes, endpoint=True),
                    np.clip(typical, lo, hi))
    return DotProduct(values, weights, bias, planes)


def dots_for_budget(p: SynapseArrayParams, rng: np.random.Generator, beats: int) -> list[DotProduct]:
    """Random dot products until their beats reach ``beats``."""
    dots: list[DotProduct] = []
    total = 0
    while total < beats:
        dots.append(random_dot(p, rng))
        total += dots[-1].beats
    return dots


def edge_dots(p: SynapseArrayParams, rng: np.random.Generator) -> list[DotProduct]:
    """All-zero / all-one inputs, weight and bias extremes, fan-in 1 and the largest exact fan-in."""
    wmax, steps, lanes = p.weight_max, p.timesteps, p.lanes
    lo, hi = numerics.signed_range(p.bias_width)
    top_planes = p.input_bits
    value_max = (1 << top_planes) - 1
    dots = []
    for bias in (np.zeros(lanes), np.full(lanes, lo), np.full(lanes, hi), rng.integers(lo, hi, lanes)):
        bias = bias.astype(np.int64)
        fan_in = 5
        weights = rng.integers(-wmax, wmax, size=(lanes, fan_in), endpoint=True)
        dots.append(DotProduct(np.zeros((fan_in, steps), dtype=np.int64), weights, bias, 1))   # all zero
        dots.append(DotProduct(np.ones((fan_in, steps), dtype=np.int64), weights, bias, 1))    # all one
        for w in (wmax, -wmax, -wmax - 1):
            dots.append(DotProduct(np.ones((1, steps), dtype=np.int64), np.full((lanes, 1), w), bias, 1))
    alternating = (np.arange(steps)[None, :] + np.arange(7)[:, None]) % 2
    dots.append(DotProduct(alternating, np.full((lanes, 7), wmax), np.zeros(lanes, dtype=np.int64), 1))
    # The largest fan-in the accumulator provably holds, every term at +-wmax * value_max:
    # exact, and far beyond the current range, so the output saturates both ways.
    fan_in = p.max_fan_in(value_max)
    full = np.full((fan_in, steps), value_max, dtype=np.int64)
    zero_bias = np.zeros(lanes, dtype=np.int64)
    for w in (wmax, -wmax):
        dots.append(DotProduct(full, np.full((lanes, fan_in), w), zero_bias, top_planes))
    return dots


def exported_dots(p: SynapseArrayParams, path: str) -> list[DotProduct]:
    """Dot products of the exported layers; output position ``n`` takes weight tile ``n mod tiles``."""
    dots = []
    with np.load(path) as data:
        for j, layer in enumerate(data["layers"]):
            values, weights, bias = (data[f"{key}.{j}"].astype(np.int64)
                                     for key in ("values", "weights", "bias"))
            if values.ndim != 3 or values.shape[2] != p.timesteps or weights.shape[1] != values.shape[1]:
                raise ValueError(f"{path}: layer {layer}: expected values [N, I, T={p.timesteps}] and "
                                 f"weights [O, I], got {values.shape} and {weights.shape}")
            planes = max(1, int(values.max()).bit_length())
            if planes > p.input_bits:
                raise ValueError(f"{path}: layer {layer} needs {planes} bit planes, the array takes "
                                 f"{p.input_bits}")
            tiles = -(-weights.shape[0] // p.lanes)
            for n, sample in enumerate(values):
                rows = (np.arange(p.lanes) + (n % tiles) * p.lanes) % weights.shape[0]
                dots.append(DotProduct(sample, weights[rows], bias[rows], planes))
    return dots


@cocotb.test()
async def random_vectors(dut: SimHandleBase) -> None:
    tb = SynapseBench(dut)
    await tb.reset()
    rng = stimulus_rng()
    budget = vector_budget(2000)
    total = 0
    parts = [budget // 3, budget // 3, budget - 2 * (budget // 3)]
    for part, (valid_prob, ready_prob) in zip(parts, ((1.0, 1.0), (0.6, 1.0), (0.7, 0.4)), strict=True):
        dots = dots_for_budget(tb.params, rng, part)
        if not dots:
            continue
        await tb.check(dots, rng, valid_prob=valid_prob, ready_prob=ready_prob)
        total += sum(d.beats for d in dots)
    await tb.expect_quiet(8)
    assert tb.overflow() == 0, "overflow raised by in-bound dot products"
    dut._log.info("random_vectors: %d beats in %d dot products match golden.numerics",
                  total, len(tb.sinks["out"].words))


@cocotb.test()
async def edge_vectors(dut: SimHandleBase) -> None:
    tb = SynapseBench(dut)
    await tb.reset()
    rng = stimulus_rng()
    dots = edge_dots(tb.params, rng)
    await tb.check(dots, rng, valid_prob=0.8, ready_prob=0.7)
    await tb.expect_quiet(8)
    assert tb.overflow() == 0, "overflow raised at the provable fan-in bound"
    dut._log.info("edge_vectors: %d dot products (%d beats) match", len(dots), sum(d.beats for d in dots))


@cocotb.test()
async def overflow_flag(dut: SimHandleBase) -> None:
    tb = SynapseBench(dut)
    await tb.reset()
    p = tb.params
    value_max = (1 << p.input_bits) - 1
    fan_in = p.max_fan_in(value_max) + 1
    dot = DotProduct(values=np.full((fan_in, p.timesteps), value_max, dtype=np.int64),
                     weights=np.full((p.lanes, fan_in), p.weight_max),
                     bias=np.zeros(p.lanes, dtype=np.int64), planes=p.input_bits)
    tb.send("inp", tb.payloads(dot, stimulus_rng(), shuffle=False))
    await tb.sinks["out"].wait_for(1, max_cycles=budget_cycles(dot.beats, valid_prob=1, ready_prob=1,
                                                                latency=p.latency))
    await tb.check_sticky("overflow", cause=f"fan-in {fan_in} > max_fan_in({value_max})")


@cocotb.test(skip=not os.environ.get(EXPORT_VECTORS_ENV))
async def exported_vectors(dut: SimHandleBase) -> None:
    tb = SynapseBench(dut)
    await tb.reset()
    rng = stimulus_rng()
    dots = exported_dots(tb.params, os.environ[EXPORT_VECTORS_ENV])
    await tb.check(dots, rng, valid_prob=0.9, ready_prob=0.9, shuffle=False)
    assert tb.overflow() == 0
    dut._log.info("exported_vectors: %d dot products from %s match", len(dots),
                  os.environ[EXPORT_VECTORS_ENV])


@cocotb.test()
async def throughput(dut: SimHandleBase) -> None:
    tb = SynapseBench(dut)
    await tb.reset()
    p = tb.params
    rng = stimulus_rng()
    outputs, fan_in = 8, 16
    dots = []
    for _ in range(outputs):
        dot = random_dot(p, rng, planes=1)
        values = rng.integers(0, 1, size=(fan_in, p.timesteps), endpoint=True)
        weights = rng.integers(-p.weight_max, p.weight_max, size=(p.lanes, fan_in), endpoint=True)
        dots.append(DotProduct(values, weights, dot.bias, 1))
    await tb.check(dots, rng, shuffle=False)
    expected = p.cycles(fan_in, planes=1, outputs=outputs)
    measured = assert_cycles(tb.sources["inp"].accepted, tb.sinks["out"].cycles, latency=p.latency,
                             expected=expected, every_cycle=True)
    ops = outputs * fan_in * p.lanes * p.timesteps
    dut._log.info("throughput: %d synaptic ops in %d cycles (params.cycles %d) = %.2f ops/cycle, "
                  "peak L x T = %d", ops, measured, expected, ops / (measured - p.latency),
                  p.synaptic_ops_per_cycle)
