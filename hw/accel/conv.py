"""``CONV``: convolution or linear layer -> LIF, on the synapse PE array (used as is).

Per output-channel group of ``L`` channels (``ceil(out_c / L)`` groups):

1. ``PARAMS``: ``L`` stream words, lane ``l``'s bias (low 32 bits) and threshold (high 32);
2. ``WEIGHTS``: ``fan_in = C k^2`` weight-memory words of ``L`` weights, each assembled
   from ``L * weight_bits / 64`` stream words (fan-in order ``(dy, dx, c)``);
3. ``COMPUTE``: for every output position, one synapse beat per (tap, input channel,
   bit plane): the activation word of the tap (zero outside the input) and the tap's
   ``L`` weights. The last beat of a position carries ``last``; the array then emits
   ``L x T`` currents, which go to the shared LIF unit in ``L / lif_lanes`` jobs;
4. ``DRAIN``: wait until every job of the group is written, so the next group's
   parameters do not overtake them.

A linear layer ``[N, I] -> [N, O]`` is the same with a ``1 x N`` image and ``k = 1``.
With ``config.serial_synapse`` the array is :class:`hw.accel.serial_synapse.SerialSynapseArray`
(same beats and arithmetic, results leave one LIF job wide).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, Value, signed
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import Out

from hw.accel.config import STREAM_BITS, AcceleratorConfig
from hw.accel.loops import LoopNest, read_stage, registered, signed_address
from hw.accel.ports import ADDRESS_BITS, engine_members
from hw.accel.serial_synapse import SerialSynapseArray
from hw.synapse_pe import SynapseArray

__all__ = ["ConvEngine"]


class ConvEngine(wiring.Component):
    """The ``CONV`` command engine (see the module docstring).

    Parameters
    ----------
    config : AcceleratorConfig

    Attributes
    ----------
    start, desc, tmask, busy :
        Engine control (:func:`hw.accel.ports.engine_members`).
    rd : Out(amem_read_signature)
        Activation reads (one per synapse beat).
    words_in : In(word_stream())
        Parameter and weight words.
    lif_job : Out(stream.Signature(lif_job_layout))
        Currents to the LIF unit; ``lif_idle`` reports it has written everything.
    overflow : Out(1)
        The synapse array's sticky accumulator-overflow flag.
    """

    def __init__(self, config: AcceleratorConfig) -> None:
        self._config = config
        super().__init__({**engine_members(config, read=True, words_in=True, lif=True), "overflow": Out(1)})

    def elaborate(self, platform: object) -> Module:
        m = Module()
        cfg = self._config
        d = self.desc
        lanes, lif_lanes, chunks = cfg.lanes, cfg.lif_lanes, cfg.chunks
        membrane = cfg.numerics.membrane_bits
        syn_params = cfg.synapse_params()
        word_bits = cfg.weight_word_bits
        per_weight = cfg.stream_words_per_weight_word

        if cfg.serial_synapse:
            syn = SerialSynapseArray(syn_params, out_lanes=lif_lanes)
        else:
            syn = SynapseArray(syn_params)
        m.submodules.synapse = syn
        m.submodules.wmem = wmem = Memory(shape=word_bits, depth=cfg.wmem_depth, init=[])
        wmem_wr = wmem.write_port()
        wmem_rd = wmem.read_port(transparent_for=())
        m.submodules.tags = tags = SyncFIFO(width=ADDRESS_BITS + 1 + lanes.bit_length(), depth=4)
        m.d.comb += self.overflow.eq(syn.overflow)

        # ---------------------------------------------------------------- derived quantities
        cp = registered(m, d.in_c * d.planes_in, "conv_cp")
        row = registered(m, d.in_w * d.in_c * d.planes_in, "conv_row")
        s_row = registered(m, d.stride * d.in_w * d.in_c * d.planes_in, "conv_s_row")
        s_cp = registered(m, d.stride * d.in_c * d.planes_in, "conv_s_cp")
        kc = registered(m, d.kernel * d.in_c, "conv_kc")
        fan_in = registered(m, d.kernel * d.kernel * d.in_c, "conv_fan_in")
        o_row = registered(m, d.out_w * d.out_c, "conv_o_row")
        init = registered(
            m,
            d.src0 - d.pad_top * d.in_w * d.in_c * d.planes_in - d.pad_left * d.in_c * d.planes_in,
            "conv_init",
        )

        group_base = Signal(ADDRESS_BITS + 1)  # dst + g L
        lanes_left = Signal(signed(18))  # out_c - g L
        group_lanes = Signal(range(lanes + 1))
        m.d.comb += group_lanes.eq(Mux(lanes_left >= lanes, lanes, lanes_left[: group_lanes.shape().width]))

        # ---------------------------------------------------------------- the compute loop
        m.submodules.loop = loop = LoopNest(
            "conv", [("oy", 16), ("ox", 16), ("dy", 8), ("dx", 8), ("c", 16), ("b", 5)]
        )
        for level, count in (
            ("oy", d.out_h),
            ("ox", d.out_w),
            ("dy", d.kernel),
            ("dx", d.kernel),
            ("c", d.in_c),
            ("b", d.planes_in),
        ):
            m.d.comb += loop.count[level].eq(count)
        addr = loop.output(
            "addr",
            signed_address(ADDRESS_BITS),
            init,
            {"oy": s_row, "ox": s_cp, "dy": row, "dx": cp, "c": d.planes_in, "b": 1},
        )
        iy = loop.output("iy", signed(18), -d.pad_top, {"oy": d.stride, "dy": 1})
        ix = loop.output("ix", signed(18), -d.pad_left, {"ox": d.stride, "dx": 1})
        waddr = loop.output("waddr", 20, 0, {"dy": kc, "dx": d.in_c, "c": 1})
        oaddr = loop.output("oaddr", ADDRESS_BITS + 1, group_base, {"oy": o_row, "ox": d.out_c})
        pad = Signal()
        m.d.comb += pad.eq((iy < 0) | (iy >= d.in_h) | (ix < 0) | (ix >= d.in_w))

        beat = syn.inp
        stage = read_stage(
            m,
            name="conv",
            active=loop.active,
            ready=beat.ready & tags.w_rdy,
            meta={
                "pad": pad,
                "plane": loop.idx["b"],
                "last": loop.within("dy", "dx", "c", "b"),
                "oaddr": oaddr,
            },
        )
        m.d.comb += [
            loop.step.eq(loop.active & stage.advance),
            self.rd.addr.eq(addr),
            self.rd.en.eq(loop.active & stage.advance & ~pad),
            wmem_rd.addr.eq(waddr),
            wmem_rd.en.eq(stage.advance),
        ]

        bias = [Signal(signed(membrane), name=f"bias{lane}") for lane in range(lanes)]
        theta = [Signal(signed(membrane + 1), name=f"theta{lane}") for lane in range(lanes)]
        m.d.comb += [
            beat.valid.eq(stage.valid & tags.w_rdy),
            beat.payload.spikes.eq(Mux(stage.meta["pad"], 0, self.rd.data)),
            Value.cast(beat.payload.weight).eq(wmem_rd.data),
            beat.payload.last.eq(stage.meta["last"]),
            tags.w_en.eq(beat.valid & beat.ready & stage.meta["last"]),
            tags.w_data.eq(Cat(stage.meta["oaddr"], group_lanes)),
        ]
        if syn_params.plane_bits:
            m.d.comb += beat.payload.plane.eq(stage.meta["plane"])
        m.d.comb += [beat.payload.bias[lane].eq(bias[lane]) for lane in range(lanes)]

        # ---------------------------------------------------------------- results -> LIF jobs
        chunk = Signal(range(chunks))
        job = self.lif_job
        tag_addr = tags.r_data[:ADDRESS_BITS]
        tag_lanes = tags.r_data[ADDRESS_BITS + 1 :]
        left = Signal(signed(lanes.bit_length() + 2))
        m.d.comb += left.eq(tag_lanes - chunk * lif_lanes)
        # The PE presents all L lanes until the last chunk is taken; the serial array
        # presents one chunk per beat.
        with m.Switch(chunk):
            for k in range(chunks):
                with m.Case(k):
                    for lane in range(lif_lanes):
                        source = lane if cfg.serial_synapse else k * lif_lanes + lane
                        m.d.comb += [
                            job.payload.current[lane].eq(syn.out.payload.current[source]),
                            job.payload.threshold[lane].eq(theta[k * lif_lanes + lane]),
                        ]
        last_chunk = chunk == chunks - 1
        release = job.ready & tags.r_rdy
        m.d.comb += [
            job.valid.eq(syn.out.valid & tags.r_rdy),
            job.payload.addr.eq(tag_addr + chunk * lif_lanes),
            job.payload.lanes.eq(Mux(left >= lif_lanes, lif_lanes, Mux(left < 0, 0, left))),
            syn.out.ready.eq(release if cfg.serial_synapse else release & last_chunk),
            tags.r_en.eq(job.valid & job.ready & last_chunk),
        ]
        with m.If(job.valid & job.ready):
            m.d.sync += chunk.eq(Mux(last_chunk, 0, chunk + 1))

        # ---------------------------------------------------------------- sequencing per group
        index = Signal(20)  # parameter lane, then weight-memory word
        sub = Signal(range(max(per_weight, 2)))
        assembled = Signal(word_bits)
        words = self.words_in
        take = Signal()
        m.d.comb += take.eq(words.valid & words.ready)
        incoming = words.payload.data
        full_word = incoming if per_weight == 1 else Cat(assembled[STREAM_BITS:], incoming)
        drained = ~loop.active & ~stage.valid & ~tags.r_rdy & self.lif_idle

        with m.FSM(name="conv_fsm"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [self.busy.eq(1), index.eq(0), lanes_left.eq(d.out_c), group_base.eq(d.dst)]
                    m.next = "PARAMS"
            with m.State("PARAMS"):
                m.d.comb += words.ready.eq(1)
                with m.If(take):
                    for lane in range(lanes):
                        with m.If(index == lane):
                            m.d.sync += [
                                bias[lane].eq(incoming[:membrane]),
                                theta[lane].eq(incoming[32 : 33 + membrane]),
                            ]
                    m.d.sync += index.eq(index + 1)
                    with m.If(index == lanes - 1):
                        m.d.sync += [index.eq(0), sub.eq(0)]
                        m.next = "WEIGHTS"
            with m.State("WEIGHTS"):
                m.d.comb += [words.ready.eq(1), wmem_wr.addr.eq(index), wmem_wr.data.eq(full_word)]
                with m.If(take):
                    m.d.sync += assembled.eq(full_word)
                    if per_weight > 1:
                        m.d.sync += sub.eq(sub + 1)
                    with m.If(sub == per_weight - 1):
                        m.d.comb += wmem_wr.en.eq(1)
                        m.d.sync += [index.eq(index + 1), sub.eq(0)]
                        with m.If(index == fan_in - 1):
                            m.d.comb += loop.start.eq(1)
                            m.next = "COMPUTE"
            with m.State("COMPUTE"):
                with m.If(drained):
                    m.d.sync += [
                        group_base.eq(group_base + lanes),
                        lanes_left.eq(lanes_left - lanes),
                        index.eq(0),
                    ]
                    with m.If(lanes_left <= lanes):
                        m.d.sync += self.busy.eq(0)
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "PARAMS"
        return m
