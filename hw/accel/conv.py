"""``CONV``: convolution or linear layer -> LIF, on the synapse array.

Per output-channel group of ``L`` channels (``ceil(out_c / L)`` groups):

1. ``PARAMS``: ``L`` stream words, lane ``l``'s bias (low 32 bits) and threshold (high 32);
2. ``WEIGHTS``: ``fan_in = C k^2`` weight-memory words of ``L`` weights, each assembled
   from ``L * weight_bits / 64`` stream words (fan-in order ``(dy, dx, c)``);
3. ``COMPUTE``: for every output position, one synapse beat per kernel tap and ``K``
   input words: the ``C P`` words of a tap (channels times bit planes) are consecutive in
   the activation layout ``(y, x, c, plane)``, so a beat's ``K`` words are one read of the
   ``K``-bank activation memory (:class:`hw.accel.banked.BankedMemory`), and the weights
   of their one or two channels one read of the ``K``-bank weight memory. Words outside
   the input or past the tap's ``C P`` read as zero. The last beat of a position
   carries ``last``; the array then emits ``L x T`` currents, which go to the shared
   LIF unit in ``L / lif_lanes`` jobs;
4. ``DRAIN``: wait until every job of the group is written, so the next group's
   parameters do not overtake them.

With ``pool_kernel > 0`` the currents are max-pooled before the LIF: the output positions
are the pooled ones, and for each the loop computes the conv positions of its window
(``pool_kernel^2``, row-major; padded ones too, whose currents are replaced by the
smallest current ``-2^(M-1)``). Each result's chunks update a per-lane, per-step running
maximum; the window's last result sends the maxima as the position's LIF jobs.

A linear layer ``[N, I] -> [N, O]`` is the same with a ``1 x N`` image and ``k = 1``.
With ``config.serial_synapse`` the array is :class:`hw.accel.serial_synapse.SerialSynapseArray`
(``K`` words per beat, results leave one LIF job wide), else the synapse PE
:class:`hw.synapse_pe.SynapseArray` (``K = 1``).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import Out

from hw.accel.banked import BankedMemory
from hw.accel.loops import LoopNest, read_stage, registered
from hw.accel.ports import ADDRESS_BITS, engine_members
from hw.accel.serial_synapse import SerialSynapseArray
from hw.arith import equals
from hw.synapse_pe import SynapseArray
from protocol.config import STREAM_BITS, AcceleratorConfig

__all__ = ["ConvEngine"]


def _first_word_position(
    m: Module, cfg: AcceleratorConfig, loop: LoopNest, planes: Value
) -> tuple[Signal, Signal]:
    """Channel and bit plane of the first word of the loop's current beat.

    The beat's first word is word ``K r`` of the tap, i.e. channel ``K r // P``, plane
    ``K r mod P``: both restart at 0 with every tap and advance by ``K`` words in radix
    ``P`` per beat, without a divider (two carries at most, because ``K <= 2``).
    """
    words = cfg.words_per_beat
    channel = Signal(16, name="conv_channel")
    plane = Signal(range(cfg.numerics.input_bits), name="conv_plane")
    next_channel, next_plane = channel, plane + words
    for _ in range(words):
        wraps = next_plane >= planes
        next_channel = Mux(wraps, next_channel + 1, next_channel)
        next_plane = Mux(wraps, next_plane - planes, next_plane)
    with m.If(loop.start):
        m.d.sync += [channel.eq(0), plane.eq(0)]
    with m.Elif(loop.step & loop.active):
        with m.If(loop.last["r"]):
            m.d.sync += [channel.eq(0), plane.eq(0)]
        with m.Else():
            m.d.sync += [channel.eq(next_channel[: len(channel)]), plane.eq(next_plane[: len(plane)])]
    return channel, plane


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
        super().__init__(
            {
                **engine_members(
                    config, read=True, read_pairs=config.words_per_beat > 1, words_in=True, lif=True
                ),
                "overflow": Out(1),
            }
        )

    def elaborate(self, platform: object) -> Module:
        m = Module()
        cfg = self._config
        d = self.desc
        lanes, lif_lanes, chunks = cfg.lanes, cfg.lif_lanes, cfg.chunks
        membrane = cfg.numerics.membrane_bits
        syn_params = cfg.synapse_params()
        word_bits = cfg.weight_word_bits
        per_weight = cfg.stream_words_per_weight_word

        words = cfg.words_per_beat
        if cfg.serial_synapse:
            syn = SerialSynapseArray(syn_params, out_lanes=lif_lanes, words=words)
        else:
            syn = SynapseArray(syn_params)
        m.submodules.synapse = syn
        m.submodules.wmem = wmem = BankedMemory(width=word_bits, depth=cfg.wmem_depth, banks=words)
        tag_bits = ADDRESS_BITS + lanes.bit_length()
        m.submodules.tags = tags = SyncFIFO(width=tag_bits + 3, depth=4)  # + real, first, last of window
        m.d.comb += self.overflow.eq(syn.overflow)

        # ---------------------------------------------------------------- derived quantities
        cp = registered(m, d.in_c * d.planes_in, "conv_cp")  # input words per tap
        rows = registered(m, ((cp + words - 1) >> (words - 1))[:20], "conv_rows")  # beats per tap (< 2**20)
        row = registered(m, d.in_w * cp, "conv_row")
        s_row = registered(m, d.stride * row, "conv_s_row")
        s_cp = registered(m, d.stride * cp, "conv_s_cp")
        kc = registered(m, d.kernel * d.in_c, "conv_kc")
        fan_in = registered(m, d.kernel * d.kernel * d.in_c, "conv_fan_in")  # weight words of a group
        o_row = registered(m, d.out_w * d.out_c, "conv_o_row")
        # The current pool: without one, a window of one conv position of stride 1.
        pooling = registered(m, d.pool_kernel != 0, "conv_pooling")
        p_k = registered(m, Mux(pooling, d.pool_kernel[:4], 1), "conv_pool_k")
        p_s = registered(m, Mux(pooling, d.pool_stride, 1), "conv_pool_s")
        p_p = registered(m, Mux(pooling, d.pool_padding[:4], 0), "conv_pool_p")
        ps_row = registered(m, (p_s * s_row)[:ADDRESS_BITS], "conv_ps_row")
        ps_cp = registered(m, (p_s * s_cp)[:ADDRESS_BITS], "conv_ps_cp")
        ps_s = registered(m, p_s * d.stride, "conv_ps_s")
        pp_s = registered(m, p_p * d.stride, "conv_pp_s")
        # A conv position (cy, cx) is real when 0 <= cy and cy s + k <= in_h + 2 pad_top (likewise x).
        y_end = registered(m, d.in_h + 2 * d.pad_top - d.kernel, "conv_y_end")
        x_end = registered(m, d.in_w + 2 * d.pad_left - d.kernel, "conv_x_end")
        # Addresses wrap modulo 2**ADDRESS_BITS: a padding tap's "negative" address is never read,
        # and every other one is the true address.
        init = registered(
            m,
            (d.src0 - d.pad_top * row - d.pad_left * cp - p_p * (s_row + s_cp))[:ADDRESS_BITS],
            "conv_init",
        )

        group_base = Signal(ADDRESS_BITS)  # dst + g L
        lanes_left = Signal(signed(18))  # out_c - g L
        group_lanes = Signal(range(lanes + 1))
        m.d.comb += group_lanes.eq(Mux(lanes_left >= lanes, lanes, lanes_left[: group_lanes.shape().width]))

        # ---------------------------------------------------------------- the compute loop
        m.submodules.loop = loop = LoopNest(
            "conv", [("oy", 16), ("ox", 16), ("wy", 4), ("wx", 4), ("dy", 8), ("dx", 8), ("r", 20)]
        )
        for level, count in (
            ("oy", d.out_h),
            ("ox", d.out_w),
            ("wy", p_k),
            ("wx", p_k),
            ("dy", d.kernel),
            ("dx", d.kernel),
            ("r", rows),
        ):
            m.d.comb += loop.count[level].eq(count)
        addr = loop.output(
            "addr",
            ADDRESS_BITS,
            init,
            {"oy": ps_row, "ox": ps_cp, "wy": s_row, "wx": s_cp, "dy": row, "dx": cp, "r": words},
        )
        iy = loop.output("iy", signed(18), -d.pad_top - pp_s, {"oy": ps_s, "wy": d.stride, "dy": 1})
        ix = loop.output("ix", signed(18), -d.pad_left - pp_s, {"ox": ps_s, "wx": d.stride, "dx": 1})
        cy = loop.output("cy", signed(18), -pp_s, {"oy": ps_s, "wy": d.stride})  # conv row * stride
        cx = loop.output("cx", signed(18), -pp_s, {"ox": ps_s, "wx": d.stride})
        real = Signal()
        m.d.comb += real.eq(~pooling | ((cy >= 0) & (cx >= 0) & (cy <= y_end) & (cx <= x_end)))
        first_word = loop.output("word", 21, 0, {"r": words})  # of the beat, within the tap
        tap_weights = loop.output("wtap", 20, 0, {"dy": kc, "dx": d.in_c})
        oaddr = loop.output("oaddr", ADDRESS_BITS, group_base, {"oy": o_row, "ox": d.out_c})
        pad = Signal()
        m.d.comb += pad.eq((iy < 0) | (iy >= d.in_h) | (ix < 0) | (ix >= d.in_w))

        # Channel and bit plane of each word of the beat (word index = channel P + plane).
        channel, plane0 = _first_word_position(m, cfg, loop, d.planes_in)
        planes = [plane0]
        for _ in range(1, words):
            wraps = planes[-1] + 1 >= d.planes_in
            planes.append(Mux(wraps, 0, planes[-1] + 1))
        # With two words, the second one's weights are its channel's: the same as the first
        # word's unless the first is its channel's last plane.
        second_channel = equals(planes[-1], 0) if words > 1 else Const(0)
        present = [~pad & (first_word + k < cp) for k in range(words)]

        beat = syn.inp
        stage = read_stage(
            m,
            name="conv",
            active=loop.active,
            ready=beat.ready & tags.w_rdy,
            meta={
                "present": Cat(*present),
                "planes": Cat(*(Value.cast(p)[: len(plane0)] for p in planes)),
                "second_channel": second_channel,
                "last": loop.within("dy", "dx", "r"),
                "oaddr": oaddr,
                "window": Cat(
                    real, equals(loop.idx["wy"], 0) & equals(loop.idx["wx"], 0), loop.within("wy", "wx")
                ),
            },
        )
        m.d.comb += [
            loop.step.eq(loop.active & stage.advance),
            self.rd.addr.eq(addr),
            self.rd.en.eq(loop.active & stage.advance & ~pad),
            wmem.rd_addr.eq((tap_weights + channel)[: len(wmem.rd_addr)]),
            wmem.rd_en.eq(stage.advance),
        ]

        bias = [Signal(signed(membrane), name=f"bias{lane}") for lane in range(lanes)]
        theta = [Signal(signed(membrane + 1), name=f"theta{lane}") for lane in range(lanes)]
        stage_planes = len(plane0)
        if cfg.serial_synapse:
            read_words = [self.rd.data, *([self.rd.next] if words > 1 else [])]
            weights = [
                wmem.rd_data,
                *([Mux(stage.meta["second_channel"], wmem.rd_next, wmem.rd_data)] if words > 1 else []),
            ]
            for k in range(words):
                m.d.comb += [
                    beat.payload.spikes[k].eq(Mux(stage.meta["present"][k], read_words[k], 0)),
                    Value.cast(beat.payload.weight[k]).eq(weights[k]),
                ]
                if syn_params.plane_bits:
                    m.d.comb += beat.payload.plane[k].eq(stage.meta["planes"].word_select(k, stage_planes))
        else:
            m.d.comb += [
                beat.payload.spikes.eq(Mux(stage.meta["present"][0], self.rd.data, 0)),
                Value.cast(beat.payload.weight).eq(wmem.rd_data),
            ]
            if syn_params.plane_bits:
                m.d.comb += beat.payload.plane.eq(stage.meta["planes"])
        m.d.comb += [
            beat.valid.eq(stage.valid & tags.w_rdy),
            beat.payload.last.eq(stage.meta["last"]),
            tags.w_en.eq(beat.valid & beat.ready & stage.meta["last"]),
            tags.w_data.eq(Cat(stage.meta["oaddr"], group_lanes, stage.meta["window"])),
        ]
        m.d.comb += [beat.payload.bias[lane].eq(bias[lane]) for lane in range(lanes)]

        # ---------------------------------------------------------------- results -> LIF jobs
        chunk = Signal(range(chunks))
        job = self.lif_job
        tag_addr = tags.r_data[:ADDRESS_BITS]
        tag_lanes = tags.r_data[ADDRESS_BITS:tag_bits]
        tag_real, tag_first, tag_window_last = (
            tags.r_data[tag_bits],
            tags.r_data[tag_bits + 1],
            tags.r_data[-1],
        )
        # Running maxima of the window, per chunk, lane and step; a padded conv position's
        # current is the smallest, which never wins over a real one.
        smallest = -(1 << (membrane - 1))
        running = [
            [
                [Signal(signed(membrane), name=f"pool_max{k}_{lane}_{t}") for t in range(cfg.timesteps)]
                for lane in range(lif_lanes)
            ]
            for k in range(chunks)
        ]
        pooled = [
            [Signal(signed(membrane), name=f"pooled{lane}_{t}") for t in range(cfg.timesteps)]
            for lane in range(lif_lanes)
        ]
        left = Signal(signed(lanes.bit_length() + 2))
        m.d.comb += left.eq(tag_lanes - chunk * lif_lanes)
        # The PE presents all L lanes until the last chunk is taken; the serial array
        # presents one chunk per beat.
        taken = Signal()
        with m.Switch(chunk):
            for k in range(chunks):
                with m.Case(k):
                    for lane in range(lif_lanes):
                        source = lane if cfg.serial_synapse else k * lif_lanes + lane
                        m.d.comb += job.payload.threshold[lane].eq(theta[k * lif_lanes + lane])
                        for t in range(cfg.timesteps):
                            current = Mux(tag_real, syn.out.payload.current[source][t], smallest)
                            best = running[k][lane][t]
                            m.d.comb += pooled[lane][t].eq(Mux(tag_first | (current > best), current, best))
        for lane in range(lif_lanes):
            m.d.comb += [job.payload.current[lane][t].eq(pooled[lane][t]) for t in range(cfg.timesteps)]
        # Outside the chunk switch: a register's one-case switch would be a partial case in Verilog.
        for k in range(chunks):
            with m.If(taken & equals(chunk, k)):
                m.d.sync += [
                    running[k][lane][t].eq(pooled[lane][t])
                    for lane in range(lif_lanes)
                    for t in range(cfg.timesteps)
                ]
        last_chunk = chunk == chunks - 1
        # A result that does not end its window only updates the maxima: it needs no job.
        release = (job.ready | ~tag_window_last) & tags.r_rdy
        m.d.comb += [
            taken.eq(syn.out.valid & release),
            job.valid.eq(syn.out.valid & tags.r_rdy & tag_window_last),
            job.payload.addr.eq(tag_addr + chunk * lif_lanes),
            job.payload.lanes.eq(Mux(left >= lif_lanes, lif_lanes, Mux(left < 0, 0, left))),
            syn.out.ready.eq(release if cfg.serial_synapse else release & last_chunk),
            tags.r_en.eq(taken & last_chunk),
        ]
        with m.If(taken):
            m.d.sync += chunk.eq(Mux(last_chunk, 0, chunk + 1))

        # ---------------------------------------------------------------- sequencing per group
        index = Signal(20)  # parameter lane, then weight-memory word
        sub = Signal(range(max(per_weight, 2)))
        assembled = Signal(word_bits)
        words_in = self.words_in
        take = Signal()
        m.d.comb += take.eq(words_in.valid & words_in.ready)
        incoming = words_in.payload.data
        full_word = incoming if per_weight == 1 else Cat(assembled[STREAM_BITS:], incoming)
        drained = ~loop.active & ~stage.valid & ~tags.r_rdy & self.lif_idle

        with m.FSM(name="conv_fsm"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [self.busy.eq(1), index.eq(0), lanes_left.eq(d.out_c), group_base.eq(d.dst)]
                    m.next = "PARAMS"
            with m.State("PARAMS"):
                m.d.comb += words_in.ready.eq(1)
                with m.If(take):
                    for lane in range(lanes):
                        with m.If(equals(index, lane)):
                            m.d.sync += [
                                bias[lane].eq(incoming[:membrane]),
                                theta[lane].eq(incoming[32 : 33 + membrane]),
                            ]
                    m.d.sync += index.eq(index + 1)
                    with m.If(index == lanes - 1):
                        m.d.sync += [index.eq(0), sub.eq(0)]
                        m.next = "WEIGHTS"
            with m.State("WEIGHTS"):
                m.d.comb += [words_in.ready.eq(1), wmem.wr_addr.eq(index), wmem.wr_data.eq(full_word)]
                with m.If(take):
                    m.d.sync += assembled.eq(full_word)
                    if per_weight > 1:
                        m.d.sync += sub.eq(sub + 1)
                    with m.If(sub == per_weight - 1):
                        m.d.comb += wmem.wr_en.eq(1)
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
