"""Analytic cycle model of the accelerator, per command (docs/accelerator.md, "Cycle model").

Every formula follows the engine's state machine with the input stream always valid
and the output stream always ready; the constants are the fixed per-command and
per-group overheads of those state machines (descriptor fetch, setup, pipeline fill
and drain). A real sender may start a few cycles after ``START``; those cycles count
towards the first command. ``tests/test_accel_verilator.py`` checks the formulas against the core's
own per-command cycle counters (the ``PROFILE`` registers) within 5%.

:func:`estimate` gives one :class:`CommandEstimate` per command of a compiled
:class:`~protocol.program.Program`; :func:`report` adds the totals (cycles, frames per
second, stream / DDR traffic, on-chip memory, synaptic operations per cycle and
utilization of the synapse array). A band-tiled program (docs/accelerator.md, section 6)
is reported as what it does: every band's LOAD, CONV (with its weights), POOL and STORE
is a command of the program, and the stream traffic counts every word in both
directions; :func:`plan` adds the stages' band counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from protocol.bands import BandedStage
from protocol.config import STREAM_BITS, AcceleratorConfig
from protocol.descriptors import DESC_WORDS, Descriptor, Grouping, Opcode
from protocol.program import Program
from protocol.zero_skip import window_cycles

__all__ = [
    "CommandEstimate",
    "PerfReport",
    "command_cycles",
    "estimate",
    "report",
    "plan",
    "COMMAND_OVERHEAD",
]

#: Cycles of every command outside its engine: descriptor fetch, check and completion.
COMMAND_OVERHEAD = DESC_WORDS + 2
#: Extra cycles of a LOAD / STORE / POOL / ADD engine (setup, pipeline fill and drain).
_TRANSFER_EXTRA = {Opcode.LOAD: 0, Opcode.STORE: 1, Opcode.POOL: 2, Opcode.ADD: 2}


@dataclass(frozen=True)
class CommandEstimate:
    """Model figures of one command.

    Attributes
    ----------
    index, name, opcode:
        The command.
    cycles:
        Predicted cycles (as the ``PROFILE`` register counts them).
    synaptic_ops:
        Useful synaptic operations (spike x weight accumulates, one per bit plane and time step).
    words_in, words_out:
        64-bit stream words consumed and produced (descriptor included).
    """

    index: int
    name: str
    opcode: Opcode
    cycles: int
    synaptic_ops: int = 0
    words_in: int = 0
    words_out: int = 0


def _position_write_cycles(cfg: AcceleratorConfig) -> int:
    """Cycles the LIF unit's writer takes for one output position of a group: its ``L / lif_lanes``
    jobs."""
    return cfg.chunks * cfg.writer_cycles_per_job


def _skipping_compute(d: Descriptor, cfg: AcceleratorConfig, occupied: np.ndarray, tail: int) -> int:
    """Compute cycles of one output-channel group of a zero-skipping CONV.

    Dot product ``j`` holds the array for its scan cycles (:func:`protocol.zero_skip.window_cycles`)
    and the flush (``hold``); its first set-up cycle hides in the previous flush. Position
    ``i``'s jobs are ready when its window's last dot product is (``T_i``) and leave after
    the previous position's (``w`` cycles each, :func:`_position_write_cycles`):
    ``done_i = max(T_i, done_(i-1) + w)``.
    With equal dot products this is the dense formula's ``max(computing, writing)``.
    """
    beats, setup = window_cycles(d, occupied)
    hold = 1 if cfg.serial_synapse else cfg.chunks - 1
    per_dot = beats - setup + hold
    ready = np.cumsum(per_dot.sum(axis=1)) + int(setup[0, 0])
    done = -(1 << 62)
    for t in ready.tolist():
        done = max(t, done + _position_write_cycles(cfg))
    return done + tail


def _conv_cycles(
    d: Descriptor, cfg: AcceleratorConfig, occupied: np.ndarray | None = None
) -> tuple[int, int]:
    """``(cycles, synaptic ops)`` of a CONV; with ``zero_skip``, for the activation memory's
    ``occupied`` words (``None``: every word non-zero, the most cycles)."""
    groups = -(-d.out_c // cfg.lanes)
    beats = d.kernel * d.kernel * cfg.rows_per_tap(d.in_c, d.planes_in)  # per result
    positions = d.out_h * d.out_w  # LIF jobs' positions
    # A pooled CONV computes every conv position of every window (padded ones included) and
    # sends LIF jobs for the window's last one only.
    window = d.pool_kernel * d.pool_kernel if d.pool_kernel else 1
    latency = cfg.lif_params().latency
    # Compute bound: one beat per cycle. With the synapse PE a result holds the array's
    # input for chunks - 1 cycles while its LIF jobs leave; the serial array instead takes
    # one flush cycle per result (and its result registers let the jobs leave meanwhile),
    # which also delays the result by a cycle. After the group's last beat its jobs pass
    # the LIF chain and the writer (lanes cycles).
    hold = 1 if cfg.serial_synapse else cfg.chunks - 1
    delay = 1 if cfg.serial_synapse else 0
    write = _position_write_cycles(cfg)
    computing = positions * window * (beats + hold) - hold + delay + latency + write + 3
    # Writer bound (short dot products): the writer, `lanes` cycles per job position, runs
    # without a break from the first job on. Both expressions agree at the boundary.
    writing = window * (beats + hold) - hold + delay + latency + positions * write + 3
    fan_in = d.in_c * d.kernel * d.kernel  # weight-memory words of a group
    if cfg.zero_skip:
        if occupied is None:
            occupied = np.ones(cfg.amem_depth, dtype=bool)
        computing = writing = _skipping_compute(d, cfg, occupied, delay + latency + write + 3 - hold)
    loading = cfg.lanes + fan_in * cfg.stream_words_per_weight_word
    compute = max(computing, writing)
    if 2 * fan_in <= cfg.wmem_depth:
        # Two groups' weights fit: the next group streams in while this one computes, and
        # starts when both are done (its loop starts a cycle after this one's drains).
        cycles = loading + compute - 1 + (groups - 1) * max(loading, compute + 1)
    else:
        cycles = groups * (loading + compute) - 1
    conv_positions = positions
    if d.pool_kernel:  # the conv positions the windows read (a band's last rows may be unread)
        conv_h = (d.in_h + d.pad_top + d.pad_left - d.kernel) // d.stride + 1
        read_h = (d.out_h - 1) * d.pool_stride + d.pool_kernel - d.pool_pad_top
        conv_positions = min(conv_h, read_h) * ((d.in_w + 2 * d.pad_left - d.kernel) // d.stride + 1)
    ops = d.timesteps * conv_positions * d.out_c * d.in_c * d.kernel * d.kernel * d.planes_in
    return cycles, ops


def _lif_jobs(count: int, pace: int, cfg: AcceleratorConfig) -> tuple[int, int]:
    """``(engine cycles, writer drain)`` of ``count`` LIF jobs, the next offered ``pace``
    cycles after the previous one was accepted.

    Cycle by cycle, as :class:`hw.accel.lifunit.LIFUnit` is built: the LIF array is a
    ``latency``-stage pipeline that stalls as a whole while its output beat cannot enter
    the spike FIFO (``inp.ready = ~out.valid | out.ready``), the FIFO holds
    :attr:`~protocol.config.AcceleratorConfig.spike_fifo_depth` beats, and the writer
    empties one beat in :attr:`~protocol.config.AcceleratorConfig.writer_cycles_per_job`
    cycles. The first value counts from the first offer to the last job's acceptance, the
    second from then until its spikes are written.
    """
    return _lif_queue(count, pace, cfg.lif_params().latency, cfg.writer_cycles_per_job, cfg.spike_fifo_depth)


@lru_cache(maxsize=256)
def _lif_queue(count: int, pace: int, latency: int, service: int, depth: int) -> tuple[int, int]:
    # Every block of a model repeats the same attention shape: simulate each once.
    stages = [False] * latency  # stages[-1] is the array's output register
    level = 0  # beats in the spike FIFO
    lane = 0  # the writer's position in the FIFO's head beat
    accepted, cycle, last_accept = 0, 0, 0
    offer_at = 0
    while True:
        out_ready = level < depth
        advance = not stages[-1] or out_ready
        take = accepted < count and cycle >= offer_at and advance
        write = stages[-1] and out_ready
        pop = level > 0 and lane == service - 1
        if level > 0:
            lane = 0 if pop else lane + 1
        level += int(write) - int(pop)
        if advance:
            stages = [take, *stages[:-1]]
        if take:
            accepted += 1
            last_accept = cycle
            offer_at = cycle + pace
        if accepted == count and not any(stages) and level == 0:
            return last_accept, cycle - last_accept
        cycle += 1


def _attention_cycles(d: Descriptor, cfg: AcceleratorConfig) -> int:
    t, n, hd = d.timesteps, d.in_w, d.head_dim
    grouping = Grouping(d.grouping)
    groups = {Grouping.JOINT: 1, Grouping.TEMPORAL: n, Grouping.SPATIAL: t}[grouping]
    positions = n if grouping != Grouping.TEMPORAL else 1
    rows = t if grouping != Grouping.SPATIAL else 1
    # K/V: 2 ceil(d / K) word reads + 1 + one row per cycle; Q: ceil(d / K) reads + 1 + rows.
    reads = -(-hd // cfg.words_per_beat)
    kv = positions * (2 * reads + 1 + rows)
    q = positions * (reads + 1 + rows)
    # LIF pass: a job per position and chunk of lif_lanes features, offered every t + 2
    # cycles (t current reads, a wait, the send); the writer drains a head's jobs while the
    # next head computes, so only the last head's drain adds to the command.
    engine, drain = _lif_jobs(n * -(-hd // cfg.lif_lanes), t + 2, cfg)
    lif = 3 + t + engine
    return d.heads * (groups * (kv + q) + lif) + drain


def _pool_cycles(d: Descriptor, cfg: AcceleratorConfig) -> int:
    """One window element per cycle for ``words_per_beat`` channels at once
    (hw.accel.elementwise.PoolEngine)."""
    return d.out_h * d.out_w * -(-d.in_c // cfg.words_per_beat) * d.kernel * d.kernel


def _head_cycles(d: Descriptor, cfg: AcceleratorConfig) -> int:
    per = STREAM_BITS // cfg.numerics.weight_bits
    words = -(-d.in_c // per)
    pool = d.in_c * d.in_w * -(-d.planes_in // cfg.words_per_beat) + 2  # K planes a read
    per_class = 1 + words + d.in_c + 2
    return pool + d.classes * per_class


def command_cycles(
    d: Descriptor, cfg: AcceleratorConfig, occupied: np.ndarray | None = None
) -> tuple[int, int]:
    """``(cycles, synaptic ops)`` of one command on ``cfg``; ``occupied`` (the activation
    memory's non-zero words when the command starts) makes a zero-skipping CONV's count
    that of its data (:mod:`protocol.zero_skip`)."""
    op = d.opcode
    if op == Opcode.END:
        return DESC_WORDS, 0
    if op in (Opcode.LOAD, Opcode.STORE):
        engine = -(-d.count // cfg.transfer_words_per_cycle) + _TRANSFER_EXTRA[op]
    elif op == Opcode.POOL:
        engine = _pool_cycles(d, cfg) + _TRANSFER_EXTRA[op]
    elif op == Opcode.ADD:
        # Two cycles per visit of ``words_per_beat`` output planes (hw.accel.elementwise.AddEngine).
        engine = d.count * -(-d.planes_out // cfg.words_per_beat) * 2 + _TRANSFER_EXTRA[op]
    elif op == Opcode.CONV:
        engine, ops = _conv_cycles(d, cfg, occupied)
        return COMMAND_OVERHEAD + engine, ops
    elif op == Opcode.ATTENTION:
        engine = _attention_cycles(d, cfg)
    elif op == Opcode.HEAD:
        engine = _head_cycles(d, cfg)
    else:  # pragma: no cover - Opcode is closed
        raise ValueError(f"unknown opcode {op!r}")
    return COMMAND_OVERHEAD + engine, 0


def estimate(program: Program) -> list[CommandEstimate]:
    """Per-command estimates of a program (host-fed LOAD payloads counted with their real size)."""
    cfg = program.config
    out: list[CommandEstimate] = []
    outputs = iter(program.outputs)
    for index, command in enumerate(program.commands):
        d = command.descriptor
        cycles, ops = command_cycles(d, cfg)
        words_in = command.stream_words(cfg.timesteps)
        words_out = next(outputs).words if d.opcode in (Opcode.STORE, Opcode.HEAD) else 0
        out.append(CommandEstimate(index, command.name, d.opcode, cycles, ops, words_in, words_out))
    return out


@dataclass(frozen=True)
class PerfReport:
    """Whole-program figures.

    Attributes
    ----------
    config:
        The configuration.
    commands:
        Per-command estimates.
    cycles:
        Total cycles per inference.
    fps:
        Inferences per second at ``config.clock_mhz``.
    stream_in_bytes, stream_out_bytes:
        Bytes over the input / output AXI streams per inference (= DDR reads / writes of the DMA).
    synaptic_ops:
        Useful synaptic operations per inference.
    onchip_bits:
        On-chip memory of the configuration, per buffer.
    amem_words_used:
        Highest activation-memory address the program touches.
    layer_cycles:
        Model op name -> cycles of its commands.
    segments:
        Segments the program runs in (1 unless band tiled; each is one ``START`` .. ``END``).
    stages:
        The band-tiled stages (:class:`protocol.bands.BandedStage`).
    """

    config: AcceleratorConfig
    commands: list[CommandEstimate]
    cycles: int
    fps: float
    stream_in_bytes: int
    stream_out_bytes: int
    synaptic_ops: int
    onchip_bits: dict[str, int]
    amem_words_used: int
    layer_cycles: dict[str, int] = field(default_factory=dict)
    segments: int = 1
    stages: tuple[BandedStage, ...] = ()

    @property
    def ops_per_cycle(self) -> float:
        return self.synaptic_ops / self.cycles

    @property
    def utilization(self) -> float:
        """Useful synaptic operations / (cycles x peak ``L x T``)."""
        return self.ops_per_cycle / self.config.peak_synaptic_ops

    def table(self) -> str:
        """Plain-text per-layer table plus totals."""
        rows = [f"{'layer':32s} {'cycles':>10s} {'share':>6s}"]
        for name, cycles in self.layer_cycles.items():
            rows.append(f"{name:32s} {cycles:10d} {100 * cycles / self.cycles:5.1f}%")
        mbit = sum(self.onchip_bits.values()) / 1e6
        buffers = ", ".join(f"{k} {v / 1e3:.0f} kbit" for k, v in self.onchip_bits.items())
        rows += [
            f"total: {self.cycles} cycles = {1e3 * self.cycles / (self.config.clock_mhz * 1e6):.3f} ms at "
            f"{self.config.clock_mhz:g} MHz -> {self.fps:.1f} frames/s",
            f"stream/DDR traffic per frame: {self.stream_in_bytes / 1024:.1f} KiB in, "
            f"{self.stream_out_bytes / 1024:.1f} KiB out",
            f"synaptic ops: {self.synaptic_ops} ({self.ops_per_cycle:.1f}/cycle, peak "
            f"{self.config.peak_synaptic_ops}, utilization {100 * self.utilization:.1f}%)",
            f"on-chip memory: {mbit:.2f} Mbit ({buffers}); "
            f"activations used: {self.amem_words_used} of {self.config.amem_depth} words",
        ]
        if self.stages:
            rows.append(f"band tiled in {self.segments} segments:")
        for stage in self.stages:
            cycles = sum(self.commands[i].cycles for i in stage.commands)
            words_in = sum(self.commands[i].words_in for i in stage.commands)
            words_out = sum(self.commands[i].words_out for i in stage.commands)
            rows.append(
                f"  {' + '.join(stage.ops)}: {stage.bands} bands of {stage.rows_per_band} rows, "
                f"{cycles} cycles, stream {8 * words_in / 1024:.1f} KiB in / "
                f"{8 * words_out / 1024:.1f} KiB out, band buffers {stage.amem_words} words"
            )
        return "\n".join(rows)


def report(program: Program) -> PerfReport:
    """:func:`estimate` plus totals for one inference of ``program``."""
    cfg = program.config
    commands = estimate(program)
    cycles = sum(c.cycles for c in commands)
    layers: dict[str, int] = {}
    for c in commands:
        layers[c.name] = layers.get(c.name, 0) + c.cycles
    used = max(
        (start + size for cmd in program.commands for _, start, size in cmd.descriptor.regions()), default=0
    )
    return PerfReport(
        config=cfg,
        commands=commands,
        cycles=cycles,
        fps=cfg.clock_mhz * 1e6 / cycles,
        stream_in_bytes=8 * sum(c.words_in for c in commands),
        stream_out_bytes=8 * sum(c.words_out for c in commands),
        synaptic_ops=sum(c.synaptic_ops for c in commands),
        onchip_bits=cfg.memory_bits(),
        amem_words_used=used,
        layer_cycles=layers,
        segments=len(program.segments()),
        stages=tuple(program.stages),
    )


def plan(model: object, config: AcceleratorConfig) -> tuple[PerfReport, tuple[BandedStage, ...], int]:
    """Compile ``model`` for ``config`` and report what the program does.

    Conv stages that do not fit the activation memory are band tiled by the compiler
    (:mod:`protocol.compiler.banding`); the report's cycles, traffic and memory are those of the
    compiled program's commands, bands included.

    Returns
    -------
    (report, band-tiled stages, activation words a fully resident schedule would need)
    """
    import dataclasses

    from protocol.compiler import compile_model

    program = compile_model(model, config)  # type: ignore[arg-type]
    # The resident figure compiles for a copy without the memory limit (nothing is banded).
    unbounded = dataclasses.replace(config, amem_depth=1 << 24)
    resident = report(compile_model(model, unbounded)).amem_words_used  # type: ignore[arg-type]
    return report(program), tuple(program.stages), resident
