"""Pure-numpy packing between batches and stream words (no board, no simulator, no ``pynq``).

The word formats themselves belong to the accelerator (:class:`protocol.program.Program`:
descriptors, weights and one sample's input become one input stream; one sample's
output stream splits into logits and traces). This module adds what a batch needs on
top of that:

* :func:`validate_batch` checks a batch against the loaded model (rank, shape,
  dtype, integer values, range ``[0, 2**input_bits - 1]``) and names the first bad
  sample and value;
* :func:`pack_batch` turns a batch into one stream per sample (``uint64 [B, words]``);
* :func:`packets` lists the output packets (each one DMA receive, ending with TLAST)
  with their word offsets, :func:`segment_packets` the same per segment of a band-tiled
  program (whose segment streams :mod:`protocol.segments` builds from the host tensors);
* :func:`unpack_batch` turns ``[B, output_words]`` back into ``int64`` logits
  ``[B, classes]`` and traces in the integer model's layout ``[T, B, ...]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from protocol.program import Program, ProgramError

from .errors import InputError

__all__ = [
    "Packet",
    "input_layouts",
    "validate_batch",
    "pack_batch",
    "packets",
    "segment_packets",
    "unpack_batch",
]


@dataclass(frozen=True)
class Packet:
    """One output packet of a sample: ``name`` (``"logits"`` or an op), first word ``offset``, ``words``."""

    name: str
    offset: int
    words: int


def input_layouts(program: Program) -> list[tuple[int, ...]]:
    """Accepted per-sample input shapes: ``[T, C, H, W]``, and ``[C, H, W]`` for static-image models."""
    step = tuple(program.input_shape)
    layouts = [(program.timesteps, *step)]
    if not program.event:
        layouts.insert(0, step)
    return layouts


def _as_array(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, without importing torch
        x = x.detach().cpu().numpy()
    try:
        return np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise InputError(f"input batch is not an array: {exc}") from None


def validate_batch(x: Any, program: Program) -> np.ndarray:
    """The batch as ``int64 [B, ...]``, or :class:`InputError` naming what does not fit.

    Parameters
    ----------
    x:
        ``[B, T, C, H, W]`` event frames / repeated images, or ``[B, C, H, W]`` static
        images (static-image models only). Integer dtype, or float holding integers.
    program:
        The compiled model the batch is for.
    """
    array = _as_array(x)
    layouts = input_layouts(program)
    shown = " or ".join("[B, " + ", ".join(map(str, s)) + "]" for s in layouts)
    if array.ndim < 1 or tuple(array.shape[1:]) not in layouts:
        raise InputError(f"input batch has shape {list(array.shape)}; the model takes {shown}")
    if array.shape[0] < 1:
        raise InputError("input batch is empty (B = 0)")
    if array.dtype.kind == "f":
        finite = np.isfinite(array)
        if not finite.all():
            raise InputError(f"input batch holds a non-finite value at index {_first(~finite)}")
        fractional = array != np.round(array)
        if fractional.any():
            index = _first(fractional)
            raise InputError(
                f"input batch must hold integers (pixels or event counts); value "
                f"{array[index]!r} at index {index}"
            )
    elif array.dtype.kind not in "iub":
        raise InputError(
            f"input batch must have an integer dtype (or integer-valued floats), not {array.dtype}"
        )
    values = array.astype(np.int64)
    limit = (1 << program.input_planes) - 1
    bad = (values < 0) | (values > limit)
    if bad.any():
        index = _first(bad)
        raise InputError(
            f"input value {values[index]} at index {index} is outside [0, {limit}] "
            f"({program.input_planes}-bit inputs); clip event counts with "
            f"contract.intmodel.quantize_input first"
        )
    return values


def _first(mask: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(mask)[0])


def pack_batch(x: Any, program: Program) -> np.ndarray:
    """One input stream per sample: ``uint64 [B, words]`` (every sample's stream has the same length)."""
    values = validate_batch(x, program)
    try:
        return np.stack([program.stream(sample) for sample in values])
    except ProgramError as exc:  # validate_batch should have caught it; keep the typed error anyway
        raise InputError(str(exc)) from None


def packets(program: Program) -> list[Packet]:
    """The output packets of one sample, in the order the accelerator sends them."""
    out, offset = [], 0
    for spec in program.outputs:
        out.append(Packet(spec.name, offset, spec.words))
        offset += spec.words
    return out


def segment_packets(program: Program) -> list[list[Packet]]:
    """:func:`packets` split by segment (offsets stay those of the whole output stream)."""
    every = packets(program)
    return [[every[i] for i in outputs] for _, outputs in program.segments()]


def unpack_batch(words: np.ndarray, program: Program) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``uint64 [B, output_words]`` -> ``(logits int64 [B, classes], trace {op: [T, B, ...]})``."""
    words = np.asarray(words, dtype=np.uint64)
    if words.ndim != 2 or words.shape[1] != program.output_words:
        raise ValueError(f"output words must be [B, {program.output_words}], not {list(words.shape)}")
    logits, traces = [], []
    for row in words:
        sample_logits, trace = program.decode(row)
        logits.append(sample_logits)
        traces.append(trace)
    return np.stack(logits), _stack_traces(traces)


def _stack_traces(traces: list[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    # Program.decode gives [T, 1, ...] per sample: the batch axis is axis 1, as in IntModel traces.
    if not traces or not traces[0]:
        return {}
    return {name: np.concatenate([t[name] for t in traces], axis=1) for name in traces[0]}
