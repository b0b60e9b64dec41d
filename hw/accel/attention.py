"""``ATTENTION``: spiking attention per head and token group -> attention LIF.

Per head ``h`` (features ``h d .. h d + d - 1``) and token group, using the
spike-attention PE (:class:`hw.attention_pe.SpikeAttention`, used as is):

* ``KV``: for every position ``n`` of the group, read the ``d`` K words and ``d`` V words
  (one word = one feature's ``T`` steps; two a cycle with the two-bank memory) into a
  transposer, then send the group's rows ``(t, n)`` to the PE (``K^T V`` counters);
* ``Q``: the same with the ``d`` Q words; every query row's output (``d`` currents) is
  written to the current memory at ``n T_hw + t``.

Groups: ``joint`` one group of all ``(t, n)``; ``temporal`` one group per position
(rows ``t``); ``spatial`` one group per step ``t`` (rows ``(t, n)`` for all ``n``).
After the head's groups, the ``LIF`` pass reads, per position and chunk of
``lif_lanes`` features, the ``T`` rows of the current memory and sends one LIF job
(threshold: the descriptor's attention threshold), whose spikes land at
``dst + n D + h d + chunk``.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, Value, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import Out

from hw.accel.ports import engine_members
from hw.arith import equals, word_at
from hw.attention_pe import SpikeAttention
from protocol.config import AcceleratorConfig
from protocol.descriptors import Grouping

__all__ = ["AttentionEngine"]


class AttentionEngine(wiring.Component):
    """The ``ATTENTION`` command engine (see the module docstring).

    Attributes
    ----------
    start, desc, tmask, busy :
        Engine control.
    rd : Out(amem_read_signature)
        Q, K, V word reads.
    lif_job : Out(stream.Signature(lif_job_layout))
        Attention-LIF jobs; ``lif_idle`` reports all are written.
    overflow : Out(1)
        The PE's sticky group-overflow flag.
    """

    def __init__(self, config: AcceleratorConfig) -> None:
        self._config = config
        # With the two-bank memory a read also returns the next word: two features a cycle.
        self._words = config.words_per_beat
        super().__init__(
            {**engine_members(config, read=True, read_pairs=self._words == 2, lif=True), "overflow": Out(1)}
        )

    def elaborate(self, platform: object) -> Module:
        m = Module()
        cfg = self._config
        d = self.desc
        dim, steps, lif_lanes = cfg.head_dim, cfg.timesteps, cfg.lif_lanes
        membrane = cfg.numerics.membrane_bits

        m.submodules.pe = pe = SpikeAttention(cfg.attention_params())
        m.submodules.cmem = cmem = Memory(shape=dim * membrane, depth=cfg.cmem_depth, init=[])
        cmem_wr = cmem.write_port()
        cmem_rd = cmem.read_port(transparent_for=())
        m.d.comb += [self.overflow.eq(pe.group_overflow), pe.out.ready.eq(1)]

        joint = equals(d.grouping, int(Grouping.JOINT))
        temporal = equals(d.grouping, int(Grouping.TEMPORAL))
        spatial = equals(d.grouping, int(Grouping.SPATIAL))
        hd = d.head_dim
        # Loop state: head, group, position within the group, position n, row t, word j, chunk.
        head = Signal(8)
        head_off = Signal(16)  # h d
        group = Signal(16)
        pos = Signal(16)
        n = Signal(16)
        n_off = Signal(32)  # n D
        row = Signal(range(steps))
        j = Signal(range(2 * dim + 2))
        chunk = Signal(range(max(dim // lif_lanes, 2)))
        query = Signal()  # 0: K/V phase, 1: query phase
        groups = Mux(joint, 1, Mux(temporal, d.in_w, d.timesteps))
        positions = Mux(temporal, 1, d.in_w)
        first_row = Mux(spatial, group, 0)
        last_row = Mux(spatial, group, d.timesteps - 1)
        last_pos = pos == positions - 1
        last_chunk = (chunk + 1) * lif_lanes >= hd

        # ---------------------------------------------------------------- word reads and the transposer
        # K words land in kbits, V (K/V phase) or Q (query phase) words in vbits.
        kbits = [Signal(steps, name=f"kbits{f}") for f in range(dim)]
        vbits = [Signal(steps, name=f"vbits{f}") for f in range(dim)]
        reading = Signal()
        cap_valid, cap_j = Signal(), Signal(range(2 * dim + 2))
        m.d.comb += [
            self.rd.en.eq(reading),
            self.rd.addr.eq(
                Mux(query, d.src0, Mux(j < hd, d.src1, d.src2)) + n_off + head_off + Mux(j < hd, j, j - hd)
            ),
        ]
        m.d.sync += [cap_valid.eq(reading), cap_j.eq(j)]
        with m.If(cap_valid):
            for f in range(dim):
                with m.If(equals(cap_j, f)):
                    m.d.sync += kbits[f].eq(self.rd.data)
                with m.If(cap_j == hd + f):
                    m.d.sync += vbits[f].eq(self.rd.data)
                if self._words == 2 and f > 0:
                    # The pair's second word: the next K feature, or the next V (Q) feature
                    # when the pair started among them (an odd hd's last K pair ends in
                    # a word past the head, which the feature mask drops).
                    with m.If(equals(cap_j, f - 1)):
                        m.d.sync += kbits[f].eq(self.rd.next)
                    with m.If((cap_j == hd + f - 1) & (cap_j >= hd)):
                        m.d.sync += vbits[f].eq(self.rd.next)
        feature_mask = Signal(dim)
        m.d.comb += feature_mask.eq((1 << hd) - 1)

        def row_of(bits: list[Signal]) -> Value:
            return Cat(*(word_at(b, row, 1) for b in bits)) & feature_mask

        # ---------------------------------------------------------------- PE rows and the current memory
        group_end = last_pos & (row == last_row)
        m.d.comb += [
            pe.kv.payload.k.eq(row_of(kbits)),
            pe.kv.payload.v.eq(row_of(vbits)),
            pe.kv.payload.last.eq(group_end),
            pe.q.payload.q.eq(row_of(vbits)),
            pe.q.payload.last.eq(group_end),
        ]
        cmem_addr = Cat(row, n)[: len(cmem_wr.addr)]  # n T_hw + t (T_hw is a power of two)
        write_addr = Signal.like(cmem_wr.addr)
        with m.If(pe.q.valid & pe.q.ready):
            m.d.sync += write_addr.eq(cmem_addr)
        m.d.comb += [
            cmem_wr.addr.eq(write_addr),
            cmem_wr.data.eq(pe.out.payload.current.as_value()),
            cmem_wr.en.eq(pe.out.valid),
        ]

        # ---------------------------------------------------------------- LIF pass: gather T rows per chunk
        gather = [Signal(lif_lanes * membrane, name=f"gather{t}") for t in range(steps)]
        lif_reading = Signal()
        lif_cap, lif_cap_t = Signal(), Signal(range(steps))
        m.d.comb += [cmem_rd.addr.eq(cmem_addr), cmem_rd.en.eq(lif_reading)]
        m.d.sync += [lif_cap.eq(lif_reading), lif_cap_t.eq(row)]
        with m.If(lif_cap):
            for t in range(steps):
                with m.If(equals(lif_cap_t, t)):
                    m.d.sync += gather[t].eq(word_at(cmem_rd.data, chunk, lif_lanes * membrane))
        job = self.lif_job
        for lane in range(lif_lanes):
            for t in range(steps):
                value = gather[t][lane * membrane : (lane + 1) * membrane].as_signed()
                m.d.comb += job.payload.current[lane][t].eq(Mux(self.tmask[t], value, 0))
            m.d.comb += job.payload.threshold[lane].eq(d.threshold[: membrane + 1].as_signed())
        left = Signal(signed(10))
        m.d.comb += [
            left.eq(hd - chunk * lif_lanes),
            job.payload.addr.eq(d.dst + n_off + head_off + chunk * lif_lanes),
            job.payload.lanes.eq(Mux(left >= lif_lanes, lif_lanes, left)),
        ]

        # ---------------------------------------------------------------- sequencing
        def read_position(first_word: Value, state: str = "READ") -> None:
            m.d.sync += j.eq(first_word)
            m.next = state

        def first_group() -> None:
            m.d.sync += [group.eq(0), pos.eq(0), n.eq(0), n_off.eq(0), query.eq(0)]
            read_position(0)

        with m.FSM(name="attention_fsm"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [self.busy.eq(1), head.eq(0), head_off.eq(0)]
                    first_group()
            with m.State("READ"):
                # One word per cycle, or two (K/V: 2 ceil(d / 2) reads, Q: ceil(d / 2)), then
                # one cycle for the last word.
                m.d.comb += reading.eq(j < 2 * hd)
                if self._words == 2:  # a K pair never runs into the V words
                    m.d.sync += j.eq(Mux((j < hd) & (j + 2 > hd), hd, j + 2))
                else:
                    m.d.sync += j.eq(j + 1)
                with m.If(j >= 2 * hd):
                    m.d.sync += row.eq(first_row)
                    m.next = "EMIT"
            with m.State("EMIT"):
                m.d.comb += [pe.kv.valid.eq(~query), pe.q.valid.eq(query)]
                with m.If(Mux(query, pe.q.ready, pe.kv.ready)):
                    m.d.sync += row.eq(row + 1)
                    with m.If(row == last_row):
                        with m.If(~last_pos):
                            m.d.sync += [pos.eq(pos + 1), n.eq(n + 1), n_off.eq(n_off + d.in_c)]
                            read_position(Mux(query, hd, 0))
                        with m.Elif(~query):
                            # The group's keys are in; its queries start at its first position.
                            m.d.sync += [
                                query.eq(1),
                                pos.eq(0),
                                n.eq(Mux(temporal, n, 0)),
                                n_off.eq(Mux(temporal, n_off, 0)),
                            ]
                            read_position(hd)
                        with m.Elif(group != groups - 1):
                            m.d.sync += [
                                query.eq(0),
                                group.eq(group + 1),
                                pos.eq(0),
                                n.eq(Mux(temporal, n + 1, 0)),
                                n_off.eq(Mux(temporal, n_off + d.in_c, 0)),
                            ]
                            read_position(0)
                        with m.Else():
                            m.d.sync += [n.eq(0), n_off.eq(0), chunk.eq(0), row.eq(0)]
                            m.next = "LIF_GAP"
            with m.State("LIF_GAP"):
                # The last query's currents are written this cycle; read the memory afterwards.
                m.next = "LIF_READ"
            with m.State("LIF_READ"):
                m.d.comb += lif_reading.eq(1)
                m.d.sync += row.eq(row + 1)
                with m.If(row == d.timesteps - 1):
                    m.d.sync += row.eq(0)
                    m.next = "LIF_WAIT"
            with m.State("LIF_WAIT"):
                m.next = "LIF_SEND"
            with m.State("LIF_SEND"):
                m.d.comb += job.valid.eq(1)
                with m.If(job.ready):
                    m.d.sync += chunk.eq(chunk + 1)
                    m.next = "LIF_READ"
                    with m.If(last_chunk):
                        m.d.sync += [chunk.eq(0), n.eq(n + 1), n_off.eq(n_off + d.in_c)]
                        with m.If(n == d.in_w - 1):
                            m.d.sync += [head.eq(head + 1), head_off.eq(head_off + hd)]
                            with m.If(head == d.heads - 1):
                                m.next = "DRAIN"
                            with m.Else():
                                first_group()
            with m.State("DRAIN"):
                with m.If(self.lif_idle):
                    m.d.sync += self.busy.eq(0)
                    m.next = "IDLE"
        return m
