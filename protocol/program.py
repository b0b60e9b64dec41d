"""Compiled programs: command list, per-sample input stream and output decoding.

A :class:`Program` is what :func:`protocol.compiler.compile_model` produces and what a
host driver runs: the commands (descriptor + constant payload) in stream order, the
sample-dependent input payload's packing, and the list of output packets with the
information needed to turn them back into integer tensors in the layouts of
:class:`contract.intmodel.IntModel` traces.

Activation words (docs/accelerator.md, "Activation layout"): a value with ``P`` bit
planes of shape ``[T, positions, C]`` is stored as ``positions x C x P`` words of
``T_hw`` bits, word ``(pos * C + c) * P + b`` holding bit ``b`` of the ``T`` time steps
(bit ``t`` = step ``t``; steps ``t >= T`` are zero). Stream words pack ``64 / T_hw``
activation words, the lowest address in the lowest bits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from protocol.bands import BandedStage
from protocol.config import STREAM_BITS, AcceleratorConfig
from protocol.descriptors import DESC_WORDS, Descriptor, Opcode

__all__ = [
    "Command",
    "HostSlice",
    "HostTensor",
    "OutputSpec",
    "Program",
    "ProgramError",
    "activation_words",
    "unpack_activation",
    "words_to_stream",
    "stream_to_words",
    "pack_fields",
]


class ProgramError(ValueError):
    """A sample or an output stream does not fit the program; the message says which and why."""


def pack_fields(values: np.ndarray, bits: int) -> np.ndarray:
    """Pack the last axis of ``values`` (``bits``-bit two's complement fields, LSB first) into
    little-endian 64-bit words; the last axis times ``bits`` must be a multiple of 64."""
    values = np.asarray(values, dtype=np.int64)
    total = values.shape[-1] * bits
    if total % STREAM_BITS:
        raise ValueError(f"{values.shape[-1]} fields of {bits} bits do not fill whole 64-bit words")
    unsigned = values & ((1 << bits) - 1)
    bitplanes = ((unsigned[..., None] >> np.arange(bits)) & 1).astype(np.uint8)
    flat = bitplanes.reshape(*values.shape[:-1], total)
    packed = np.packbits(flat, axis=-1, bitorder="little")
    return np.ascontiguousarray(packed).view("<u8").reshape(*values.shape[:-1], total // STREAM_BITS)


def activation_words(x: np.ndarray, *, planes: int, hw_timesteps: int) -> np.ndarray:
    """Activation words (``uint64``, each below ``2**hw_timesteps``) of ``x`` ``[T, positions, C]``."""
    x = np.asarray(x, dtype=np.int64)
    t = x.shape[0]
    if t > hw_timesteps:
        raise ProgramError(f"value has {t} time steps, the accelerator holds {hw_timesteps}")
    if x.size and (x.min() < 0 or x.max() >= 1 << planes):
        raise ProgramError(f"values [{x.min()}, {x.max()}] do not fit {planes} bit plane(s)")
    bits = (x[None] >> np.arange(planes)[:, None, None, None]) & 1  # [P, T, pos, C]
    words = (bits << np.arange(t)[None, :, None, None]).sum(axis=1)  # [P, pos, C]
    return np.ascontiguousarray(words.transpose(1, 2, 0)).reshape(-1).astype(np.uint64)


def unpack_activation(
    words: np.ndarray, *, positions: int, channels: int, planes: int, timesteps: int
) -> np.ndarray:
    """Inverse of :func:`activation_words`: ``[T, positions, C]`` ``int64``."""
    words = np.asarray(words, dtype=np.uint64).astype(np.int64).reshape(positions, channels, planes)
    bits = (words[None] >> np.arange(timesteps)[:, None, None, None]) & 1  # [T, pos, C, P]
    return (bits << np.arange(planes)).sum(axis=-1)


def words_to_stream(words: np.ndarray, hw_timesteps: int) -> np.ndarray:
    """Pack activation words into stream words (``64 / T`` per word, zero padded)."""
    per = STREAM_BITS // hw_timesteps
    words = np.asarray(words, dtype=np.uint64)
    padded = np.zeros(-(-words.size // per) * per, dtype=np.uint64)
    padded[: words.size] = words
    shifts = np.arange(per, dtype=np.uint64) * np.uint64(hw_timesteps)
    return np.bitwise_or.reduce(padded.reshape(-1, per) << shifts, axis=1).astype(np.uint64)


def stream_to_words(stream: np.ndarray, count: int, hw_timesteps: int) -> np.ndarray:
    """Unpack ``count`` activation words from stream words."""
    per = STREAM_BITS // hw_timesteps
    stream = np.asarray(stream, dtype=np.uint64)
    shifts = np.arange(per, dtype=np.uint64) * np.uint64(hw_timesteps)
    mask = np.uint64((1 << hw_timesteps) - 1)
    return ((stream[:, None] >> shifts) & mask).reshape(-1)[:count]


def stream_words_for(count: int, hw_timesteps: int) -> int:
    """Stream words that carry ``count`` activation words."""
    per = STREAM_BITS // hw_timesteps
    return -(-count // per)


def _trace_value(act: np.ndarray, shape: tuple[int, ...], planes: int) -> np.ndarray:
    """Activation words -> the integer model's trace layout with a batch axis of one."""
    t = shape[0]
    if len(shape) == 4:  # image-like [T, C, H, W]
        _, c, h, w = shape
        value = unpack_activation(act, positions=h * w, channels=c, planes=planes, timesteps=t)
        value = value.transpose(0, 2, 1).reshape(t, c, h, w)
    else:  # tokens [T, N, D]
        _, n, d = shape
        value = unpack_activation(act, positions=n, channels=d, planes=planes, timesteps=t)
    return value[:, None]


@dataclass(frozen=True)
class HostSlice:
    """Activation words ``[offset, offset + count)`` of the host tensor ``tensor``.

    A band-tiled program moves tensors through host memory (DDR): a STORE's packet lands
    at a slice of a host tensor, a LOAD's payload is a slice of one.
    """

    tensor: str
    offset: int
    count: int


@dataclass(frozen=True)
class HostTensor:
    """A tensor the host holds between segments of a band-tiled program.

    Attributes
    ----------
    name:
        The model value (``"input"``: the sample itself).
    count:
        Activation words (``positions x C x P``).
    shape:
        Trace layout without the batch axis (as :attr:`OutputSpec.shape`).
    planes:
        Bit planes.
    trace:
        The tensor is a traced layer output (:meth:`Program.decode` returns it).
    """

    name: str
    count: int
    shape: tuple[int, ...]
    planes: int
    trace: bool = False


@dataclass(frozen=True, eq=False)
class Command:
    """One command of a program.

    Attributes
    ----------
    descriptor:
        Its descriptor.
    payload:
        Constant payload words (``uint64``); empty for the input load, whose payload is the sample.
    name:
        What it implements: a model op name, ``"input"``, ``"trace:<op>"`` or ``"end"``.
    is_input:
        The command whose payload is the packed sample.
    feed:
        A LOAD whose payload the host assembles from a host tensor (band-tiled programs).
    """

    descriptor: Descriptor
    payload: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint64))
    name: str = ""
    is_input: bool = False
    feed: HostSlice | None = None

    @property
    def opcode(self) -> Opcode:
        return self.descriptor.opcode

    def stream_words(self, hw_timesteps: int) -> int:
        """Input-stream words of the command: its descriptor, then its constant payload or, for
        the input and host-fed loads, the packed activation words."""
        fed = self.is_input or self.feed is not None
        payload = stream_words_for(self.descriptor.count, hw_timesteps) if fed else len(self.payload)
        return DESC_WORDS + payload


@dataclass(frozen=True)
class OutputSpec:
    """One output packet (it ends with TLAST).

    Attributes
    ----------
    name:
        ``"logits"`` or the op whose output a trace store returns.
    words:
        Stream words of the packet.
    shape:
        Per-sample shape in the integer model's trace layout without the batch axis:
        ``(T, C, H, W)`` (image-like), ``(T, N, D)`` (tokens) or ``(classes,)``.
    planes:
        Bit planes of the stored value (activation packets).
    count:
        Activation words in the packet.
    slice:
        Where the packet goes in a host tensor (band-tiled programs); ``None`` for a
        whole traced value or the logits.
    """

    name: str
    words: int
    shape: tuple[int, ...]
    planes: int = 0
    count: int = 0
    slice: HostSlice | None = None


@dataclass(frozen=True, eq=False)
class Program:
    """A compiled model for one accelerator configuration.

    Attributes
    ----------
    config:
        The configuration it was compiled for (its hash is checked by the driver).
    commands:
        Commands in stream order; the first is the input load, the last ``END``.
    outputs:
        Output packets in the order the accelerator sends them.
    input_shape:
        ``(C, H, W)`` of one time step of the model input.
    timesteps:
        The model's ``T``.
    input_planes:
        Bit planes of the input (``numerics.input_bits``).
    event:
        Inputs are ``[T, C, H, W]`` event frames (else static ``[C, H, W]`` images repeated over T).
    num_classes:
        Logits per sample.
    op_commands:
        Model op name -> indices of the commands that implement it (for per-layer cycle reports).
    segment_starts:
        Index of the first command of every segment after the first. A band-tiled program
        is a sequence of *segments*, each a complete program (``START`` ... ``END``, command
        indices from 0) run after the previous one, because a segment's LOADs need words
        an earlier segment STOREd; the activation memory keeps its contents from one
        segment to the next (it is never cleared). Empty: one segment.
    tensors:
        Host tensors of a band-tiled program (:class:`HostTensor`).
    stages:
        The band-tiled stages (:class:`protocol.bands.BandedStage`).
    """

    config: AcceleratorConfig
    commands: tuple[Command, ...]
    outputs: tuple[OutputSpec, ...]
    input_shape: tuple[int, int, int]
    timesteps: int
    input_planes: int
    event: bool
    num_classes: int
    op_commands: dict[str, tuple[int, ...]] = field(default_factory=dict)
    segment_starts: tuple[int, ...] = ()
    tensors: tuple[HostTensor, ...] = ()
    stages: tuple[BandedStage, ...] = ()

    @property
    def output_words(self) -> int:
        return sum(spec.words for spec in self.outputs)

    @property
    def segmented(self) -> bool:
        """The host feeds the program words it sent back (band tiling): run it segment by segment."""
        return bool(self.segment_starts or self.tensors)

    def segments(self) -> list[tuple[range, range]]:
        """``(command indices, output indices)`` of every segment, in run order."""
        bounds = [0, *self.segment_starts, len(self.commands)]
        result, first_output = [], 0
        for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
            packets = sum(c.opcode in (Opcode.STORE, Opcode.HEAD) for c in self.commands[start:stop])
            result.append((range(start, stop), range(first_output, first_output + packets)))
            first_output += packets
        return result

    @property
    def trace_names(self) -> list[str]:
        traced = {t.name for t in self.tensors if t.trace}
        names: list[str] = []
        for spec in self.outputs:
            if spec.name == "logits" or (spec.slice is not None and spec.name not in traced):
                continue
            if spec.name not in names:
                names.append(spec.name)
        return names

    def input_words(self, x: np.ndarray) -> np.ndarray:
        """Payload of the input load for one sample ``[T, C, H, W]`` or (static) ``[C, H, W]``."""
        return words_to_stream(self.input_activations(x), self.config.timesteps)

    def input_activations(self, x: np.ndarray) -> np.ndarray:
        """Activation words of one sample (the host tensor ``"input"``)."""
        x = np.asarray(x)
        if x.dtype.kind == "f":
            if not np.isfinite(x).all() or (x != np.round(x)).any():
                raise ProgramError("input must hold integers (pixels or event counts)")
        elif x.dtype.kind not in "iub":
            raise ProgramError(f"input must be an integer array, not dtype {x.dtype}")
        x = x.astype(np.int64)
        step = tuple(self.input_shape)
        if x.shape == step:
            x = np.broadcast_to(x, (self.timesteps, *step))
        elif x.shape != (self.timesteps, *step):
            raise ProgramError(
                f"input must be [{self.timesteps}, {', '.join(map(str, step))}] or "
                f"[{', '.join(map(str, step))}], got shape {x.shape}"
            )
        limit = (1 << self.input_planes) - 1
        if x.size and (x.min() < 0 or x.max() > limit):
            raise ProgramError(f"input values must lie in [0, {limit}], got [{x.min()}, {x.max()}]")
        c, h, w = step
        tokens = x.reshape(self.timesteps, c, h * w).transpose(0, 2, 1)
        return activation_words(tokens, planes=self.input_planes, hw_timesteps=self.config.timesteps)

    def stream(self, x: np.ndarray) -> np.ndarray:
        """The whole input stream (``uint64`` words) that runs one sample; the last word carries TLAST."""
        if self.segmented:
            raise ProgramError(
                f"the program runs in {len(self.segments())} segment(s) fed by the host (band tiling); "
                f"run it with protocol.segments.run_program or host.driver.Driver"
            )
        parts = []
        for command in self.commands:
            parts.append(np.asarray(command.descriptor.words(), dtype=np.uint64))
            parts.append(self.input_words(x) if command.is_input else command.payload)
        return np.concatenate(parts)

    def decode(self, words: Sequence[int] | np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Split one sample's output stream into ``(logits [classes], trace)``.

        The trace maps op names to arrays in the integer model's trace layout with a batch
        axis of one (``[T, 1, ...]``), ready for :func:`contract.intmodel.compare_traces`.
        """
        words = np.asarray(words, dtype=np.uint64)
        if words.size != self.output_words:
            raise ProgramError(f"output stream has {words.size} words, the program sends {self.output_words}")
        offset, logits, trace = 0, None, {}
        tensors = {t.name: np.zeros(t.count, dtype=np.uint64) for t in self.tensors if t.trace}
        for spec in self.outputs:
            chunk = words[offset : offset + spec.words]
            offset += spec.words
            if spec.name == "logits":
                logits = chunk.view(np.int64).copy()
                continue
            act = stream_to_words(chunk, spec.count, self.config.timesteps)
            if spec.slice is not None:  # a band of a host tensor
                if spec.slice.tensor in tensors:
                    tensors[spec.slice.tensor][spec.slice.offset : spec.slice.offset + spec.count] = act
                continue
            trace[spec.name] = _trace_value(act, spec.shape, spec.planes)
        for tensor in self.tensors:
            if tensor.trace:
                trace[tensor.name] = _trace_value(tensors[tensor.name], tensor.shape, tensor.planes)
        if logits is None:
            raise ProgramError("the program has no logits output")
        return logits, trace

    def summary(self) -> str:
        """One line per command: index, opcode, name, payload words."""
        rows = [
            f"{i:4d}  {c.opcode.name:9s} {len(c.payload):8d}  {c.name}" for i, c in enumerate(self.commands)
        ]
        return "\n".join(["   #  opcode    payload  name", *rows])
