"""The host driver: runs a compiled program on the accelerator behind any :class:`Backend`.

One small method per stage, as in FINN's driver, each timed:

``pack`` (batch -> input streams) -> ``copy_to_device`` (into the DMA buffer + flush)
-> ``execute`` (arm receive, ``START``, send, collect every output packet, wait for
``DONE``, check the error flags) -> ``copy_from_device`` (invalidate + copy out)
-> ``unpack`` (output words -> logits and traces).

A band-tiled program (docs/accelerator.md, section 6) runs as several segments per
sample: before each, ``pack`` builds the segment's stream from the host tensors
(:mod:`protocol.segments`: the sample and the bands earlier segments sent back); after
it, ``unpack`` writes the segment's band packets into the host tensors. The I/O per
segment is the same ``copy_to_device`` / ``execute`` / ``copy_from_device`` as for a
one-segment program, so every backend runs both.

Register offsets and bits come from :mod:`protocol.regmap` (the one register map of
RTL, driver and docs). Every wait is bounded: a DMA channel that stays busy raises
:class:`~host.errors.DMATimeout`, a ``DONE`` that never comes
:class:`~host.errors.DoneTimeout`, and error flags :class:`~host.errors.AcceleratorFault`;
in each case the core and the DMA are reset first, so the next call starts clean.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from protocol import regmap, segments
from protocol.config import AcceleratorConfig, get_config
from protocol.perf import report as perf_report
from protocol.program import Program

from . import packing
from .backends.base import Backend, Buffer, ChannelState
from .errors import (
    AcceleratorFault,
    DMAError,
    DMATimeout,
    DoneTimeout,
    ProgramMismatchError,
)

__all__ = ["STAGES", "StageTimes", "RunResult", "Progress", "Driver", "HardwareInfo"]

#: The timed stages of :meth:`Driver.run`, in order.
STAGES = ("pack", "copy_to_device", "execute", "copy_from_device", "unpack")

_REG = {reg.name: reg.offset for reg in regmap.REGISTERS}


def _field(register: str, name: str, value: int) -> int:
    shift, mask = regmap.field_mask(register, name)
    return (value >> shift) & mask


def _bit(register: str, name: str) -> int:
    shift, mask = regmap.field_mask(register, name)
    return mask << shift


@dataclass
class StageTimes:
    """Wall-clock seconds spent per stage (summed over the samples of a batch)."""

    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    @contextmanager
    def measure(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start

    @property
    def total(self) -> float:
        return sum(self.seconds.values())

    def table(self) -> str:
        return "  ".join(f"{stage} {self.seconds[stage] * 1e3:.2f} ms" for stage in STAGES)


@dataclass(frozen=True, eq=False)
class RunResult:
    """Outcome of :meth:`Driver.run` on a batch of ``B`` samples.

    Attributes
    ----------
    logits:
        ``int64 [B, classes]``.
    predictions:
        ``argmax`` of the logits (first index on ties), ``[B]``.
    cycles:
        The core's cycle counter per sample (``START`` to ``DONE``), ``[B]``.
    traces:
        Op name -> output in the integer model's trace layout ``[T, B, ...]`` (only
        for programs compiled with ``trace=True``).
    profile:
        Cycles per command ``[B, commands]`` from the profile registers (``None``
        unless requested; commands beyond the hardware's profile depth read -1).
    times:
        Wall-clock seconds per stage.
    """

    logits: np.ndarray
    predictions: np.ndarray
    cycles: np.ndarray
    traces: dict[str, np.ndarray]
    profile: np.ndarray | None
    times: StageTimes

    @classmethod
    def concatenate(cls, parts: Sequence[RunResult]) -> RunResult:
        """One result of consecutive batches, in the order of ``parts`` (stage times summed).

        What runs the shares of a batch on several backends at once (:mod:`host.parallel`)
        merges their results with this, so the batch reads as if one driver had run it.
        """
        if not parts:
            raise ValueError("RunResult.concatenate needs at least one result")
        names = set(parts[0].traces)
        if any(set(part.traces) != names for part in parts):
            raise ValueError("RunResult.concatenate: the results hold traces of different ops")
        profiles = [part.profile for part in parts]
        if any(profile is None for profile in profiles) and any(profile is not None for profile in profiles):
            raise ValueError("RunResult.concatenate: some results have a profile, others not")
        times = StageTimes()
        for part in parts:
            for stage, seconds in part.times.seconds.items():
                times.seconds[stage] = times.seconds.get(stage, 0.0) + seconds
        return cls(
            logits=np.concatenate([part.logits for part in parts]),
            predictions=np.concatenate([part.predictions for part in parts]),
            cycles=np.concatenate([part.cycles for part in parts]),
            # Traces are [T, B, ...]: the batch is axis 1.
            traces={name: np.concatenate([part.traces[name] for part in parts], axis=1) for name in names},
            profile=None if profiles[0] is None else np.concatenate(profiles),
            times=times,
        )


#: Called with a sample's batch index as soon as the sample is done (see :meth:`Driver.run`).
Progress = Callable[[int], None]


@dataclass(frozen=True)
class HardwareInfo:
    """What the accelerator reports about itself (``ID``, ``VERSION``, ``CONFIG_HASH``, ``HW_*``)."""

    ident: int
    version: tuple[int, int]
    config_hash: int
    timesteps: int
    lanes: int
    lif_lanes: int
    amem_depth: int
    wmem_depth: int
    head_dim: int
    max_group: int
    profile_depth: int


class Driver:
    """Runs one compiled :class:`~protocol.program.Program` on a backend.

    Parameters
    ----------
    backend:
        Registers, DMA and clock of one accelerator (board or simulator).
    program:
        The compiled model (:func:`protocol.compiler.compile_model`).
    timeout_s:
        Budget of each wait (a DMA packet, ``DONE``); ``None``: four times the cycle
        model's prediction, at least the backend's minimum.
    check_hardware:
        Read ``ID``, ``VERSION`` and ``CONFIG_HASH`` at once and refuse a program
        compiled for another configuration (:class:`~host.errors.ProgramMismatchError`).
    """

    def __init__(
        self,
        backend: Backend,
        program: Program,
        *,
        timeout_s: float | None = None,
        check_hardware: bool = True,
    ) -> None:
        if not isinstance(backend, Backend):
            raise TypeError(f"Driver backend must be a host.backends.Backend, not {type(backend).__name__}")
        if not isinstance(program, Program):
            raise TypeError(
                f"Driver program must be a protocol.program.Program, not {type(program).__name__}"
            )
        if timeout_s is not None and (
            isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or not timeout_s > 0
        ):
            raise ValueError(f"Driver timeout_s must be a positive number of seconds, not {timeout_s!r}")
        self.backend, self.program = backend, program
        self.packets = packing.packets(program)
        if program.segmented:
            #: Per segment of a band-tiled program: its output packets and input stream words.
            self.segment_packets = packing.segment_packets(program)
            self.segment_words = [
                segments.segment_input_words(program, i) for i in range(len(self.segment_packets))
            ]
            self.input_words = max(self.segment_words)
        else:
            self.input_words = int(program.stream(self._zero_sample()).size)
        if self.input_words > backend.max_transfer_words:
            raise ProgramMismatchError(
                f"one sample's input stream (one segment's, if band tiled) is {self.input_words} words, more "
                f"than the DMA's longest transfer ({backend.max_transfer_words} words); rebuild the overlay "
                f"with a wider c_sg_length_width"
            )
        longest = max(p.words for p in self.packets)
        if longest > backend.max_transfer_words:
            raise ProgramMismatchError(f"output packet of {longest} words exceeds the DMA's longest transfer")
        #: Cycles per inference predicted by the analytic cycle model (:mod:`protocol.perf`).
        self.predicted_cycles = perf_report(program).cycles
        self.timeout_s = float(timeout_s) if timeout_s is not None else self._default_timeout()
        self.info = self.read_info() if check_hardware else None
        if self.info is not None:
            self._check_info(self.info)
        self._ibuf: Buffer | None = None
        self._obuf: Buffer | None = None
        self._first_command = 0  # program index of the running segment's first command

    # ------------------------------------------------------------------ construction helpers
    @classmethod
    def from_export(
        cls,
        backend: Backend,
        export: Any,
        *,
        config: str | AcceleratorConfig = "sim",
        trace: bool = False,
        **kwargs: Any,
    ) -> Driver:
        """Load an export directory (or a loaded :class:`contract.manifest.Export`), compile it, bind it."""
        from contract.manifest import Export, load_export
        from protocol.compiler import compile_model

        loaded = export if isinstance(export, Export) else load_export(Path(export))
        return cls(backend, compile_model(loaded.model, get_config(config), trace=trace), **kwargs)

    def _zero_sample(self) -> np.ndarray:
        return np.zeros((self.program.timesteps, *self.program.input_shape), dtype=np.int64)

    def _default_timeout(self) -> float:
        # Four times the cycle model's prediction (the RTL agrees with it within a few per
        # cent) plus start-up slack: a working core never gets near it, a stuck one is
        # caught after a few inference times.
        cycles = 4 * self.predicted_cycles + 10_000
        return max(self.backend.min_timeout_s, cycles / (self.program.config.clock_mhz * 1e6))

    # ------------------------------------------------------------------ registers
    def read_info(self) -> HardwareInfo:
        """Identification and size registers of the accelerator."""
        read = self.backend.read
        version, lanes, attention = read(_REG["VERSION"]), read(_REG["HW_LANES"]), read(_REG["HW_ATTENTION"])
        return HardwareInfo(
            ident=read(_REG["ID"]),
            version=(_field("VERSION", "MAJOR", version), _field("VERSION", "MINOR", version)),
            config_hash=read(_REG["CONFIG_HASH"]),
            timesteps=read(_REG["HW_TIMESTEPS"]),
            lanes=_field("HW_LANES", "LANES", lanes),
            lif_lanes=_field("HW_LANES", "LIF_LANES", lanes),
            amem_depth=read(_REG["HW_AMEM_DEPTH"]),
            wmem_depth=read(_REG["HW_WMEM_DEPTH"]),
            head_dim=_field("HW_ATTENTION", "HEAD_DIM", attention),
            max_group=_field("HW_ATTENTION", "MAX_GROUP", attention),
            profile_depth=read(_REG["HW_PROFILE_DEPTH"]),
        )

    def _check_info(self, info: HardwareInfo) -> None:
        if info.ident != regmap.ACCEL_ID:
            raise ProgramMismatchError(
                f"register ID reads {info.ident:#010x}, not {regmap.ACCEL_ID:#010x}: "
                f"no Spikeformer accelerator at this address"
            )
        if info.version[0] != regmap.VERSION[0]:
            major, minor = info.version
            raise ProgramMismatchError(
                f"accelerator register map version {major}.{minor}, this driver speaks {regmap.VERSION[0]}.x"
            )
        cfg = self.program.config
        if info.config_hash != cfg.config_hash:
            raise ProgramMismatchError(
                f"the hardware was built from another configuration (CONFIG_HASH {info.config_hash:#010x}, "
                f"T={info.timesteps}, lanes={info.lanes}) than the program's {cfg.name!r} "
                f"({cfg.config_hash:#010x}, T={cfg.timesteps}, lanes={cfg.lanes})"
            )

    def status(self) -> dict[str, int]:
        """Raw ``STATUS``, ``ERROR``, ``DETAIL``, ``ERROR_COMMAND`` and ``COMMANDS``."""
        return {
            name: self.backend.read(_REG[name])
            for name in ("STATUS", "ERROR", "DETAIL", "ERROR_COMMAND", "COMMANDS")
        }

    def cycles(self) -> int:
        """The 64-bit cycle counter (``CYCLES_HI`` is latched when ``CYCLES_LO`` is read)."""
        low = self.backend.read(_REG["CYCLES_LO"])
        return (self.backend.read(_REG["CYCLES_HI"]) << 32) | low

    def profile(self, commands: int | None = None) -> np.ndarray:
        """Cycles of each command of the last run; ``commands``: how many the run had (default:
        the whole one-segment program).

        The core writes command ``i``'s count at ``PROFILE[i mod depth]``, so a run of more
        than ``HW_PROFILE_DEPTH`` commands (a band-tiled segment can be) keeps its last
        ``depth`` counts; the earlier commands read ``-1``.
        """
        depth = self.info.profile_depth if self.info is not None else self.program.config.profile_depth
        counts = np.full(len(self.program.commands) if commands is None else commands, -1, dtype=np.int64)
        for i in range(max(0, counts.size - depth), counts.size):
            counts[i] = self.backend.read(regmap.PROFILE_BASE + 4 * (i % depth))
        return counts

    def reset(self) -> None:
        """Soft-reset the core and both DMA channels (recovers from an error or a timeout)."""
        self.backend.write(_REG["CONTROL"], _bit("CONTROL", "SOFT_RESET"))
        self.backend.reset_dma()

    # ------------------------------------------------------------------ stages
    def pack(self, x: Any) -> np.ndarray:
        """Stage 1: validated batch -> one input stream per sample, ``uint64 [B, words]``."""
        return packing.pack_batch(x, self.program)

    def copy_to_device(self, stream: np.ndarray) -> None:
        """Stage 2: one sample's stream into the input buffer, flushed for the DMA."""
        ibuf = self._buffers()[0]
        ibuf.array[: stream.size] = stream
        ibuf.flush()

    def execute(self, *, sample: int | None = None, segment: int | None = None) -> int:
        """Stage 3: run the program (or one ``segment`` of a band-tiled program) on the flushed
        input; returns the core's cycle count.

        The receive channel is armed before ``START`` so the first packet never waits;
        each later packet is armed as soon as the previous one has arrived.
        """
        if segment is None:
            self._first_command = 0
            return self._execute(self.packets, self.input_words, sample)
        # The core numbers a segment's commands from 0; faults name the program's command.
        self._first_command = self.program.segments()[segment][0].start
        return self._execute(self.segment_packets[segment], self.segment_words[segment], sample)

    def _execute(self, packets: list[packing.Packet], input_words: int, sample: int | None) -> int:
        ibuf, obuf = self._buffers()
        backend = self.backend
        if packets:
            backend.start_receive(obuf, packets[0].offset, packets[0].words)
        backend.write(_REG["CONTROL"], _bit("CONTROL", "START"))
        backend.start_send(ibuf, input_words)
        for index, packet in enumerate(packets):
            state = self._wait(
                lambda: backend.receive_state(),
                "receive",
                sample,
                f"output packet {packet.name!r} ({packet.words} words) never completed (no TLAST)",
                DMATimeout,
            )
            if state.received != packet.words:
                self.reset()
                raise DMAError(
                    f"output packet {packet.name!r} had {state.received} words, the program sends "
                    f"{packet.words}",
                    stage="receive",
                    sample=sample,
                )
            if index + 1 < len(packets):
                following = packets[index + 1]
                backend.start_receive(obuf, following.offset, following.words)
        self._wait(
            lambda: backend.send_state(),
            "send",
            sample,
            f"the core did not consume the whole input stream ({input_words} words)",
            DMATimeout,
        )
        self._wait_done(sample)
        return self.cycles()

    def copy_from_device(self, span: slice | None = None) -> np.ndarray:
        """Stage 4: invalidate the output buffer and copy the received words (or ``span`` of them) out."""
        obuf = self._buffers()[1]
        obuf.invalidate()
        return np.array(obuf.array[: self.program.output_words][span or slice(None)], dtype=np.uint64)

    def unpack(self, words: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Stage 5: output words ``[B, output_words]`` -> logits ``[B, classes]`` and traces."""
        return packing.unpack_batch(words, self.program)

    # ------------------------------------------------------------------ the whole run
    def run(self, x: Any, *, profile: bool = False, progress: Progress | None = None) -> RunResult:
        """Run a batch through every stage; see :class:`RunResult`.

        Parameters
        ----------
        x:
            The batch (validated by :meth:`pack`).
        profile:
            Also read the per-command cycle counters after each sample.
        progress:
            Called with each sample's batch index once its output is copied out, in
            order (a progress bar of a long simulated run shows real progress with it).
        """
        if self.program.segmented:
            return self._run_segments(x, profile, progress)
        times = StageTimes()
        with times.measure("pack"):
            streams = self.pack(x)
        outputs = np.zeros((streams.shape[0], self.program.output_words), dtype=np.uint64)
        cycles = np.zeros(streams.shape[0], dtype=np.int64)
        profiles = []
        for i, stream in enumerate(streams):
            with times.measure("copy_to_device"):
                self.copy_to_device(stream)
            with times.measure("execute"):
                cycles[i] = self.execute(sample=i)
                if profile:
                    profiles.append(self.profile())
            with times.measure("copy_from_device"):
                outputs[i] = self.copy_from_device()
            if progress is not None:
                progress(i)
        with times.measure("unpack"):
            logits, traces = self.unpack(outputs)
        return RunResult(
            logits=logits,
            predictions=logits.argmax(axis=1),
            cycles=cycles,
            traces=traces,
            profile=np.stack(profiles) if profile else None,
            times=times,
        )

    def _run_segments(self, x: Any, profile: bool, progress: Progress | None) -> RunResult:
        """:meth:`run` for a band-tiled program: per sample, its segments one after the other."""
        program, times = self.program, StageTimes()
        with times.measure("pack"):
            values = packing.validate_batch(x, program)
        outputs = np.zeros((values.shape[0], program.output_words), dtype=np.uint64)
        cycles = np.zeros(values.shape[0], dtype=np.int64)
        profiles = []
        for i, sample in enumerate(values):
            with times.measure("pack"):
                tensors = segments.host_tensors(program, sample)
            counts = []
            for segment, (commands, _) in enumerate(program.segments()):
                with times.measure("pack"):
                    stream = segments.segment_stream(program, segment, tensors)
                with times.measure("copy_to_device"):
                    self.copy_to_device(stream)
                with times.measure("execute"):
                    cycles[i] += self.execute(sample=i, segment=segment)
                    if profile:
                        counts.append(self.profile(len(commands)))
                with times.measure("copy_from_device"):
                    span = segments.segment_output_words(program, segment)
                    words = self.copy_from_device(slice(span.start, span.stop))
                with times.measure("unpack"):
                    segments.absorb(program, segment, words, tensors)
                    outputs[i, span.start : span.stop] = words
            if profile:
                profiles.append(np.concatenate(counts))
            if progress is not None:
                progress(i)
        with times.measure("unpack"):
            logits, traces = self.unpack(outputs)
        return RunResult(
            logits=logits,
            predictions=logits.argmax(axis=1),
            cycles=cycles,
            traces=traces,
            profile=np.stack(profiles) if profile else None,
            times=times,
        )

    def close(self) -> None:
        """Free the DMA buffers (the backend stays open)."""
        for buf in (self._ibuf, self._obuf):
            if buf is not None:
                buf.free()
        self._ibuf = self._obuf = None

    # ------------------------------------------------------------------ internals
    def _buffers(self) -> tuple[Buffer, Buffer]:
        if self._ibuf is None or self._obuf is None:
            self._ibuf = self.backend.allocate(self.input_words)
            self._obuf = self.backend.allocate(self.program.output_words)
        return self._ibuf, self._obuf

    def _wait(
        self,
        poll: Callable[[], ChannelState],
        stage: str,
        sample: int | None,
        what: str,
        timeout_cls: type[DMATimeout],
    ) -> ChannelState:
        """Poll a DMA channel until it is idle; stop early on a DMA error or a core error."""
        backend = self.backend
        start = backend.now()
        while True:
            state = poll()
            if state.error:
                self.reset()
                raise DMAError(f"DMA {stage} channel error: {state.error}", stage=stage, sample=sample)
            if not state.busy:
                return state
            self._raise_if_faulted(stage, sample)
            waited = backend.now() - start
            if waited > self.timeout_s:
                status = self.status()
                self.reset()
                raise timeout_cls(what, stage=stage, waited_s=waited, status=status, sample=sample)
            backend.sleep(backend.poll_s)

    def _wait_done(self, sample: int | None) -> None:
        backend = self.backend
        start = backend.now()
        done = _bit("STATUS", "DONE")
        while True:
            status = backend.read(_REG["STATUS"])
            if status & done:
                self._raise_if_faulted("run", sample, status)
                return
            waited = backend.now() - start
            if waited > self.timeout_s:
                snapshot = self.status()
                self.reset()
                raise DoneTimeout(
                    "STATUS.DONE never came after START",
                    stage="run",
                    waited_s=waited,
                    status=snapshot,
                    sample=sample,
                )
            backend.sleep(backend.poll_s)

    def _raise_if_faulted(self, stage: str, sample: int | None, status: int | None = None) -> None:
        status = self.backend.read(_REG["STATUS"]) if status is None else status
        if not status & _bit("STATUS", "ERROR"):
            return
        flags = self.backend.read(_REG["ERROR"])
        detail = self.backend.read(_REG["DETAIL"])
        command = self._first_command + self.backend.read(_REG["ERROR_COMMAND"])
        self.reset()
        raise AcceleratorFault(
            self._describe_fault(flags, detail, command),
            stage=stage,
            flags=flags,
            detail=detail,
            command=command,
            command_name=self._command_name(command),
            sample=sample,
        )

    def _command_name(self, index: int) -> str:
        commands = self.program.commands
        return commands[index].name if 0 <= index < len(commands) else ""

    def _describe_fault(self, flags: int, detail: int, command: int) -> str:
        names = [flag.name for flag in regmap.ErrorFlag if flags & flag] or [f"{flags:#x}"]
        text = f"accelerator error {'|'.join(str(n) for n in names)} at command {command}"
        name = self._command_name(command)
        if name:
            text += f" ({self.program.commands[command].opcode.name} {name!r})"
        if flags & regmap.ErrorFlag.DESCRIPTOR:
            fault = _field("DETAIL", "FAULT", detail)
            try:
                fault_name = regmap.DescriptorFault(fault).name
            except ValueError:
                fault_name = str(fault)
            text += (
                f"; descriptor check {fault_name}, rule {_field('DETAIL', 'RULE', detail)}, "
                f"opcode {_field('DETAIL', 'OPCODE', detail)}"
            )
        return text + "; the core and the DMA were reset"
