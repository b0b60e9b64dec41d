"""Worst-case value bounds of an integer model: proof that no width overflows (docs/numerics.md §9).

:func:`overflow_report` propagates the largest value ``R`` of every tensor through the
op graph of an :class:`~contract.intmodel.IntModel` and bounds, from the actual integer
weights, every accumulator, LIF input current and logit. The bounds are attained by some
input whenever a full kernel window fits the input, so they are the tightest bounds that
hold for all inputs. :func:`check_overflow` turns a violated bound into an
:class:`OverflowRiskError` (or a :class:`SaturationWarning` when saturation is allowed);
the exporter calls it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from .intmodel import IntModel, Op
from .numerics import signed_range

__all__ = [
    "OpBound",
    "OverflowReport",
    "OverflowRiskError",
    "SaturationWarning",
    "check_overflow",
    "overflow_report",
    "signed_bits",
]

_LOGIT_BITS = 64


class OverflowRiskError(ValueError):
    """A value of op ``op`` can leave its width; ``field`` says which value, ``reason`` the bound."""

    def __init__(self, op: str, field: str, reason: str) -> None:
        self.op, self.field, self.reason = op, field, reason
        super().__init__(f"overflow check: op {op!r}, {field}: {reason}")


class SaturationWarning(UserWarning):
    """A current bound exceeds the membrane width: saturation can engage (still bit-exact)."""


def signed_bits(lo: int, hi: int) -> int:
    """Smallest two's-complement width holding every integer of ``[lo, hi]``."""
    bits = 1
    while lo < signed_range(bits)[0] or hi > signed_range(bits)[1]:
        bits += 1
    return bits


@dataclass(frozen=True)
class OpBound:
    """Bounds of one op.

    Attributes
    ----------
    name, kind:
        The op.
    input_max:
        Largest value of each input (``R``).
    output_max:
        Largest value of the output (1 for spikes; the logit bound for the head).
    acc_range, current_range:
        ``(min, max)`` of the accumulator and of the LIF input current before saturation
        (``(0, 0)`` for ops without them); for the head, the logit range.
    acc_bits, current_bits:
        Signed widths those ranges need.
    problems:
        ``(field, reason, saturation_only)`` for every violated bound.
    """

    name: str
    kind: str
    input_max: tuple[int, ...]
    output_max: int
    acc_range: tuple[int, int] = (0, 0)
    current_range: tuple[int, int] = (0, 0)
    problems: tuple[tuple[str, str, bool], ...] = ()

    @property
    def acc_bits(self) -> int:
        return signed_bits(*self.acc_range)

    @property
    def current_bits(self) -> int:
        return signed_bits(*self.current_range)


@dataclass(frozen=True)
class OverflowReport:
    """Bounds of every op of a model, in op order."""

    ops: tuple[OpBound, ...]
    membrane_bits: int
    input_bits: int

    @property
    def overflow_free(self) -> bool:
        """No bound violated: no value can leave its width and saturation never engages."""
        return not any(b.problems for b in self.ops)

    def by_name(self) -> dict[str, OpBound]:
        return {b.name: b for b in self.ops}

    def table(self) -> str:
        """Plain-text table: op, kind, input bounds, accumulator / current ranges and widths."""
        rows = [("op", "kind", "R in", "acc range", "acc bits", "current range", "cur bits", "ok")]
        for b in self.ops:
            has_acc = b.kind in ("conv", "conv_maxpool", "linear", "attention", "head")
            rows.append(
                (
                    b.name,
                    b.kind,
                    ",".join(map(str, b.input_max)),
                    f"[{b.acc_range[0]}, {b.acc_range[1]}]" if has_acc else "",
                    str(b.acc_bits) if has_acc else "",
                    f"[{b.current_range[0]}, {b.current_range[1]}]" if has_acc else "",
                    str(b.current_bits) if has_acc else "",
                    "yes" if not b.problems else "; ".join(f"{f}: {r}" for f, r, _ in b.problems),
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def _weight_bounds(w: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray]:
    """Per output channel ``(sum of negative weights * R, sum of positive weights * R)``."""
    flat = w.reshape(w.shape[0], -1)
    return np.where(flat < 0, flat, 0).sum(axis=1) * r, np.where(flat > 0, flat, 0).sum(axis=1) * r


def _synapse_bound(op: Op, r: int, model: IntModel) -> OpBound:
    cfg = model.numerics
    acc_lo, acc_hi = _weight_bounds(op.tensors["weight"], r)
    bias = op.tensors["bias"]
    cur_lo, cur_hi = (acc_lo << cfg.frac_bits) + bias, (acc_hi << cfg.frac_bits) + bias
    problems = []
    if r > cfg.input_max:
        reason = (
            f"input bound {r} exceeds input_bits={cfg.input_bits} (max {cfg.input_max}): "
            f"the synapse PE reads {cfg.input_bits} bit planes"
        )
        problems.append(("input", reason, False))
    worst_lo, worst_hi = int(np.argmin(cur_lo)), int(np.argmax(cur_hi))
    if cur_lo[worst_lo] < cfg.membrane_min or cur_hi[worst_hi] > cfg.membrane_max:
        channel = worst_hi if cur_hi[worst_hi] > cfg.membrane_max else worst_lo
        need = signed_bits(int(cur_lo.min()), int(cur_hi.max()))
        problems.append(
            (
                "current",
                f"channel {channel} current bound [{int(cur_lo[channel])}, "
                f"{int(cur_hi[channel])}] exceeds membrane_bits={cfg.membrane_bits}; "
                f"needs {need} bits",
                True,
            )
        )
    return OpBound(
        op.name,
        op.kind,
        (r,),
        1,
        (int(acc_lo.min()), int(acc_hi.max())),
        (int(cur_lo.min()), int(cur_hi.max())),
        tuple(problems),
    )


def _attention_bound(op: Op, rs: tuple[int, ...], model: IntModel) -> OpBound:
    cfg = model.numerics
    t, n, d = model.shapes[op.inputs[0]]
    group = {"joint": t * n, "temporal": t, "spatial": n}[op.params["grouping"]]
    acc_hi = group * (d // op.params["heads"])
    cur_hi = acc_hi << cfg.frac_bits
    problems = []
    if max(rs) > 1:
        problems.append(("input", f"q, k, v must be binary spikes, got bounds {rs}", False))
    if cur_hi > cfg.membrane_max:
        need = signed_bits(0, cur_hi)
        problems.append(
            (
                "current",
                f"attention current bound {cur_hi} (group {group}) exceeds "
                f"membrane_bits={cfg.membrane_bits}; needs {need} bits",
                True,
            )
        )
    return OpBound(op.name, op.kind, rs, 1, (0, acc_hi), (0, cur_hi), tuple(problems))


def _head_bound(op: Op, r: int, model: IntModel) -> OpBound:
    cfg = model.numerics
    t, n, _ = model.shapes[op.inputs[0]]
    pooled_max = t * n * r
    # Python integers: the bound itself must not overflow while it is being computed.
    w = op.tensors["weight"].tolist()
    bias = op.tensors["bias"].tolist()
    acc_lo = [sum(x for x in row if x < 0) * pooled_max for row in w]
    acc_hi = [sum(x for x in row if x > 0) * pooled_max for row in w]
    lo = [a * (1 << cfg.frac_bits) + b for a, b in zip(acc_lo, bias, strict=True)]
    hi = [a * (1 << cfg.frac_bits) + b for a, b in zip(acc_hi, bias, strict=True)]
    problems = []
    need = signed_bits(min(lo), max(hi))
    if need > _LOGIT_BITS:
        problems.append(("logits", f"logit bound [{min(lo)}, {max(hi)}] needs {need} bits (> 64)", False))
    return OpBound(
        op.name,
        op.kind,
        (r,),
        max(abs(min(lo)), max(hi)),
        (min(acc_lo), max(acc_hi)),
        (min(lo), max(hi)),
        tuple(problems),
    )


def overflow_report(model: IntModel) -> OverflowReport:
    """Bounds of every op of ``model`` (docs/numerics.md section 9)."""
    cfg = model.numerics
    value_max = {"input": cfg.input_max}
    bounds = []
    for op in model.ops:
        rs = tuple(value_max[name] for name in op.inputs)
        if op.kind in ("conv", "conv_maxpool", "linear"):
            bound = _synapse_bound(op, rs[0], model)
        elif op.kind == "attention":
            bound = _attention_bound(op, rs, model)
        elif op.kind == "head":
            bound = _head_bound(op, rs[0], model)
        else:
            out = sum(rs) if op.kind == "add" else rs[0]
            if op.kind == "add_const":  # a constant of spikes: one more than the input
                out += int(op.tensors["spikes"].max(initial=0))
            problems = ()
            if out > cfg.input_max:
                problems = (
                    (
                        "output",
                        f"value bound {out} exceeds input_bits={cfg.input_bits} (max {cfg.input_max})",
                        False,
                    ),
                )
            bound = OpBound(op.name, op.kind, rs, out, problems=problems)
        value_max[op.name] = bound.output_max
        bounds.append(bound)
    return OverflowReport(tuple(bounds), cfg.membrane_bits, cfg.input_bits)


def check_overflow(model: IntModel, *, allow_saturation: bool = False) -> OverflowReport:
    """:func:`overflow_report`, raising :class:`OverflowRiskError` on the first violated bound.

    With ``allow_saturation``, a current bound beyond the membrane width only warns
    (:class:`SaturationWarning`): saturation is part of the integer semantics, so the
    golden and RTL results still agree, but the float model no longer bounds them.
    """
    report = overflow_report(model)
    for bound in report.ops:
        for field, reason, saturation_only in bound.problems:
            if saturation_only and allow_saturation:
                warnings.warn(f"op {bound.name!r}, {field}: {reason}", SaturationWarning, stacklevel=2)
            else:
                raise OverflowRiskError(bound.name, field, reason)
    return report
