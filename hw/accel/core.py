"""The accelerator core: command sequencer, activation memory, LIF unit and engines.

After ``start`` the sequencer reads commands from ``words_in``: it collects a
descriptor (:data:`protocol.descriptors.DESC_WORDS` words), checks magic, checksum,
opcode, command index and the field rules of :func:`protocol.descriptors.field_checks`,
then starts the engine of the opcode, which consumes the command's payload and
produces its output; ``END`` finishes the program. The activation memory (one read
and one write port) and the LIF unit are shared and routed to the running engine.

Errors (:class:`protocol.regmap.ErrorFlag`): a bad descriptor stops the program and
drains the input up to its TLAST; an input TLAST anywhere but on the last word of
``END`` stops it (``TRUNCATED``); an out-of-range activation address is suppressed
and flagged (``ADDRESS``); an accumulator or group overflow is flagged (``OVERFLOW``);
the last two let the program run to its end so the streams complete. Every engine is
reset when a program starts and when one is abandoned.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, ResetInserter, Signal, Value
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.accel.attention import AttentionEngine
from hw.accel.banked import BankedMemory
from hw.accel.conv import ConvEngine
from hw.accel.elementwise import AddEngine, PoolEngine
from hw.accel.head import HeadEngine
from hw.accel.layouts import DESCRIPTOR_LAYOUT
from hw.accel.lifunit import LIFUnit
from hw.accel.ports import word_stream
from hw.accel.transfer import LoadEngine, StoreEngine
from hw.arith import equals
from protocol.config import STREAM_BITS, AcceleratorConfig
from protocol.descriptors import DESC_WORDS, MAGIC, Opcode, field_checks
from protocol.regmap import DescriptorFault, ErrorFlag
from protocol.zero_skip import OCCUPANCY_ROW

__all__ = ["AcceleratorCore", "ENGINES"]

#: Opcode -> engine class (``END`` has none).
ENGINES = {
    Opcode.LOAD: LoadEngine,
    Opcode.STORE: StoreEngine,
    Opcode.CONV: ConvEngine,
    Opcode.POOL: PoolEngine,
    Opcode.ADD: AddEngine,
    Opcode.ATTENTION: AttentionEngine,
    Opcode.HEAD: HeadEngine,
}


class AcceleratorCore(wiring.Component):
    """The accelerator without its bus interfaces (see the module docstring).

    Parameters
    ----------
    config : AcceleratorConfig

    Attributes
    ----------
    words_in : In(word_stream())
        Commands (descriptors and payloads); ``last`` = TLAST.
    words_out : Out(word_stream())
        Output packets (stores, logits), each ending with ``last``.
    start : In(1)
        Pulse: run a program (ignored while busy).
    busy, done : Out(1)
        A program is running / the last one finished (cleared by ``start``).
    error : Out(4)
        Sticky :class:`~protocol.regmap.ErrorFlag` bits of the last program.
    detail : Out(32)
        ``FAULT | RULE << 8 | OPCODE << 16`` of a descriptor error (register ``DETAIL``).
    error_command : Out(32)
        Index of the command that raised the first error.
    commands : Out(32)
        Commands completed (``END`` included).
    cycles : Out(64)
        Cycles since ``start``, counting while busy.
    profile_addr : In(16), profile_data : Out(32)
        Profile read port: ``profile_data`` is the cycle count of command ``profile_addr``
        of the cycle before (0 beyond ``profile_depth``).
    """

    def __init__(self, config: AcceleratorConfig) -> None:
        if not isinstance(config, AcceleratorConfig):
            raise TypeError(f"AcceleratorCore needs an AcceleratorConfig, not {config!r}")
        self._config = config
        super().__init__(
            {
                "words_in": In(word_stream()),
                "words_out": Out(word_stream()),
                "start": In(1),
                "busy": Out(1),
                "done": Out(1),
                "error": Out(len(ErrorFlag)),
                "detail": Out(32),
                "error_command": Out(32),
                "commands": Out(32),
                "cycles": Out(64),
                "profile_addr": In(16),
                "profile_data": Out(32),
            }
        )

    @property
    def config(self) -> AcceleratorConfig:
        return self._config

    def elaborate(self, platform: object) -> Module:
        m = Module()
        cfg = self._config

        # ---------------------------------------------------------------- shared resources
        m.submodules.amem = amem = BankedMemory(
            width=cfg.timesteps,
            depth=cfg.amem_depth,
            banks=cfg.words_per_beat,
            split=cfg.zero_skip,
            words_per_row=cfg.amem_words_per_row,
        )
        m.submodules.profile = profile = Memory(shape=32, depth=cfg.profile_depth, init=[])
        profile_wr = profile.write_port()
        profile_rd = profile.read_port(transparent_for=())
        m.d.comb += [
            profile_rd.addr.eq(self.profile_addr),
            profile_rd.en.eq(1),
            self.profile_data.eq(Mux(self.profile_addr < cfg.profile_depth, profile_rd.data, 0)),
        ]

        desc_bits = Signal(DESCRIPTOR_LAYOUT.size)
        desc = data.View(DESCRIPTOR_LAYOUT, desc_bits)
        tmask = Signal(cfg.timesteps)
        m.d.comb += tmask.eq(Cat(*(desc.timesteps > t for t in range(cfg.timesteps))))

        reset_engines = Signal()
        lif = LIFUnit(cfg)
        m.submodules.lif = ResetInserter(reset_engines)(lif)
        engines = {op: cls(cfg) for op, cls in ENGINES.items()}
        for op, engine in engines.items():
            m.submodules[op.name.lower()] = ResetInserter(reset_engines)(engine)
            m.d.comb += [Value.cast(engine.desc).eq(desc_bits), engine.tmask.eq(tmask)]
        m.d.comb += lif.tmask.eq(tmask)

        # ---------------------------------------------------------------- sequencer state
        executing = Signal()
        running = {op: Signal(name=f"run_{op.name.lower()}") for op in engines}
        for op, flag in running.items():
            m.d.comb += flag.eq(executing & (desc.opcode == int(op)))
        engine_busy = Cat(*(engine.busy for engine in engines.values())).any()

        address_fault = self._route(m, engines, running, lif, amem)

        index = Signal(32)
        word = Signal(range(DESC_WORDS))
        checksum = Signal(32)
        tlast = Signal()
        command_start = Signal(64)
        errors = Signal(len(ErrorFlag))
        raise_error = Signal(len(ErrorFlag))
        take = Signal()
        m.d.comb += [take.eq(self.words_in.valid & self.words_in.ready), self.error.eq(errors)]

        with m.If(self.busy):
            m.d.sync += self.cycles.eq(self.cycles + 1)
        # Flags raised by the engines' datapath while a command runs.
        overflow = engines[Opcode.CONV].overflow | engines[Opcode.ATTENTION].overflow
        m.d.comb += raise_error.eq(
            Mux(overflow, int(ErrorFlag.OVERFLOW), 0) | Mux(address_fault, int(ErrorFlag.ADDRESS), 0)
        )
        with m.If(raise_error.any()):
            m.d.sync += errors.eq(errors | raise_error)
            with m.If(~errors.any()):
                m.d.sync += self.error_command.eq(index)

        def fail(flag: ErrorFlag, detail: Value | int = 0) -> None:
            m.d.sync += [errors.eq(errors | int(flag)), self.detail.eq(detail)]
            with m.If(~errors.any()):
                m.d.sync += self.error_command.eq(index)

        def finish() -> None:
            m.d.sync += [self.busy.eq(0), self.done.eq(1)]
            m.next = "IDLE"

        # Descriptor checks, in order of precedence.
        rules = field_checks(desc, cfg, select=Mux, equals=equals)
        opcode_ok = Cat(*(equals(desc.opcode, int(op)) for op in Opcode)).any()
        rule_fail = Signal()
        rule_number = Signal(8)
        for op, op_rules in rules.items():
            with m.If(equals(desc.opcode, int(op))):
                for number, ok in reversed(list(enumerate(op_rules.values()))):
                    with m.If(~ok):
                        m.d.comb += [rule_fail.eq(1), rule_number.eq(number)]
        fault = Signal(4)
        with m.If(desc.magic != MAGIC):
            m.d.comb += fault.eq(DescriptorFault.MAGIC)
        with m.Elif(checksum != 0):
            m.d.comb += fault.eq(DescriptorFault.CHECKSUM)
        with m.Elif(~opcode_ok):
            m.d.comb += fault.eq(DescriptorFault.OPCODE)
        with m.Elif(desc.index != index):
            m.d.comb += fault.eq(DescriptorFault.INDEX)
        with m.Elif(rule_fail):
            m.d.comb += fault.eq(DescriptorFault.FIELD)

        def complete_command() -> None:
            m.d.comb += [
                profile_wr.en.eq(1),
                profile_wr.addr.eq(index),
                profile_wr.data.eq(self.cycles - command_start),
            ]
            m.d.sync += [index.eq(index + 1), self.commands.eq(self.commands + 1)]

        with m.FSM(name="sequencer"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.comb += reset_engines.eq(1)
                    m.d.sync += [
                        self.busy.eq(1),
                        self.done.eq(0),
                        errors.eq(0),
                        self.detail.eq(0),
                        self.error_command.eq(0),
                        self.commands.eq(0),
                        self.cycles.eq(0),
                        index.eq(0),
                        word.eq(0),
                        checksum.eq(0),
                        command_start.eq(0),
                    ]
                    m.next = "FETCH"
            with m.State("FETCH"):
                m.d.comb += self.words_in.ready.eq(1)
                with m.If(take):
                    payload = self.words_in.payload
                    m.d.sync += [
                        desc_bits.eq(Cat(desc_bits[STREAM_BITS:], payload.data)),
                        checksum.eq(checksum + payload.data[:32] + payload.data[32:]),
                        word.eq(word + 1),
                        tlast.eq(payload.last),
                    ]
                    with m.If(word == DESC_WORDS - 1):
                        m.d.sync += word.eq(0)
                        m.next = "CHECK"
                    with m.Elif(payload.last):
                        fail(ErrorFlag.TRUNCATED)
                        finish()
            with m.State("CHECK"):
                m.d.sync += checksum.eq(0)
                with m.If(fault != 0):
                    fail(ErrorFlag.DESCRIPTOR, Cat(fault, Const(0, 4), rule_number, desc.opcode))
                    with m.If(tlast):
                        finish()
                    with m.Else():
                        m.next = "DRAIN"
                with m.Elif(desc.opcode == int(Opcode.END)):
                    complete_command()
                    with m.If(tlast):
                        finish()
                    with m.Else():
                        m.next = "DRAIN"
                with m.Elif(tlast):
                    fail(ErrorFlag.TRUNCATED)
                    finish()
                with m.Else():
                    for op, engine in engines.items():
                        m.d.comb += engine.start.eq(desc.opcode == int(op))
                    m.next = "EXEC"
            with m.State("EXEC"):
                m.d.comb += executing.eq(1)
                with m.If(take & self.words_in.payload.last):
                    # The stream ended inside a payload: abandon the command.
                    m.d.comb += reset_engines.eq(1)
                    fail(ErrorFlag.TRUNCATED)
                    finish()
                with m.Elif(~engine_busy):
                    complete_command()
                    m.d.sync += command_start.eq(self.cycles + 1)
                    m.next = "FETCH"
            with m.State("DRAIN"):
                # Swallow the rest of a refused program so the sender's transfer completes.
                m.d.comb += self.words_in.ready.eq(1)
                with m.If(take & self.words_in.payload.last):
                    finish()
        return m

    def _occupancy(self, m: Module, port: object, wr_addr: Value, writes: list[tuple[Value, Value]]) -> None:
        """The occupancy memory: bit ``a mod 32`` of row ``a // 32`` says whether activation word
        ``a`` is non-zero; every activation write updates its bit, so the two never disagree.

        ``writes`` are the (enable, data) of words ``wr_addr`` and ``wr_addr + 1``. The rows
        are two memories, even and odd rows, so a pair of words in two rows (``a mod 32 = 31``)
        updates both in one cycle; a read takes the addressed row from either."""
        rows = -(-self._config.amem_depth // OCCUPANCY_ROW)
        shift = (OCCUPANCY_ROW - 1).bit_length()
        halves = []
        depths = [max(1, -(-(rows - parity) // 2)) for parity in range(2)]
        for parity in range(2):
            memory = Memory(shape=OCCUPANCY_ROW, depth=depths[parity], init=[])
            m.submodules[f"occupancy{parity}"] = memory
            halves.append((memory.write_port(granularity=1), memory.read_port(transparent_for=())))
        for parity, (write, read) in enumerate(halves):
            row_addr = Signal(len(write.addr), name=f"occupancy{parity}_row")
            enables, bits = [], []
            for offset, (enable, word) in enumerate(writes):
                address = wr_addr + offset if offset else wr_addr
                hit = enable & (address[shift] == parity)
                with m.If(hit):
                    m.d.comb += row_addr.eq(address[shift + 1 : shift + 1 + len(row_addr)])
                bit = Signal(OCCUPANCY_ROW, name=f"occupancy{parity}_bit{offset}")
                m.d.comb += bit.eq(Mux(hit, 1 << address[:shift], 0))
                enables.append(bit)
                bits.append(Mux(word.any(), bit, 0))
            m.d.comb += [
                write.addr.eq(row_addr),
                write.en.eq(enables[0] | enables[1]),
                write.data.eq(bits[0] | bits[1]),
                read.addr.eq(port.addr[1:]),
                read.en.eq(port.en & (port.addr < rows) & (port.addr[1:] < depths[parity])),
            ]
        odd = Signal()
        with m.If(port.en):
            m.d.sync += odd.eq(port.addr[0])
        m.d.comb += port.data.eq(Mux(odd, halves[1][1].data, halves[0][1].data))

    def _route(self, m: Module, engines: dict, running: dict, lif: LIFUnit, amem: BankedMemory) -> Signal:
        """Connect the running engine to the shared memory ports, streams and the LIF unit.

        Returns the signal flagging an activation access beyond the memory (suppressed)."""
        cfg = self._config
        depth = cfg.amem_depth
        readers = [(running[op], e.rd) for op, e in engines.items() if "rd" in e.signature.members]
        writers = [(running[op], e.wr) for op, e in engines.items() if "wr" in e.signature.members]
        writers.append((running[Opcode.CONV] | running[Opcode.ATTENTION], lif.wr))

        rd_addr, rd_en = Signal(32), Signal()
        wr_addr, wr_en, wr_data = Signal(32), Signal(), Signal(cfg.timesteps)
        # A writer of pairs also writes word wr_addr + 1 (the LIF unit, two lanes a cycle).
        wr_next_en, wr_next_data = Signal(), Signal(cfg.timesteps)
        for active, port in readers:
            m.d.comb += port.data.eq(amem.rd_data)
            if "next" in port.signature.members:
                m.d.comb += port.next.eq(amem.rd_next)
            with m.If(active):
                m.d.comb += [rd_addr.eq(port.addr), rd_en.eq(port.en)]
        for active, port in writers:
            with m.If(active & port.en):
                m.d.comb += [wr_addr.eq(port.addr), wr_en.eq(1), wr_data.eq(port.data)]
                if "next_en" in port.signature.members:
                    m.d.comb += [wr_next_en.eq(port.next_en), wr_next_data.eq(port.next_data)]
        bad_read = rd_en & (rd_addr >= depth)
        bad_write = wr_en & ((wr_addr >= depth) | (wr_next_en & (wr_addr + 1 >= depth)))
        if cfg.zero_skip:
            conv_rd = engines[Opcode.CONV].rd
            split = running[Opcode.CONV] & conv_rd.split
            bad_read = bad_read | (rd_en & split & (conv_rd.odd_addr >= depth))
            m.d.comb += [amem.rd_split.eq(split), amem.rd_odd_row.eq(conv_rd.odd_addr[1 : len(amem.rd_addr)])]
            self._occupancy(
                m,
                engines[Opcode.CONV].occ,
                wr_addr,
                [(wr_en & ~bad_write, wr_data), (wr_en & wr_next_en & ~bad_write, wr_next_data)],
            )
        fault = Signal()
        m.d.comb += [
            fault.eq(bad_read | bad_write),
            amem.rd_addr.eq(rd_addr[: len(amem.rd_addr)]),
            amem.rd_en.eq(rd_en & ~bad_read),
            amem.wr_addr.eq(wr_addr[: len(amem.wr_addr)]),
            amem.wr_data.eq(wr_data),
            amem.wr_en.eq(wr_en & ~bad_write),
        ]
        if cfg.words_per_beat == 2:
            m.d.comb += [amem.wr_next_en.eq(wr_next_en), amem.wr_next_data.eq(wr_next_data)]

        for op, engine in engines.items():
            members = engine.signature.members
            if "words_in" in members:
                port = engine.words_in
                m.d.comb += [
                    port.valid.eq(self.words_in.valid & running[op]),
                    port.payload.eq(self.words_in.payload),
                ]
                with m.If(running[op]):
                    m.d.comb += self.words_in.ready.eq(port.ready)
            if "words_out" in members:
                port = engine.words_out
                m.d.comb += port.ready.eq(self.words_out.ready & running[op])
                with m.If(running[op]):
                    m.d.comb += [self.words_out.valid.eq(port.valid), self.words_out.payload.eq(port.payload)]
            if "lif_job" in members:
                m.d.comb += engine.lif_idle.eq(lif.idle)
                with m.If(running[op]):
                    m.d.comb += [
                        lif.job.valid.eq(engine.lif_job.valid),
                        lif.job.payload.eq(engine.lif_job.payload),
                        engine.lif_job.ready.eq(lif.job.ready),
                    ]
        return fault
