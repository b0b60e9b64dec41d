"""Bit-accurate integer reference model of the Hardware Spikeformer (docs/numerics.md, section 10).

An :class:`IntModel` is a list of :class:`~.ops.Op` s in execution order, checked on
construction (:mod:`.shapes`) and run by :mod:`.executor`: no floating point anywhere in
:meth:`IntModel.run`.

Value layouts (``B`` = batch): image-like ``[T, B, C, H, W]``, tokens ``[T, B, N, D]``,
logits ``[B, classes]``. Shapes recorded per op leave out the batch axis.

The model is independent of PyTorch: it is built by :mod:`golden.quantize` from a
trained float model, or loaded from an export directory by :mod:`contract.manifest`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import numerics as nm
from .executor import execute
from .inputs import quantize_input
from .ops import IntModelError, Op, Shape, Trace
from .shapes import infer_shapes

__all__ = ["IntModel"]


@dataclass(frozen=True, eq=False)
class IntModel:
    """Integer reference model: validated on construction, run with :meth:`run`.

    Parameters
    ----------
    numerics:
        Widths and fixed-point parameters.
    input_shape:
        ``(C, H, W)`` of one time step of the input.
    timesteps:
        ``T``.
    num_classes:
        Width of the logits.
    ops:
        Operations in execution order; the last one is the ``head``.
    preset, model_config:
        The float model this was quantized from (informational).
    event:
        ``True`` when the input is event frames ``[B, T, C, H, W]`` rather than a static image.

    Attributes
    ----------
    shapes:
        Value name -> shape without the batch axis (``"input"`` included).
    """

    numerics: nm.NumericsConfig
    input_shape: tuple[int, int, int]
    timesteps: int
    num_classes: int
    ops: tuple[Op, ...]
    preset: str = ""
    model_config: Mapping[str, Any] = field(default_factory=dict)
    event: bool = False
    shapes: dict[str, Shape] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.numerics, nm.NumericsConfig):
            raise IntModelError(
                "", "numerics", f"must be a NumericsConfig, not {type(self.numerics).__name__}"
            )
        object.__setattr__(self, "input_shape", tuple(int(s) for s in self.input_shape))
        object.__setattr__(self, "ops", tuple(self.ops))
        if len(self.input_shape) != 3 or min(self.input_shape) < 1:
            raise IntModelError(
                "", "input_shape", f"must be three positive sizes (C, H, W), not {self.input_shape}"
            )
        for key in ("timesteps", "num_classes"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise IntModelError("", key, f"must be a positive integer, not {value!r}")
        if not self.ops or self.ops[-1].kind != "head" or sum(op.kind == "head" for op in self.ops) != 1:
            raise IntModelError("", "ops", "must end with the one and only 'head' op")
        object.__setattr__(
            self,
            "shapes",
            infer_shapes(
                self.ops,
                input_shape=(self.timesteps, *self.input_shape),
                numerics=self.numerics,
                num_classes=self.num_classes,
            ),
        )

    @property
    def op_names(self) -> tuple[str, ...]:
        """Names of the ops in execution order."""
        return tuple(op.name for op in self.ops)

    def op(self, name: str) -> Op:
        """The op called ``name``."""
        for op in self.ops:
            if op.name == name:
                return op
        raise KeyError(f"integer model has no op {name!r}; ops: {', '.join(self.op_names)}")

    def run(self, x: np.ndarray, *, trace: bool = False) -> tuple[np.ndarray, Trace]:
        """Run a batch: ``x`` integers ``[B, T, C, H, W]`` or ``[B, C, H, W]`` (static, repeated over T).

        Returns
        -------
        logits:
            ``int64 [B, classes]``.
        trace:
            Empty unless ``trace``: every op's output under its name, LIF input currents under
            ``name + ".current"``, the head's sum-pool under ``"head.pooled"`` (op order).
        """
        x = quantize_input(x, input_max=self.numerics.input_max, strict=True)
        return execute(self.ops, self._time_major(x), self.numerics, trace=trace)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """``argmax`` of the logits (first index on ties)."""
        return self.run(x)[0].argmax(axis=1)

    def _time_major(self, x: np.ndarray) -> np.ndarray:
        step = self.input_shape
        if x.ndim == 4 and x.shape[1:] == step:
            return np.broadcast_to(x[None], (self.timesteps, *x.shape))
        if x.ndim == 5 and x.shape[1:] == (self.timesteps, *step):
            return x.transpose(1, 0, 2, 3, 4)
        raise ValueError(
            f"input must be [B, {self.timesteps}, {', '.join(map(str, step))}] or "
            f"[B, {', '.join(map(str, step))}], got shape {x.shape}"
        )
