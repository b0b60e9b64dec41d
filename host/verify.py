"""Bit-exactness of the accelerator against the integer reference, down to the first differing layer.

:func:`check_bit_exact` runs a batch through a driver and compares the logits with the
integer reference's. When they differ (or when asked), it recompiles the model with
``trace=True`` (a ``STORE`` after every op), reruns the differing samples and compares
every op's output with the integer model's trace in execution order, so the report
names the first differing layer and the sample and position inside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from contract.intmodel import IntModel, Mismatch, compare_traces
from protocol.compiler import compile_model
from protocol.program import Program

from .backends.base import Backend
from .driver import Driver, Progress, RunResult

__all__ = ["LayerMismatch", "BitExactReport", "first_layer_mismatch", "check_bit_exact"]


@dataclass(frozen=True)
class LayerMismatch:
    """The first op whose accelerator output differs from the integer reference.

    Attributes
    ----------
    layer:
        Op name (``"logits"`` when every traced layer agrees but the logits do not).
    sample:
        Index of the sample in the batch that was compared.
    position:
        Index inside that sample's value (trace layout without the batch axis).
    expected, actual:
        The two values there.
    count:
        Differing elements of that layer over the compared samples.
    """

    layer: str
    sample: int | None
    position: tuple[int, ...] | None
    expected: int | None
    actual: int | None
    count: int
    reason: str = ""

    def __str__(self) -> str:
        if self.position is None:
            return f"layer {self.layer!r}: {self.reason}"
        return (
            f"first differing layer {self.layer!r}: sample {self.sample}, position {self.position}: "
            f"expected {self.expected}, got {self.actual} ({self.count} differing values)"
        )


@dataclass(frozen=True, eq=False)
class BitExactReport:
    """Outcome of :func:`check_bit_exact`.

    Attributes
    ----------
    samples:
        Samples compared.
    differing:
        Indices of samples whose logits differ from the reference.
    mismatch:
        The first differing layer (``None`` when bit-exact, or when no trace was run).
    result:
        The driver's :class:`~host.driver.RunResult` of the batch.
    reference:
        The reference logits ``[B, classes]``.
    """

    samples: int
    differing: list[int]
    mismatch: LayerMismatch | None
    result: RunResult
    reference: np.ndarray

    @property
    def exact(self) -> bool:
        return not self.differing and self.mismatch is None

    def summary(self) -> str:
        if self.exact:
            return f"yes ({self.samples}/{self.samples} samples: logits equal the integer reference)"
        text = f"NO ({len(self.differing)} of {self.samples} samples differ"
        text += f", first: sample {self.differing[0]})" if self.differing else ")"
        return text + (f"; {self.mismatch}" if self.mismatch is not None else "")


def _to_layer_mismatch(m: Mismatch, samples: list[int]) -> LayerMismatch:
    if m.index is None:
        return LayerMismatch(m.name, None, None, None, None, 0, m.reason)
    # Traces are [T, B, ...] (batch axis 1); logits are [B, classes].
    axis = 0 if m.name == "logits" else 1
    batch_index = m.index[axis]
    position = m.index[:axis] + m.index[axis + 1 :]
    return LayerMismatch(m.name, samples[batch_index], position, m.expected, m.actual, m.count)


def first_layer_mismatch(
    backend: Backend,
    model: IntModel,
    x: np.ndarray,
    *,
    config: Any,
    samples: list[int] | None = None,
    timeout_s: float | None = None,
    traced: Program | None = None,
) -> LayerMismatch | None:
    """Run ``x`` with a traced program and return the first op that differs from ``model`` (or ``None``).

    ``samples`` are the batch indices of ``x`` in the caller's numbering (for the report).
    ``traced`` is the traced program to run; by default ``model`` compiled with
    ``trace=True`` (tests pass a program of a deliberately altered model).
    """
    program = compile_model(model, config, trace=True) if traced is None else traced
    driver = Driver(backend, program, timeout_s=timeout_s)
    try:
        result = driver.run(x)
    finally:
        driver.close()
    logits, trace = model.run(x, trace=True)
    expected = {**{name: trace[name] for name in program.trace_names}, "logits": logits}
    actual = {**result.traces, "logits": result.logits}
    mismatch = compare_traces(expected, actual, names=[*program.trace_names, "logits"])
    numbering = samples if samples is not None else list(range(len(x)))
    return None if mismatch is None else _to_layer_mismatch(mismatch, numbering)


def check_bit_exact(
    driver: Driver,
    model: IntModel,
    x: np.ndarray,
    *,
    reference: np.ndarray | None = None,
    trace: str = "on-failure",
    max_traced: int = 4,
    traced: Program | None = None,
    progress: Progress | None = None,
    result: RunResult | None = None,
) -> BitExactReport:
    """Run ``x`` through ``driver`` and compare its logits with the integer reference.

    Parameters
    ----------
    driver:
        A driver bound to the (untraced) program of ``model``.
    model:
        The integer reference.
    x:
        The batch (validated by the driver).
    reference:
        Known reference logits (e.g. an export's test vectors); computed with ``model`` if ``None``.
    trace:
        ``"on-failure"``: locate the first differing layer when logits differ;
        ``"always"``: also trace when they agree (checks every layer); ``"never"``.
    max_traced:
        Samples rerun with the traced program (the first differing ones).
    traced:
        The traced program (default: ``model`` compiled with ``trace=True``).
    progress:
        Passed to :meth:`Driver.run <host.driver.Driver.run>` (called once per sample, in order).
    result:
        The batch's result when it was already run elsewhere (``python -m host.run --jobs N``
        runs shares of the batch in several processes, :mod:`host.parallel`); then only the
        traced rerun, if any, uses ``driver``.
    """
    if trace not in ("on-failure", "always", "never"):
        raise ValueError(f"trace must be 'on-failure', 'always' or 'never', not {trace!r}")
    if result is None:
        result = driver.run(x, progress=progress)
    expected = model.run(x)[0] if reference is None else np.asarray(reference, dtype=np.int64)
    if expected.shape != result.logits.shape:
        raise ValueError(
            f"reference logits have shape {expected.shape}, the accelerator returned {result.logits.shape}"
        )
    differing = [int(i) for i in np.flatnonzero((expected != result.logits).any(axis=1))]
    mismatch = None
    if (differing and trace != "never") or trace == "always":
        chosen = (differing or list(range(len(x))))[:max_traced]
        mismatch = first_layer_mismatch(
            driver.backend,
            model,
            np.asarray(x)[chosen],
            config=driver.program.config,
            samples=chosen,
            timeout_s=driver.timeout_s,
            traced=traced,
        )
    return BitExactReport(
        samples=len(expected), differing=differing, mismatch=mismatch, result=result, reference=expected
    )
