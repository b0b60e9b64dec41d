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

from dataclasses import dataclass
from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import Out

from hw.accel.banked import BankedMemory
from hw.accel.loops import LoopNest, ReadStage, read_stage, registered
from hw.accel.ports import ADDRESS_BITS, engine_members
from hw.accel.serial_synapse import SerialSynapseArray
from hw.accel.tap_scanner import TapScanner
from hw.arith import equals
from hw.synapse_pe import SynapseArray
from protocol.config import STREAM_BITS, AcceleratorConfig
from protocol.zero_skip import reciprocal, tap_divider

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


def _weight_copy(m: Module, name: str, width: int, depth: int) -> SimpleNamespace:
    """A weight memory with one read and one write port, seen as :class:`BankedMemory` of one
    bank is (``rd_addr``, ``rd_en``, ``rd_data``, ``wr_addr``, ``wr_en``, ``wr_data``)."""
    m.submodules[name] = memory = Memory(shape=width, depth=depth, init=[])
    rd, wr = memory.read_port(transparent_for=()), memory.write_port()
    return SimpleNamespace(
        rd_addr=rd.addr, rd_en=rd.en, rd_data=rd.data, wr_addr=wr.addr, wr_en=wr.en, wr_data=wr.data
    )


@dataclass(frozen=True)
class _Taps:
    """What the beat-request generators need of the loop nest: the nest, the current tap's
    padding flag, first address and weight row (plus the group's first row), its words
    ``C P``, the output address and window flags the results carry, and the beat consumer's
    ``ready``."""

    loop: LoopNest
    pad: Value
    addr: Value
    weights: Value
    weight_base: Value
    words: Value
    oaddr: Value
    window: Value
    ready: Value


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
                    config,
                    read=True,
                    read_pairs=config.words_per_beat > 1,
                    words_in=True,
                    lif=True,
                    occupancy=config.zero_skip,
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
        if cfg.zero_skip:  # the two words of a beat have unrelated channels: a weight copy each
            wmems = [_weight_copy(m, f"wmem{k}", word_bits, cfg.wmem_depth) for k in range(2)]
        else:
            # Block RAM: with URAM inference on (UltraScale+) the tools would otherwise put the
            # weights in the URAM the activation memory needs.
            m.submodules.wmem = wmem = BankedMemory(
                width=word_bits, depth=cfg.wmem_depth, banks=words, ram_style="block"
            )
            wmems = [wmem]
        tag_bits = ADDRESS_BITS + lanes.bit_length()
        m.submodules.tags = tags = SyncFIFO(width=tag_bits + 3, depth=4)  # + real, first, last of window
        m.d.comb += self.overflow.eq(syn.overflow)

        # ---------------------------------------------------------------- derived quantities
        cp = registered(m, d.in_c * d.planes_in, "conv_cp")  # input words per tap
        if not cfg.zero_skip:  # beats per tap (< 2**20); the tap scanner walks a tap on its own
            rows = registered(m, ((cp + words - 1) >> (words - 1))[:20], "conv_rows")
        row = registered(m, d.in_w * cp, "conv_row")
        s_row = registered(m, d.stride * row, "conv_s_row")
        s_cp = registered(m, d.stride * cp, "conv_s_cp")
        kc = registered(m, d.kernel * d.in_c, "conv_kc")
        fan_in = registered(m, d.kernel * d.kernel * d.in_c, "conv_fan_in")  # weight words of a group
        alternate = registered(m, 2 * fan_in <= cfg.wmem_depth, "conv_alternate")
        o_row = registered(m, d.out_w * d.out_c, "conv_o_row")
        # The current pool: without one, a window of one conv position of stride 1.
        pooling = registered(m, d.pool_kernel != 0, "conv_pooling")
        p_k = registered(m, Mux(pooling, d.pool_kernel[:4], 1), "conv_pool_k")
        p_s = registered(m, Mux(pooling, d.pool_stride, 1), "conv_pool_s")
        p_p = registered(m, Mux(pooling, d.pool_padding[:4], 0), "conv_pool_p")
        # The pool's top padding is its own field: a band that starts below the top has none.
        p_pt = registered(m, Mux(pooling, d.pool_pad_top[:4], 0), "conv_pool_pt")
        ps_row = registered(m, (p_s * s_row)[:ADDRESS_BITS], "conv_ps_row")
        ps_cp = registered(m, (p_s * s_cp)[:ADDRESS_BITS], "conv_ps_cp")
        ps_s = registered(m, p_s * d.stride, "conv_ps_s")
        pp_s = registered(m, p_p * d.stride, "conv_pp_s")
        ppt_s = registered(m, p_pt * d.stride, "conv_ppt_s")
        # A conv position (cy, cx) is real when 0 <= cy and cy s + k <= in_h + pad_top + pad_left
        # (likewise x): the rows below the input pad like the columns, so a band ending at the
        # bottom edge, whose pad_top is 0, still has the image's bottom padding.
        y_end = registered(m, d.in_h + d.pad_top + d.pad_left - d.kernel, "conv_y_end")
        x_end = registered(m, d.in_w + 2 * d.pad_left - d.kernel, "conv_x_end")
        # Addresses wrap modulo 2**ADDRESS_BITS: a padding tap's "negative" address is never read,
        # and every other one is the true address.
        init = registered(
            m,
            (d.src0 - d.pad_top * row - d.pad_left * cp - p_pt * s_row - p_p * s_cp)[:ADDRESS_BITS],
            "conv_init",
        )

        group_base = Signal(ADDRESS_BITS)  # dst + g L
        lanes_left = Signal(signed(18))  # out_c - g L
        group_lanes = Signal(range(lanes + 1))
        m.d.comb += group_lanes.eq(Mux(lanes_left >= lanes, lanes, lanes_left[: group_lanes.shape().width]))

        # ---------------------------------------------------------------- the compute loop
        # Without zero skipping the innermost level walks a tap's beats; with it the tap
        # scanner does, and the loop steps once per tap.
        levels = [("oy", 16, d.out_h), ("ox", 16, d.out_w), ("wy", 4, p_k), ("wx", 4, p_k)]
        levels += [("dy", 8, d.kernel), ("dx", 8, d.kernel)]
        strides = {"oy": ps_row, "ox": ps_cp, "wy": s_row, "wx": s_cp, "dy": row, "dx": cp}
        if not cfg.zero_skip:
            levels.append(("r", 20, rows))
            strides["r"] = words
        m.submodules.loop = loop = LoopNest("conv", [(level, width) for level, width, _ in levels])
        m.d.comb += [loop.count[level].eq(count) for level, _, count in levels]
        addr = loop.output("addr", ADDRESS_BITS, init, strides)
        iy = loop.output("iy", signed(18), -d.pad_top - ppt_s, {"oy": ps_s, "wy": d.stride, "dy": 1})
        ix = loop.output("ix", signed(18), -d.pad_left - pp_s, {"ox": ps_s, "wx": d.stride, "dx": 1})
        cy = loop.output("cy", signed(18), -ppt_s, {"oy": ps_s, "wy": d.stride})  # conv row * stride
        cx = loop.output("cx", signed(18), -pp_s, {"ox": ps_s, "wx": d.stride})
        real = Signal()
        m.d.comb += real.eq(~pooling | ((cy >= 0) & (cx >= 0) & (cy <= y_end) & (cx <= x_end)))
        tap_weights = loop.output("wtap", 20, 0, {"dy": kc, "dx": d.in_c})
        oaddr = loop.output("oaddr", ADDRESS_BITS, group_base, {"oy": o_row, "ox": d.out_c})
        pad = Signal()
        m.d.comb += pad.eq((iy < 0) | (iy >= d.in_h) | (ix < 0) | (ix >= d.in_w))

        # The group being computed uses bias/theta; the next group's parameters arrive in
        # bias_next/theta_next meanwhile and are copied over when it starts.
        bias = [Signal(signed(membrane), name=f"bias{lane}") for lane in range(lanes)]
        theta = [Signal(signed(membrane + 1), name=f"theta{lane}") for lane in range(lanes)]
        bias_next = [Signal(signed(membrane), name=f"bias_next{lane}") for lane in range(lanes)]
        theta_next = [Signal(signed(membrane + 1), name=f"theta_next{lane}") for lane in range(lanes)]
        # Weight-memory rows of the computed group and of the group being loaded: with room for
        # two groups (2 C k^2 <= wmem_depth) they alternate between row 0 and row C k^2, so the
        # next group streams in while this one computes; else both stay 0 and loading waits.
        read_upper, load_upper = Signal(), Signal()
        w_read_base = Mux(read_upper, fan_in, 0)
        w_load_base = Mux(load_upper, fan_in, 0)
        beat = syn.inp
        window = Cat(real, equals(loop.idx["wy"], 0) & equals(loop.idx["wx"], 0), loop.within("wy", "wx"))
        taps = _Taps(loop, pad, addr, tap_weights, w_read_base, cp, oaddr, window, beat.ready & tags.w_rdy)
        if cfg.zero_skip:
            stage = self._skipping_requests(m, taps, beat, wmems)
        else:
            stage = self._dense_requests(m, taps, beat, wmems[0])
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
        # The chunk's currents (the PE presents all L lanes until the last chunk is taken; the
        # serial array presents one chunk per beat) and thresholds.
        steps = range(cfg.timesteps)
        chunk_current = [
            [Signal(signed(membrane), name=f"chunk_current{lane}_{t}") for t in steps]
            for lane in range(lif_lanes)
        ]
        with m.Switch(chunk):
            for k in range(chunks):
                with m.Case(k):
                    for lane in range(lif_lanes):
                        m.d.comb += job.payload.threshold[lane].eq(theta[k * lif_lanes + lane])
                        if not cfg.serial_synapse:
                            source = syn.out.payload.current[k * lif_lanes + lane]
                            m.d.comb += [chunk_current[lane][t].eq(source[t]) for t in steps]
        if cfg.serial_synapse:
            for lane in range(lif_lanes):
                m.d.comb += [chunk_current[lane][t].eq(syn.out.payload.current[lane][t]) for t in steps]
        # Running maxima of the window: one row per chunk (lanes x steps currents) in a small
        # memory read without a clock, so one comparator per lane and step serves every chunk.
        # A padded conv position's current is the smallest, which never wins over a real one;
        # a window's first result overwrites whatever the row held.
        smallest = -(1 << (membrane - 1))
        m.submodules.pool_max = maxima = Memory(
            shape=lif_lanes * cfg.timesteps * membrane, depth=chunks, init=[]
        )
        best_row, keep = maxima.read_port(domain="comb"), maxima.write_port()
        pooled = [
            [Signal(signed(membrane), name=f"pooled{lane}_{t}") for t in steps] for lane in range(lif_lanes)
        ]
        taken = Signal()
        for lane in range(lif_lanes):
            for t in steps:
                best = best_row.data.word_select(lane * cfg.timesteps + t, membrane).as_signed()
                current = Mux(tag_real, chunk_current[lane][t], smallest)
                m.d.comb += [
                    pooled[lane][t].eq(Mux(tag_first | (current > best), current, best)),
                    job.payload.current[lane][t].eq(pooled[lane][t]),
                ]
        m.d.comb += [
            best_row.addr.eq(chunk),
            keep.addr.eq(chunk),
            keep.en.eq(taken),
            keep.data.eq(Cat(*(pooled[lane][t] for lane in range(lif_lanes) for t in steps))),
        ]
        left = Signal(signed(lanes.bit_length() + 2))
        m.d.comb += left.eq(tag_lanes - chunk * lif_lanes)
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
        computing = Signal()  # a group's loop runs or its jobs are not all written yet
        finishing = Signal()  # ... and this is its last cycle
        loaded = Signal()  # the next group's parameters and weights are all in
        swap = Signal()  # that group starts computing
        last_load = Signal()  # the group being loaded is the command's last
        load_left = Signal(signed(18))  # out_c minus the lanes of the groups loaded before
        m.d.comb += [
            finishing.eq(computing & drained),
            swap.eq(loaded & ~computing),
            last_load.eq(load_left <= lanes),
        ]

        # The compute side: a loaded group starts as soon as the previous one is drained.
        with m.If(swap):
            m.d.comb += loop.start.eq(1)
            m.d.sync += [computing.eq(1), read_upper.eq(load_upper)]
            m.d.sync += [
                reg.eq(value) for reg, value in zip(bias + theta, bias_next + theta_next, strict=True)
            ]
        with m.If(finishing):
            m.d.sync += [
                computing.eq(0),
                group_base.eq(group_base + lanes),
                lanes_left.eq(lanes_left - lanes),
            ]
            with m.If(lanes_left <= lanes):
                m.d.sync += self.busy.eq(0)

        # The loader: parameters, then weights, of one group after another.
        def after_swap() -> None:
            m.d.sync += load_left.eq(load_left - lanes)
            with m.If(last_load):
                m.next = "IDLE"
            with m.Elif(alternate):
                m.d.sync += load_upper.eq(~load_upper)
                m.next = "PARAMS"
            with m.Else():
                m.next = "WAIT"

        with m.FSM(name="conv_fsm"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [
                        self.busy.eq(1),
                        index.eq(0),
                        lanes_left.eq(d.out_c),
                        load_left.eq(d.out_c),
                        group_base.eq(d.dst),
                        load_upper.eq(0),
                    ]
                    m.next = "PARAMS"
            with m.State("PARAMS"):
                m.d.comb += words_in.ready.eq(1)
                with m.If(take):
                    for lane in range(lanes):
                        with m.If(equals(index, lane)):
                            m.d.sync += [
                                bias_next[lane].eq(incoming[:membrane]),
                                theta_next[lane].eq(incoming[32 : 33 + membrane]),
                            ]
                    m.d.sync += index.eq(index + 1)
                    with m.If(index == lanes - 1):
                        m.d.sync += [index.eq(0), sub.eq(0)]
                        m.next = "WEIGHTS"
            with m.State("WEIGHTS"):
                m.d.comb += words_in.ready.eq(1)
                m.d.comb += [w.wr_addr.eq(index + w_load_base) for w in wmems]
                m.d.comb += [w.wr_data.eq(full_word) for w in wmems]
                with m.If(take):
                    m.d.sync += assembled.eq(full_word)
                    if per_weight > 1:
                        m.d.sync += sub.eq(sub + 1)
                    with m.If(sub == per_weight - 1):
                        m.d.comb += [w.wr_en.eq(1) for w in wmems]
                        m.d.sync += [index.eq(index + 1), sub.eq(0)]
                        with m.If(index == fan_in - 1):
                            m.d.comb += loaded.eq(1)
                            m.d.sync += index.eq(0)
                            with m.If(swap):
                                after_swap()
                            with m.Else():
                                m.next = "FULL"
            with m.State("FULL"):
                m.d.comb += loaded.eq(1)
                with m.If(swap):
                    after_swap()
            with m.State("WAIT"):  # one weight-memory region: the group computing must end first
                with m.If(finishing):
                    m.next = "PARAMS"
        return m

    def _dense_requests(
        self, m: Module, taps: _Taps, beat: wiring.PureInterface, wmem: BankedMemory
    ) -> ReadStage:
        """Every word of every tap, ``K`` consecutive words a beat."""
        cfg, d = self._config, self.desc
        loop, pad, cp = taps.loop, taps.pad, taps.words
        words = cfg.words_per_beat
        first_word = loop.output("word", 21, 0, {"r": words})  # of the beat, within the tap
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
        stage = read_stage(
            m,
            name="conv",
            active=loop.active,
            ready=taps.ready,
            meta={
                "present": Cat(*present),
                "planes": Cat(*(Value.cast(p)[: len(plane0)] for p in planes)),
                "second_channel": second_channel,
                "last": loop.within("dy", "dx", "r"),
                "oaddr": taps.oaddr,
                "window": taps.window,
            },
        )
        m.d.comb += [
            loop.step.eq(loop.active & stage.advance),
            self.rd.addr.eq(taps.addr),
            self.rd.en.eq(loop.active & stage.advance & ~pad),
            wmem.rd_addr.eq((taps.weights + channel + taps.weight_base)[: len(wmem.rd_addr)]),
            wmem.rd_en.eq(stage.advance),
        ]
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
                if cfg.synapse_params().plane_bits:
                    m.d.comb += beat.payload.plane[k].eq(stage.meta["planes"].word_select(k, stage_planes))
        else:
            m.d.comb += [
                beat.payload.spikes.eq(Mux(stage.meta["present"][0], self.rd.data, 0)),
                Value.cast(beat.payload.weight).eq(wmem.rd_data),
            ]
            if cfg.synapse_params().plane_bits:
                m.d.comb += beat.payload.plane.eq(stage.meta["planes"])
        return stage

    def _skipping_requests(
        self, m: Module, taps: _Taps, beat: wiring.PureInterface, wmems: list[SimpleNamespace]
    ) -> ReadStage:
        """The non-zero words of every tap, one from each activation bank a beat
        (:class:`hw.accel.tap_scanner.TapScanner`)."""
        cfg, d = self._config, self.desc
        loop = taps.loop
        planes_max = cfg.numerics.input_bits
        offset_bits, shift = tap_divider(cfg)
        m.submodules.scanner = scanner = TapScanner(
            offset_bits=offset_bits, planes_bits=planes_max.bit_length(), shift=shift
        )
        recip = Signal(shift + 1, name="conv_recip")
        with m.Switch(d.planes_in):
            for planes in range(2, planes_max + 1):
                with m.Case(planes):
                    m.d.sync += recip.eq(reciprocal(planes, shift))
            with m.Default():  # one plane (other counts fail the descriptor check)
                m.d.sync += recip.eq(reciprocal(1, shift))
        wiring.connect(m, wiring.flipped(self.occ), scanner.occ)
        stage = read_stage(
            m,
            name="conv",
            active=scanner.valid,
            ready=taps.ready,
            meta={
                "present": scanner.present,
                "planes": Cat(*scanner.plane),
                "last": scanner.last,
                "oaddr": taps.oaddr,
                "window": taps.window,
            },
        )
        m.d.comb += [
            scanner.tap_valid.eq(loop.active),
            scanner.tap_addr.eq(taps.addr),
            scanner.tap_pad.eq(taps.pad),
            scanner.tap_last.eq(loop.within("dy", "dx")),
            scanner.words.eq(taps.words),
            scanner.planes.eq(d.planes_in),
            scanner.recip.eq(recip),
            scanner.advance.eq(stage.advance),
            loop.step.eq(scanner.tap_done),
            self.rd.addr.eq(scanner.even_addr),
            self.rd.odd_addr.eq(scanner.odd_addr),
            self.rd.split.eq(1),
            self.rd.en.eq(scanner.valid & stage.advance & scanner.present.any()),
        ]
        plane_bits = len(scanner.plane[0])
        for k, wmem in enumerate(wmems):
            m.d.comb += [
                wmem.rd_addr.eq((taps.weights + scanner.channel[k] + taps.weight_base)[: len(wmem.rd_addr)]),
                wmem.rd_en.eq(stage.advance),
                beat.payload.spikes[k].eq(Mux(stage.meta["present"][k], (self.rd.data, self.rd.next)[k], 0)),
                Value.cast(beat.payload.weight[k]).eq(wmem.rd_data),
            ]
            if cfg.synapse_params().plane_bits:
                m.d.comb += beat.payload.plane[k].eq(stage.meta["planes"].word_select(k, plane_bits))
        return stage
