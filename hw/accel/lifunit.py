"""The LIF-and-writeback unit shared by the conv and attention engines.

A job carries the ``T`` input currents and the threshold of ``lif_lanes`` neurons and
the activation address of their spike words. The unit runs them through the
parallel-time-step LIF PE array (:class:`hw.lif_pe.LIFArray`, used as is) and writes
lane ``l``'s ``T`` spikes, masked to the command's time steps, to ``addr + l``: one
word per cycle, or two consecutive ones with the two-bank activation memory
(:attr:`~protocol.config.AcceleratorConfig.spike_words_per_cycle`), so
``ceil(lif_lanes / g)`` cycles per job (lanes beyond the job's ``lanes`` are skipped but
still take their cycle, which keeps the timing data-independent).

The array's output beats go into a spike FIFO that the writer drains, so the LIF
chain keeps advancing while the writer works (the array stalls its whole chain when
its output is not taken; without the FIFO, beats queued behind a busy writer would
leave bubbles). The job's address travels beside them in a tag FIFO (the array carries
no tag); ``idle`` is low while any accepted job is not fully written.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from hw.accel.ports import ADDRESS_BITS, amem_write_signature, lif_job_layout
from hw.arith import equals, word_at
from hw.lif_pe import LIFArray
from protocol.config import AcceleratorConfig

__all__ = ["LIFUnit"]


class LIFUnit(wiring.Component):
    """LIF PE array plus activation-memory writeback.

    Parameters
    ----------
    config : AcceleratorConfig
        Supplies ``lif_lanes``, ``timesteps`` and the numerics.

    Attributes
    ----------
    job : In(stream.Signature(lif_job_layout(config)))
        Jobs from the engines.
    wr : Out(amem_write_signature(config))
        Spike words to the activation memory.
    tmask : In(timesteps)
        Bit ``t`` set for the running command's time steps; other steps are written as 0.
    idle : Out(1)
        No accepted job is still in flight.
    """

    def __init__(self, config: AcceleratorConfig) -> None:
        if not isinstance(config, AcceleratorConfig):
            raise TypeError(f"LIFUnit needs an AcceleratorConfig, not {config!r}")
        self._config = config
        super().__init__(
            {
                "job": In(stream.Signature(lif_job_layout(config))),
                "wr": Out(amem_write_signature(config, pairs=config.spike_words_per_cycle == 2)),
                "tmask": In(config.timesteps),
                "idle": Out(1),
            }
        )

    def elaborate(self, platform: object) -> Module:
        m = Module()
        cfg = self._config
        params = cfg.lif_params()
        lanes = params.lanes
        lane_bits = lanes.bit_length()

        depth = cfg.spike_fifo_depth
        m.submodules.lif = lif = LIFArray(params)
        m.submodules.spikes = spikes = SyncFIFO(width=lanes * params.timesteps, depth=depth)
        m.submodules.tags = tags = SyncFIFO(width=ADDRESS_BITS + lane_bits, depth=params.latency + depth + 2)

        job = self.job
        accept = Signal()
        m.d.comb += [
            job.ready.eq(lif.inp.ready & tags.w_rdy),
            lif.inp.valid.eq(job.valid & tags.w_rdy),
            lif.inp.payload.current.eq(job.payload.current),
            lif.inp.payload.threshold.eq(job.payload.threshold),
            accept.eq(job.valid & job.ready),
            tags.w_en.eq(accept),
            tags.w_data.eq(Cat(job.payload.addr, job.payload.lanes)),
        ]

        m.d.comb += [
            lif.out.ready.eq(spikes.w_rdy),
            spikes.w_en.eq(lif.out.valid),
            spikes.w_data.eq(lif.out.payload.spikes.as_value()),
        ]

        # Writer: ``g`` lanes per cycle (consecutive addresses, so with two words one goes to
        # each activation bank); the beat and its tag leave together after the last lanes.
        g = cfg.spike_words_per_cycle
        visits = cfg.writer_cycles_per_job
        visit = Signal(range(max(visits, 2)), name="write_visit")  # one bit even for one visit
        lane = Signal(range(max(lanes, 2) + 1), name="write_lane")
        tag_addr = tags.r_data[:ADDRESS_BITS]
        tag_lanes = tags.r_data[ADDRESS_BITS:]
        beat = spikes.r_data  # word_at reads zero past its last lane (an odd lane count)
        writing = Signal()
        finish = Signal()
        m.d.comb += [
            lane.eq(visit * g),
            writing.eq(spikes.r_rdy & tags.r_rdy),
            finish.eq(writing & (visit == visits - 1)),
            self.wr.addr.eq(tag_addr + lane),
            self.wr.en.eq(writing & (lane < tag_lanes)),
            self.wr.data.eq(word_at(beat, lane, params.timesteps) & self.tmask),
            spikes.r_en.eq(finish),
            tags.r_en.eq(finish),
        ]
        if g == 2:
            m.d.comb += [
                self.wr.next_en.eq(lane + 1 < tag_lanes),
                self.wr.next_data.eq(word_at(beat, lane + 1, params.timesteps) & self.tmask),
            ]
        with m.If(finish):
            m.d.sync += visit.eq(0)
        with m.Elif(writing):
            m.d.sync += visit.eq(visit + 1)

        inflight = Signal(range(params.latency + depth + 4))
        with m.If(accept & ~finish):
            m.d.sync += inflight.eq(inflight + 1)
        with m.Elif(finish & ~accept):
            m.d.sync += inflight.eq(inflight - 1)
        m.d.comb += self.idle.eq(equals(inflight, 0))
        return m
