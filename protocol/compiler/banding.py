"""Emission of a band-tiled conv stage (the compiler's side of docs/accelerator.md, section 6).

:func:`banded_stage` is called by the program builder (:mod:`protocol.compiler.builder`)
for a conv, with the max-pool that is its only reader, whose tensors do not fit the
activation memory. It picks the tallest band of output rows whose buffers fit (geometry in
:mod:`protocol.bands`) and emits per band::

    LOAD   input rows (halo included) from a host tensor      -> buffer A
    CONV   A -> B  (pad_top only where the band touches the top padding)
    STORE  B's conv rows (traced programs only, each conv row once)
    POOL   B -> A  (the input rows are dead once the conv ran)
    STORE  A's output rows                                     -> host tensor

A conv that pools its currents before the LIF (``conv_maxpool``) is one pooled CONV per
band, ``A -> B`` with B holding the band's pooled rows: its ``pool_pad_top`` is the pool's
padding in the first band only, and the rows below its loaded input pad like the columns
(``pad_left``), so the band that ends at the bottom edge keeps the image's bottom padding.

Each band's CONV carries the whole weight payload: weights are held per output-channel
group in WMEM while one band's positions use them, so they stream once per band.
The stage's output then lives only in host memory; its next reader LOADs it whole or,
if that reader is an oversize stage too, band-wise (a new segment starts first, since
the host must feed words this segment stored).

The builder is reached only through :class:`StageBuilder`, the part of its public surface
this module needs, so this module does not import the builder.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from contract.intmodel import IntModel, Op
from protocol.bands import Band, BandedStage, StageGeometry, Window, largest_fitting_rows, plan_bands
from protocol.compiler.alloc import Allocator
from protocol.compiler.errors import CompileError
from protocol.compiler.values import Value
from protocol.config import AcceleratorConfig
from protocol.descriptors import Opcode
from protocol.program import HostSlice, HostTensor

__all__ = ["StageBuilder", "banded_stage"]


class StageBuilder(Protocol):
    """What :func:`banded_stage` needs of the program builder
    (:class:`protocol.compiler.builder.ProgramBuilder` provides it).

    Attributes
    ----------
    model, cfg, trace, t:
        The model, the configuration, whether every op's output is traced, and time steps.
    alloc:
        The activation-memory allocator the bands' buffers come from.
    values:
        Placed values by op name; the stage replaces its ops' entries with host-only values.
    tensors:
        Host tensors by name; the stage adds the ones it streams to.
    stages:
        Band-tiled stages; the stage appends its summary.
    last_use:
        Index of the last model op that reads each value.
    """

    model: IntModel
    cfg: AcceleratorConfig
    trace: bool
    t: int
    alloc: Allocator
    values: dict[str, Value]
    tensors: dict[str, HostTensor]
    stages: list[BandedStage]
    last_use: dict[str, int]

    @property
    def command_count(self) -> int:
        """Commands emitted so far."""
        ...

    def emit(
        self,
        op: str,
        opcode: Opcode,
        payload: np.ndarray | None = None,
        *,
        is_input: bool = False,
        feed: HostSlice | None = None,
        **fields: int,
    ) -> None:
        """Append one validated command."""
        ...

    def evict(self, name: str) -> None:
        """Free the activation region of value ``name``."""
        ...

    def feed(self, name: str, part: HostSlice, *, dst: int) -> None:
        """LOAD host words, starting a new segment first if this one writes them."""
        ...

    def send(self, name: str, command: str, *, src: int, part: HostSlice) -> None:
        """STORE activation words into a slice of a host tensor."""
        ...

    def conv_fields(self, op: Op, src: Value) -> dict[str, int]:
        """``CONV`` descriptor fields of ``op`` over its whole input."""
        ...

    def conv_payload(self, op: Op) -> np.ndarray:
        """``CONV`` payload of ``op``."""
        ...

    def pool_fields(self, op: Op) -> dict[str, int]:
        """``POOL`` descriptor fields of ``op`` over its whole input."""
        ...


def _geometry(builder: StageBuilder, conv: Op, pool: Op | None) -> StageGeometry:
    src = builder.values[conv.inputs[0]]
    _, _, ih, iw = src.shape
    _, c, oh, ow = builder.model.shapes[conv.name]
    k = conv.tensors["weight"].shape[2]
    stride, pad = conv.params["stride"], conv.params["padding"]
    geometry = dict(in_rows=ih, in_row_words=iw * src.channels * src.planes, conv=Window(k, stride, pad))
    if conv.kind == "conv_maxpool":  # the model's shape is the pooled one; the conv rows never leave
        p = conv.params
        conv_h, conv_w = ((n + 2 * pad - k) // stride + 1 for n in (ih, iw))
        geometry.update(
            conv_rows=conv_h,
            conv_row_words=conv_w * c,
            pool=Window(p["pool_kernel"], p["pool_stride"], p["pool_padding"]),
            pool_rows=oh,
            pool_row_words=ow * c,
        )
    else:
        geometry.update(conv_rows=oh, conv_row_words=ow * c)
    if pool is not None:
        _, _, ph, pw = builder.model.shapes[pool.name]
        p = pool.params
        geometry.update(
            pool=Window(p["kernel"], p["stride"], p["padding"]), pool_rows=ph, pool_row_words=pw * c
        )
    return StageGeometry(**geometry)


def _buffers(bands: list[Band], geometry: StageGeometry, *, fused: bool) -> tuple[int, int]:
    """Words of buffer A (input rows; a POOL's rows reuse it) and buffer B (conv rows, or a
    pooled CONV's output rows)."""
    words = [band.words(geometry) for band in bands]
    if fused:
        return max(w[0] for w in words), max(w[2] for w in words)
    pooled = geometry.pool is not None
    a = max(max(w[0], w[2]) if pooled else w[0] for w in words)
    return a, max(w[1] for w in words)


def banded_stage(builder: StageBuilder, index: int, conv: Op, pool: Op | None = None) -> None:
    """Emit ``conv`` (model op ``index``) and ``pool`` band by band; see the module docstring."""
    cfg, trace = builder.cfg, builder.trace
    src_name = conv.inputs[0]
    src = builder.values[src_name]
    ops = (conv.name,) if pool is None else (conv.name, pool.name)
    first_command = builder.command_count
    if src.host is None:  # produced on chip: send it to the host, then read it back in bands
        builder.tensors.setdefault(src_name, HostTensor(src_name, src.words, src.shape, src.planes))
        whole = HostSlice(src_name, 0, src.words)
        builder.send(src_name, f"spill:{src_name}", src=src.region.start, part=whole)
        src.host = src_name
    if src.region is not None and builder.last_use[src_name] <= index:
        builder.evict(src_name)  # nothing else reads it on chip: make room for the bands

    fused = conv.kind == "conv_maxpool"
    cover = trace and not fused  # a pooled CONV's conv rows are never stored, nor traced
    geometry = _geometry(builder, conv, pool)
    rows = largest_fitting_rows(
        geometry,
        lambda bands: builder.alloc.fits(list(_buffers(bands, geometry, fused=fused))),
        cover_conv=cover,
    )
    if rows == 0:
        a, b = _buffers(plan_bands(geometry, 1, cover_conv=cover), geometry, fused=fused)
        free = builder.alloc.largest_free
        raise CompileError(
            conv.name,
            f"stage {' + '.join(ops)} does not fit the activation memory even in bands of one output "
            f"row: a band needs {a} + {b} words, the largest free block holds {free} of amem_depth "
            f"{cfg.amem_depth}; use a configuration with a larger amem_depth",
        )
    bands = plan_bands(geometry, rows, cover_conv=cover)
    size_a, size_b = _buffers(bands, geometry, fused=fused)
    buf_a, buf_b = builder.alloc.alloc(size_a, conv.name), builder.alloc.alloc(size_b, conv.name)

    _, c, oh, ow = builder.model.shapes[conv.name]
    conv_shape = (builder.t, c, oh, ow)
    if pool is None or trace:  # the conv's own rows go to the host (its output, or its trace)
        builder.tensors[conv.name] = HostTensor(conv.name, oh * ow * c, conv_shape, 1, trace)
    out_name = conv.name if pool is None else pool.name
    if pool is not None:
        _, _, ph, pw = builder.model.shapes[pool.name]
        builder.tensors[pool.name] = HostTensor(pool.name, ph * pw * c, (builder.t, c, ph, pw), 1, trace)
    out_row = geometry.pool_row_words if geometry.pool is not None else geometry.conv_row_words

    conv_fields = builder.conv_fields(conv, src)
    payload = builder.conv_payload(conv)
    load_words = store_words = 0
    for band in bands:
        (a0, a1), (c0, c1), (q0, q1) = band.inp, band.conv, band.out
        part = HostSlice(src.host, a0 * geometry.in_row_words, (a1 - a0) * geometry.in_row_words)
        builder.feed(conv.name, part, dst=buf_a.start)
        load_words += part.count
        band_rows = dict(in_h=a1 - a0, out_h=q1 - q0 if fused else c1 - c0, pad_top=band.conv_pad_top)
        if fused:
            band_rows["pool_pad_top"] = band.pool_pad_top
        builder.emit(
            conv.name,
            Opcode.CONV,
            payload,
            src0=buf_a.start,
            dst=buf_b.start,
            **{**conv_fields, **band_rows},
        )
        if pool is not None and trace and band.owned[1] > band.owned[0]:
            r0, r1 = band.owned
            part = HostSlice(conv.name, r0 * geometry.conv_row_words, (r1 - r0) * geometry.conv_row_words)
            start = buf_b.start + (r0 - c0) * geometry.conv_row_words
            builder.send(conv.name, f"trace:{conv.name}", src=start, part=part)
            store_words += part.count
        if pool is not None:
            builder.emit(
                pool.name,
                Opcode.POOL,
                src0=buf_b.start + band.pool_skip * geometry.conv_row_words,
                dst=buf_a.start,
                **{
                    **builder.pool_fields(pool),
                    "in_h": c1 - c0 - band.pool_skip,
                    "out_h": q1 - q0,
                    "pad_top": band.pool_pad_top,
                },
            )
        part = HostSlice(out_name, q0 * out_row, (q1 - q0) * out_row)
        builder.send(out_name, out_name, src=(buf_a if pool is not None else buf_b).start, part=part)
        store_words += part.count
    builder.alloc.release(buf_a)
    builder.alloc.release(buf_b)

    # The outputs live in host memory only; readers load them (resident or band-wise).
    host = conv.name if conv.name in builder.tensors else None  # None: read by the pool only, gone
    builder.values[conv.name] = Value(None, oh * ow, c, 1, conv_shape, host=host)
    if pool is not None:
        builder.values[pool.name] = Value(None, ph * pw, c, 1, (builder.t, c, ph, pw), host=pool.name)
    builder.stages.append(
        BandedStage(
            ops=ops,
            bands=len(bands),
            rows_per_band=rows,
            commands=tuple(range(first_command, builder.command_count)),
            load_words=load_words,
            store_words=store_words,
            amem_words=size_a + size_b,
        )
    )
