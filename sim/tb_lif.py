# amaranth: UnusedElaboratable=no
"""cocotb testbench of the parallel-time-step LIF PE array (:class:`hw.lif_pe.LIFArray`).

Every output spike is compared with :func:`contract.numerics.lif` (the integer
reference). A "vector" is one input beat: the ``T`` currents and the threshold of
each of the ``L`` lanes; the vectors come from :mod:`sim.stimulus`, as for the
Amaranth-simulator tests. The tests:

* ``random_vectors``: constrained-random currents and thresholds (full range,
  near the threshold, extremes, constant drive) under random idle cycles and
  back-pressure; :data:`sim.bench.VECTORS_ENV` beats.
* ``edge_vectors``: extreme currents, threshold equality (the first spike lands
  exactly on ``h == theta``) and one below, thresholds beyond the membrane range,
  zero drive with zero / unit thresholds, alternating extremes.
* ``exported_vectors``: LIF currents and thresholds of a layer of the exported
  trained model (``SIM_EXPORT_VECTORS``, an ``.npz`` written by the test driver),
  skipped when no export exists.
* ``throughput``: with no stalls, one beat per cycle after ``params.latency``
  cycles, i.e. ``params.cycles(n)`` cycles for ``n`` beats.
* ``heavy_backpressure``: a sink that is rarely ready; no beat lost or duplicated.
"""

from __future__ import annotations

import os

import cocotb
import numpy as np
from cocotb.handle import SimHandleBase

from contract import numerics
from hw.lif_pe import LIFArray
from protocol.params import LIFArrayParams
from sim.bench import (
    EXPORT_VECTORS_ENV,
    StreamBench,
    assert_cycles,
    budget_cycles,
    load_params,
    stimulus_rng,
    vector_budget,
)
from sim.stimulus import LIFBeats, bit_rows, lif_edge_vectors, lif_exported_vectors, lif_payloads, lif_vectors


class LIFBench(StreamBench):
    """Drives beats into the LIF array and checks its spikes against the integer reference."""

    def __init__(self, dut: SimHandleBase) -> None:
        self.params = load_params(LIFArrayParams)
        super().__init__(dut, component=LIFArray(self.params), inputs=["inp"], outputs=["out"])

    def reference(self, beats: LIFBeats) -> np.ndarray:
        """Expected spikes ``[N, T, L]`` from :func:`contract.numerics.lif`."""
        p = self.params
        spikes = numerics.lif(
            np.moveaxis(beats.currents, 1, 0),
            beats.thresholds,
            leak_shift=p.leak_shift,
            membrane_bits=p.membrane_bits,
        )
        return np.moveaxis(spikes, 0, 1)

    async def check(self, beats: LIFBeats, *, valid_prob: float = 1.0, ready_prob: float = 1.0) -> None:
        """Stream ``beats`` through the array under the given traffic and compare every spike."""
        p = self.params
        self.set_traffic(valid_prob=valid_prob, ready_prob=ready_prob)
        start = len(self.sinks["out"].words)
        self.send("inp", lif_payloads(beats))
        budget = budget_cycles(len(beats), valid_prob=valid_prob, ready_prob=ready_prob, latency=p.latency)
        await self.sinks["out"].wait_for(start + len(beats), max_cycles=budget)
        got = self.received("out", start)
        if len(got) != len(beats):
            raise AssertionError(f"{len(got)} output beats for {len(beats)} input beats")
        spikes = np.array([bit_rows(word["spikes"], p.timesteps).T for word in got], dtype=np.int64)
        last = np.array([word["last"] for word in got], dtype=np.int64)
        expected = self.reference(beats)
        bad = np.argwhere((spikes != expected).any(axis=1))
        if len(bad):
            n, lane = bad[0]
            raise AssertionError(
                f"{len(bad)} lane result(s) differ from contract.numerics.lif ({p}); first: beat {n}, "
                f"lane {lane}, currents {beats.currents[n, :, lane].tolist()}, threshold "
                f"{beats.thresholds[n, lane]}: expected spikes {expected[n, :, lane].tolist()}, "
                f"got {spikes[n, :, lane].tolist()}"
            )
        if not np.array_equal(last, beats.last):
            raise AssertionError(f"'last' flags differ at beat {int(np.argmax(last != beats.last))}")


@cocotb.test()
async def random_vectors(dut: SimHandleBase) -> None:
    tb = LIFBench(dut)
    await tb.reset()
    rng = stimulus_rng()
    count = vector_budget(2000)
    # Thirds with different traffic: smooth, random idle, random idle + back-pressure.
    parts = [count // 3, count // 3, count - 2 * (count // 3)]
    for part, (valid_prob, ready_prob) in zip(parts, ((1.0, 1.0), (0.6, 1.0), (0.7, 0.5)), strict=True):
        if part:
            await tb.check(lif_vectors(tb.params, rng, part), valid_prob=valid_prob, ready_prob=ready_prob)
    await tb.expect_quiet(4 * tb.params.latency + 8)
    dut._log.info(
        "random_vectors: %d beats (%d neuron-steps) match contract.numerics.lif",
        len(tb.sinks["out"].words),
        len(tb.sinks["out"].words) * tb.params.neuron_steps_per_cycle,
    )


@cocotb.test()
async def edge_vectors(dut: SimHandleBase) -> None:
    tb = LIFBench(dut)
    await tb.reset()
    beats = lif_edge_vectors(tb.params, stimulus_rng())
    await tb.check(beats, valid_prob=0.8, ready_prob=0.8)
    await tb.expect_quiet(4 * tb.params.latency + 8)
    dut._log.info("edge_vectors: %d beats match", len(beats))


@cocotb.test(skip=not os.environ.get(EXPORT_VECTORS_ENV))
async def exported_vectors(dut: SimHandleBase) -> None:
    tb = LIFBench(dut)
    await tb.reset()
    beats = lif_exported_vectors(tb.params, os.environ[EXPORT_VECTORS_ENV])
    await tb.check(beats, valid_prob=0.9, ready_prob=0.9)
    dut._log.info("exported_vectors: %d beats from %s match", len(beats), os.environ[EXPORT_VECTORS_ENV])


@cocotb.test()
async def throughput(dut: SimHandleBase) -> None:
    tb = LIFBench(dut)
    await tb.reset()
    p = tb.params
    count = 64
    await tb.check(lif_vectors(p, stimulus_rng(), count))
    measured = assert_cycles(
        tb.sources["inp"].accepted,
        tb.sinks["out"].cycles,
        latency=p.latency,
        expected=p.cycles(count),
        every_cycle=True,
    )
    rate = count * p.neuron_steps_per_cycle / (measured - p.latency)
    dut._log.info(
        "throughput: %d beats in %d cycles (params.cycles %d), latency %d: %.2f neuron-steps/cycle "
        "(L x T = %d)",
        count,
        measured,
        p.cycles(count),
        p.latency,
        rate,
        p.neuron_steps_per_cycle,
    )


@cocotb.test()
async def heavy_backpressure(dut: SimHandleBase) -> None:
    tb = LIFBench(dut)
    await tb.reset()
    await tb.check(lif_vectors(tb.params, stimulus_rng(), 200), valid_prob=0.9, ready_prob=0.15)
    await tb.expect_quiet(4 * tb.params.latency + 8)
