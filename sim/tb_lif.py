# amaranth: UnusedElaboratable=no
"""cocotb testbench of the parallel-time-step LIF PE array (:class:`hw.lif_pe.LIFArray`).

Every output spike is compared with :func:`golden.numerics.lif` (the integer
reference). A "vector" is one input beat: the ``T`` currents and the threshold of
each of the ``L`` lanes. The tests:

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
from dataclasses import dataclass

import cocotb
import numpy as np
from cocotb.handle import SimHandleBase

from golden import numerics
from hw.lif_pe import LIFArray
from hw.params import LIFArrayParams
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
class Beats:
    """A batch of input beats: ``currents [N, T, L]``, ``thresholds [N, L]``, ``last [N]``."""

    currents: np.ndarray
    thresholds: np.ndarray
    last: np.ndarray

    def __len__(self) -> int:
        return len(self.currents)


class LIFBench(StreamBench):
    """Drives beats into the LIF array and checks its spikes against the integer reference."""

    def __init__(self, dut: SimHandleBase) -> None:
        self.params = load_params(LIFArrayParams)
        super().__init__(dut, component=LIFArray(self.params), inputs=["inp"], outputs=["out"])

    def reference(self, beats: Beats) -> np.ndarray:
        """Expected spikes ``[N, T, L]`` from :func:`golden.numerics.lif`."""
        p = self.params
        spikes = numerics.lif(np.moveaxis(beats.currents, 1, 0), beats.thresholds, leak_shift=p.leak_shift,
                              membrane_bits=p.membrane_bits)
        return np.moveaxis(spikes, 0, 1)

    async def check(self, beats: Beats, *, valid_prob: float = 1.0, ready_prob: float = 1.0) -> None:
        """Stream ``beats`` through the array under the given traffic and compare every spike."""
        p = self.params
        self.set_traffic(valid_prob=valid_prob, ready_prob=ready_prob)
        start = len(self.sinks["out"].words)
        self.send("inp", [{"current": beats.currents[n].T, "threshold": beats.thresholds[n],
                           "last": int(beats.last[n])} for n in range(len(beats))])
        budget = budget_cycles(len(beats), valid_prob=valid_prob, ready_prob=ready_prob, latency=p.latency)
        await self.sinks["out"].wait_for(start + len(beats), max_cycles=budget)
        got = self.received("out", start)
        if len(got) != len(beats):
            raise AssertionError(f"{len(got)} output beats for {len(beats)} input beats")
        spikes = np.array([[[(word["spikes"][lane] >> t) & 1 for lane in range(p.lanes)]
                            for t in range(p.timesteps)] for word in got], dtype=np.int64)
        last = np.array([word["last"] for word in got], dtype=np.int64)
        expected = self.reference(beats)
        bad = np.argwhere((spikes != expected).any(axis=1))
        if len(bad):
            n, lane = bad[0]
            raise AssertionError(
                f"{len(bad)} lane result(s) differ from golden.numerics.lif ({p}); first: beat {n}, "
                f"lane {lane}, currents {beats.currents[n, :, lane].tolist()}, threshold "
                f"{beats.thresholds[n, lane]}: expected spikes {expected[n, :, lane].tolist()}, "
                f"got {spikes[n, :, lane].tolist()}")
        if not np.array_equal(last, beats.last):
            raise AssertionError(f"'last' flags differ at beat {int(np.argmax(last != beats.last))}")


def _limits(p: LIFArrayParams) -> tuple[int, int, int, int]:
    lo, hi = numerics.signed_range(p.membrane_bits)
    tlo, thi = numerics.signed_range(p.threshold_bits)
    return lo, hi, tlo, thi


def random_beats(p: LIFArrayParams, rng: np.random.Generator, count: int) -> Beats:
    """Constrained-random beats: each lane draws one of several current/threshold regimes."""
    lo, hi, tlo, thi = _limits(p)
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
    return Beats(currents.astype(np.int64), thresholds.astype(np.int64), rng.integers(0, 1, size=count,
                                                                                      endpoint=True))


def _free_membrane(p: LIFArrayParams, currents: np.ndarray) -> np.ndarray:
    """``h`` of every step when the neuron never fires (threshold beyond the range): ``[N, T, L]``."""
    never = np.full(currents.shape[::2], _limits(p)[1] + 1)
    _, v = numerics.lif_trace(np.moveaxis(currents, 1, 0), never, leak_shift=p.leak_shift,
                              membrane_bits=p.membrane_bits)
    return np.moveaxis(v, 0, 1)


def edge_beats(p: LIFArrayParams, rng: np.random.Generator) -> Beats:
    """Deterministic corner cases plus threshold-equality beats built from random drives."""
    lo, hi, tlo, thi = _limits(p)
    steps, lanes = p.timesteps, p.lanes
    cases: list[tuple[np.ndarray, np.ndarray]] = []

    def add(current: np.ndarray | int, theta: np.ndarray | int) -> None:
        cases.append((np.broadcast_to(np.asarray(current, dtype=np.int64), (steps, lanes)).copy(),
                      np.broadcast_to(np.asarray(theta, dtype=np.int64), (lanes,)).copy()))

    alternating = np.where(np.arange(steps)[:, None] % 2 == 0, hi, lo)
    for current in (hi, lo, 0, 1, -1, alternating, -alternating - 1):
        for theta in (tlo, lo, -1, 0, 1, hi - 1, hi, hi + 1, thi):
            add(current, theta)
    # Threshold equality: with theta = the largest free-running h, the first spike comes
    # exactly when h == theta; theta + 1 must then stay silent at that step.
    drives = random_beats(p, rng, 64).currents
    drives[:32] = np.clip(drives[:32] // 64, lo, hi)  # small drives: h far from the limits
    free = _free_membrane(p, drives)
    peak = free.max(axis=1)
    for n in range(len(drives)):
        add(drives[n], peak[n])
        add(drives[n], peak[n] + 1)
        add(drives[n], peak[n] - 1)
    currents = np.stack([c for c, _ in cases])
    thresholds = np.stack([t for _, t in cases])
    return Beats(currents, thresholds, (np.arange(len(cases)) % 7 == 0).astype(np.int64))


def exported_beats(p: LIFArrayParams, path: str) -> Beats:
    """Beats from a ``.npz`` of exported-model LIF inputs, regrouped into ``L`` lanes of ``T`` steps."""
    with np.load(path) as data:
        currents, thresholds = data["currents"].astype(np.int64), data["thresholds"].astype(np.int64)
    if currents.ndim != 2 or thresholds.shape != currents.shape[1:]:
        raise ValueError(f"{path}: expected currents [T, neurons] and thresholds [neurons], got "
                         f"{currents.shape} and {thresholds.shape}")
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
    return Beats(currents.reshape(steps, count, p.lanes).transpose(1, 0, 2),
                 thresholds.reshape(count, p.lanes), np.zeros(count, dtype=np.int64))


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
            await tb.check(random_beats(tb.params, rng, part), valid_prob=valid_prob, ready_prob=ready_prob)
    await tb.expect_quiet(4 * tb.params.latency + 8)
    dut._log.info("random_vectors: %d beats (%d neuron-steps) match golden.numerics.lif",
                  len(tb.sinks["out"].words), len(tb.sinks["out"].words) * tb.params.neuron_steps_per_cycle)


@cocotb.test()
async def edge_vectors(dut: SimHandleBase) -> None:
    tb = LIFBench(dut)
    await tb.reset()
    beats = edge_beats(tb.params, stimulus_rng())
    await tb.check(beats, valid_prob=0.8, ready_prob=0.8)
    await tb.expect_quiet(4 * tb.params.latency + 8)
    dut._log.info("edge_vectors: %d beats match", len(beats))


@cocotb.test(skip=not os.environ.get(EXPORT_VECTORS_ENV))
async def exported_vectors(dut: SimHandleBase) -> None:
    tb = LIFBench(dut)
    await tb.reset()
    beats = exported_beats(tb.params, os.environ[EXPORT_VECTORS_ENV])
    await tb.check(beats, valid_prob=0.9, ready_prob=0.9)
    dut._log.info("exported_vectors: %d beats from %s match", len(beats), os.environ[EXPORT_VECTORS_ENV])


@cocotb.test()
async def throughput(dut: SimHandleBase) -> None:
    tb = LIFBench(dut)
    await tb.reset()
    p = tb.params
    count = 64
    await tb.check(random_beats(p, stimulus_rng(), count))
    measured = assert_cycles(tb.sources["inp"].accepted, tb.sinks["out"].cycles, latency=p.latency,
                             expected=p.cycles(count), every_cycle=True)
    rate = count * p.neuron_steps_per_cycle / (measured - p.latency)
    dut._log.info("throughput: %d beats in %d cycles (params.cycles %d), latency %d: %.2f neuron-steps/cycle "
                  "(L x T = %d)", count, measured, p.cycles(count), p.latency, rate, p.neuron_steps_per_cycle)


@cocotb.test()
async def heavy_backpressure(dut: SimHandleBase) -> None:
    tb = LIFBench(dut)
    await tb.reset()
    await tb.check(random_beats(tb.params, stimulus_rng(), 200), valid_prob=0.9, ready_prob=0.15)
    await tb.expect_quiet(4 * tb.params.latency + 8)
