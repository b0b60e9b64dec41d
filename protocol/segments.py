"""Host side of band-tiled programs: segment streams in, STORE packets back into host tensors.

A band-tiled :class:`~protocol.program.Program` runs as a sequence of segments (see
``Program.segment_starts``). Before a segment, the host builds its input stream: the
descriptors and constant payloads, with every fed LOAD's payload cut from a host tensor
(:class:`~protocol.program.HostSlice`); after it, the host writes every band packet the
segment sent back into its host tensor. The sample itself is the host tensor ``"input"``.

Everything here is pure numpy on words, so the same functions serve the emulator
(:func:`run_program`), the host driver on a board and the driver on the simulated RTL.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from protocol.program import Program, ProgramError, stream_to_words, words_to_stream

__all__ = [
    "host_tensors",
    "segment_stream",
    "segment_input_words",
    "segment_output_words",
    "absorb",
    "run_program",
]


def host_tensors(program: Program, x: np.ndarray) -> dict[str, np.ndarray]:
    """Fresh host tensors (activation words) for one sample: the input filled, the rest zero."""
    tensors = {t.name: np.zeros(t.count, dtype=np.uint64) for t in program.tensors}
    tensors["input"] = program.input_activations(x)
    return tensors


def segment_input_words(program: Program, segment: int) -> int:
    """Stream words of segment ``segment`` (independent of the sample)."""
    commands, _ = program.segments()[segment]
    return sum(program.commands[index].stream_words(program.config.timesteps) for index in commands)


def segment_stream(program: Program, segment: int, tensors: dict[str, np.ndarray]) -> np.ndarray:
    """Input stream of segment ``segment``; the last word (of its END) carries TLAST."""
    commands, _ = program.segments()[segment]
    t = program.config.timesteps
    parts = []
    for index in commands:
        command = program.commands[index]
        parts.append(np.asarray(command.descriptor.words(), dtype=np.uint64))
        if command.is_input:
            parts.append(words_to_stream(tensors["input"], t))
        elif command.feed is not None:
            feed = command.feed
            words = tensors[feed.tensor][feed.offset : feed.offset + feed.count]
            if words.size != feed.count:
                raise ProgramError(
                    f"command {index} ({command.name!r}) loads words [{feed.offset}, "
                    f"{feed.offset + feed.count}) of host tensor {feed.tensor!r}, which has {words.size}"
                )
            parts.append(words_to_stream(words, t))
        else:
            parts.append(command.payload)
    return np.concatenate(parts)


def segment_output_words(program: Program, segment: int) -> range:
    """Word range of segment ``segment``'s packets in the program's whole output stream."""
    _, outputs = program.segments()[segment]
    first = sum(spec.words for spec in program.outputs[: outputs.start])
    return range(first, first + sum(program.outputs[i].words for i in outputs))


def absorb(program: Program, segment: int, words: np.ndarray, tensors: dict[str, np.ndarray]) -> None:
    """Write the band packets of segment ``segment``'s output ``words`` into ``tensors``."""
    _, outputs = program.segments()[segment]
    words = np.asarray(words, dtype=np.uint64)
    expected = sum(program.outputs[i].words for i in outputs)
    if words.size != expected:
        raise ProgramError(f"segment {segment} sent {words.size} output words, the program sends {expected}")
    offset = 0
    for i in outputs:
        spec = program.outputs[i]
        if spec.slice is not None:
            chunk = words[offset : offset + spec.words]
            target = tensors[spec.slice.tensor]
            target[spec.slice.offset : spec.slice.offset + spec.count] = stream_to_words(
                chunk, spec.count, program.config.timesteps
            )
        offset += spec.words


def run_program(program: Program, x: np.ndarray, run: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Run one sample segment by segment through ``run`` (stream words -> output words, e.g.
    ``Emulator(cfg).run``, whose activation memory persists between calls as the hardware's
    does); return the whole output stream for :meth:`Program.decode`."""
    if not program.segmented:
        return np.asarray(run(program.stream(x)), dtype=np.uint64)
    tensors = host_tensors(program, x)
    outputs = []
    for segment in range(len(program.segments())):
        words = np.asarray(run(segment_stream(program, segment, tensors)), dtype=np.uint64)
        absorb(program, segment, words, tensors)
        outputs.append(words)
    return np.concatenate(outputs)
