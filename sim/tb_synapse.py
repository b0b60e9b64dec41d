# amaranth: UnusedElaboratable=no
"""cocotb testbench of the synapse PE array (:class:`hw.synapse_pe.SynapseArray`).

A dot product of ``I`` input features with ``L`` weight rows over ``T`` time steps
is streamed as one beat per (feature, bit plane); its output beat carries the
``L x T`` currents, compared with :func:`contract.numerics.synaptic_current` of
:func:`contract.numerics.linear_accumulate`. A "vector" is one input beat; the vectors
and their beats come from :mod:`sim.stimulus`, as for the Amaranth-simulator tests.
Within the port contract the beats also vary what the PE must ignore or must not
depend on: the bias of non-final beats is random, and the bit-plane beats of a dot
product come in random order. The tests:

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

import cocotb
import numpy as np
from cocotb.handle import SimHandleBase

from contract import numerics
from hw.synapse_pe import SynapseArray
from protocol.params import SynapseArrayParams
from sim.bench import (
    EXPORT_VECTORS_ENV,
    StreamBench,
    assert_cycles,
    budget_cycles,
    load_params,
    stimulus_rng,
    vector_budget,
)
from sim.stimulus import (
    DotProduct,
    synapse_dot,
    synapse_edge_vectors,
    synapse_exported_vectors,
    synapse_payloads,
    synapse_vectors,
)


class SynapseBench(StreamBench):
    """Streams dot products into the synapse array and checks every current."""

    def __init__(self, dut: SimHandleBase) -> None:
        self.params = load_params(SynapseArrayParams)
        super().__init__(dut, component=SynapseArray(self.params), inputs=["inp"], outputs=["out"])

    def reference(self, dot: DotProduct) -> np.ndarray:
        """Expected currents ``[T, L]``."""
        p = self.params
        acc = numerics.linear_accumulate(dot.values.T, dot.weights)
        return numerics.synaptic_current(acc, dot.bias, frac_bits=p.frac_bits, membrane_bits=p.membrane_bits)

    async def check(
        self,
        dots: list[DotProduct],
        rng: np.random.Generator,
        *,
        valid_prob: float = 1.0,
        ready_prob: float = 1.0,
        shuffle: bool = True,
    ) -> None:
        """Stream ``dots`` and compare each output beat with the reference."""
        p = self.params
        start = len(self.sinks["out"].words)
        beats = [beat for dot in dots for beat in synapse_payloads(p, dot, rng, shuffle=shuffle)]
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
                    f"contract.numerics ({p}): step {t}, lane {lane}: expected {expected[t, lane]}, got "
                    f"{got[t, lane]}; values[:, {t}] = {dot.values[:, t].tolist()}, weights[{lane}] = "
                    f"{dot.weights[lane].tolist()}, bias {dot.bias[lane]}"
                )

    def overflow(self) -> int:
        return int(self.dut.overflow.value)


@cocotb.test()
async def random_vectors(dut: SimHandleBase) -> None:
    tb = SynapseBench(dut)
    await tb.reset()
    rng = stimulus_rng()
    budget = vector_budget(2000)
    total = 0
    parts = [budget // 3, budget // 3, budget - 2 * (budget // 3)]
    for part, (valid_prob, ready_prob) in zip(parts, ((1.0, 1.0), (0.6, 1.0), (0.7, 0.4)), strict=True):
        dots = synapse_vectors(tb.params, rng, part)
        if not dots:
            continue
        await tb.check(dots, rng, valid_prob=valid_prob, ready_prob=ready_prob)
        total += sum(d.beats for d in dots)
    await tb.expect_quiet(8)
    assert tb.overflow() == 0, "overflow raised by in-bound dot products"
    dut._log.info(
        "random_vectors: %d beats in %d dot products match contract.numerics",
        total,
        len(tb.sinks["out"].words),
    )


@cocotb.test()
async def edge_vectors(dut: SimHandleBase) -> None:
    tb = SynapseBench(dut)
    await tb.reset()
    rng = stimulus_rng()
    dots = synapse_edge_vectors(tb.params, rng)
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
    dot = DotProduct(
        values=np.full((fan_in, p.timesteps), value_max, dtype=np.int64),
        weights=np.full((p.lanes, fan_in), p.weight_max),
        bias=np.zeros(p.lanes, dtype=np.int64),
        planes=p.input_bits,
    )
    tb.send("inp", synapse_payloads(p, dot, stimulus_rng(), shuffle=False))
    await tb.sinks["out"].wait_for(
        1, max_cycles=budget_cycles(dot.beats, valid_prob=1, ready_prob=1, latency=p.latency)
    )
    await tb.check_sticky("overflow", cause=f"fan-in {fan_in} > max_fan_in({value_max})")


@cocotb.test(skip=not os.environ.get(EXPORT_VECTORS_ENV))
async def exported_vectors(dut: SimHandleBase) -> None:
    tb = SynapseBench(dut)
    await tb.reset()
    rng = stimulus_rng()
    dots = synapse_exported_vectors(tb.params, os.environ[EXPORT_VECTORS_ENV])
    await tb.check(dots, rng, valid_prob=0.9, ready_prob=0.9, shuffle=False)
    assert tb.overflow() == 0
    dut._log.info(
        "exported_vectors: %d dot products from %s match", len(dots), os.environ[EXPORT_VECTORS_ENV]
    )


@cocotb.test()
async def throughput(dut: SimHandleBase) -> None:
    tb = SynapseBench(dut)
    await tb.reset()
    p = tb.params
    rng = stimulus_rng()
    outputs, fan_in = 8, 16
    dots = []
    for _ in range(outputs):
        dot = synapse_dot(p, rng, planes=1)
        values = rng.integers(0, 1, size=(fan_in, p.timesteps), endpoint=True)
        weights = rng.integers(-p.weight_max, p.weight_max, size=(p.lanes, fan_in), endpoint=True)
        dots.append(DotProduct(values, weights, dot.bias, 1))
    await tb.check(dots, rng, shuffle=False)
    expected = p.cycles(fan_in, planes=1, outputs=outputs)
    measured = assert_cycles(
        tb.sources["inp"].accepted,
        tb.sinks["out"].cycles,
        latency=p.latency,
        expected=expected,
        every_cycle=True,
    )
    ops = outputs * fan_in * p.lanes * p.timesteps
    dut._log.info(
        "throughput: %d synaptic ops in %d cycles (params.cycles %d) = %.2f ops/cycle, peak L x T = %d",
        ops,
        measured,
        expected,
        ops / (measured - p.latency),
        p.synaptic_ops_per_cycle,
    )
