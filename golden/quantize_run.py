"""The quantization flow and its CLI, ``python -m golden.quantize --checkpoint F --data-root D --out O``.

1. load the trained float model, derive the widths (:func:`golden.quantize.numerics_for`);
2. post-training quantization: :class:`~golden.quantize.FakeQuantModel` (weights rounded
   by ``--rounding``, default ``calibrated`` on ``--calibration-samples`` training samples:
   :mod:`golden.quantize_rounding`) and the :class:`~contract.intmodel.IntModel` with the
   same integers;
3. evaluate on the test split: float / fake-quant / integer top-1, per-layer firing rates,
   float-vs-integer spike agreement, and the exact fake-quant == integer check at every layer;
4. optionally (``--qat-epochs N``) quantization-aware fine-tuning with straight-through
   gradients when the float-to-integer drop exceeds ``--qat-threshold`` points (then the
   calibrated rounding is chosen again for the fine-tuned weights), then 3 again;
5. export (manifest, integer tensors, test vectors of ``--samples`` test images), reload
   and re-check the vectors.

Writes into ``--out``: ``export/`` (the export directory), ``quant_report.json``,
``quant_layers.csv`` and ``overflow.txt``; prints the accuracy table.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset, Subset

from contract.intmodel import LIF_KINDS, IntModel, compare_traces, quantize_input
from contract.manifest import check_test_vectors, load_export, make_test_vectors, write_export
from contract.overflow import overflow_report

from .interop.quantize import sj_float_spikes
from .models.sj_spikformer import SjSpikformer
from .neuron import LIFNode
from .quantize import FakeQuantModel, numerics_for, to_int_model
from .quantize_rounding import ROUNDINGS, calibrate_rounding

__all__ = ["LayerStats", "QuantReport", "evaluate_quantization", "finetune_qat", "main", "build_parser"]


@dataclass
class LayerStats:
    """Per-op statistics over the evaluated samples.

    ``float_rate`` / ``int_rate``: firing rates (spikes per neuron and step) of the float
    model's LIF and of the integer op; ``agreement``: fraction of equal spikes between them;
    ``fq_mismatches``: elements where fake-quant and integer values differ (must be 0).
    """

    name: str
    kind: str
    lif: str | None
    elements: int = 0
    int_spikes: int = 0
    float_spikes: int = 0
    agree: int = 0
    fq_mismatches: int = 0

    @property
    def int_rate(self) -> float | None:
        return self.int_spikes / self.elements if self.kind in LIF_KINDS and self.elements else None

    @property
    def float_rate(self) -> float | None:
        return self.float_spikes / self.elements if self.lif and self.elements else None

    @property
    def agreement(self) -> float | None:
        return self.agree / self.elements if self.lif and self.elements else None

    def row(self) -> dict[str, Any]:
        return {
            "layer": self.name,
            "kind": self.kind,
            "lif": self.lif or "",
            "elements": self.elements,
            "float_rate": self.float_rate,
            "int_rate": self.int_rate,
            "agreement": self.agreement,
            "fq_int_mismatches": self.fq_mismatches,
        }


@dataclass
class QuantReport:
    """Accuracy of the float, fake-quant and integer models and per-layer statistics."""

    samples: int = 0
    float_correct: int = 0
    fakequant_correct: int = 0
    integer_correct: int = 0
    first_mismatch: str | None = None
    layers: list[LayerStats] = field(default_factory=list)

    def top1(self, correct: int) -> float:
        return 100.0 * correct / self.samples if self.samples else float("nan")

    @property
    def float_top1(self) -> float:
        return self.top1(self.float_correct)

    @property
    def fakequant_top1(self) -> float:
        return self.top1(self.fakequant_correct)

    @property
    def integer_top1(self) -> float:
        return self.top1(self.integer_correct)

    @property
    def drop(self) -> float:
        """Float minus integer top-1, in points."""
        return self.float_top1 - self.integer_top1

    @property
    def fakequant_equals_integer(self) -> bool:
        return self.first_mismatch is None

    def summary(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "float_top1": self.float_top1,
            "fakequant_top1": self.fakequant_top1,
            "integer_top1": self.integer_top1,
            "drop_points": self.drop,
            "fakequant_equals_integer": self.fakequant_equals_integer,
            "first_mismatch": self.first_mismatch,
        }

    def table(self) -> str:
        rows = [
            ("model", "top-1 %"),
            ("float", f"{self.float_top1:.2f}"),
            ("fake-quant", f"{self.fakequant_top1:.2f}"),
            ("integer", f"{self.integer_top1:.2f}"),
        ]
        width = max(len(r[0]) for r in rows)
        lines = [f"{a.ljust(width)}  {b}" for a, b in rows]
        lines.append(
            f"{self.samples} test samples; float - integer = {self.drop:+.2f} points; fake-quant == "
            f"integer at every layer: {'yes' if self.fakequant_equals_integer else 'NO'}"
        )
        return "\n".join(lines)


class _FloatSpikes:
    """Forward hooks on every LIF of the float model: its spikes of the current batch by module path."""

    def __init__(self, model: nn.Module) -> None:
        self.spikes: dict[str, torch.Tensor] = {}
        self.handles = [
            m.register_forward_hook(self._hook(name))
            for name, m in model.named_modules()
            if isinstance(m, LIFNode)
        ]

    def _hook(self, name: str):  # noqa: ANN202 - torch hook signature
        def hook(module: nn.Module, args: Any, out: torch.Tensor) -> None:
            self.spikes[name] = out.detach()

        return hook

    def close(self) -> None:
        for h in self.handles:
            h.remove()


@torch.no_grad()
def evaluate_quantization(
    float_model: nn.Module,
    fq: FakeQuantModel,
    int_model: IntModel,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
) -> QuantReport:
    """Run the three models on ``batches`` and compare them layer by layer (see :class:`QuantReport`)."""
    float_model.eval()
    report = QuantReport(layers=[LayerStats(op.name, op.kind, op.lif) for op in int_model.ops])
    hooks = _FloatSpikes(float_model)
    try:
        for index, (x, y) in enumerate(batches):
            y = np.asarray(y)
            float_pred = float_model(x).argmax(dim=1).cpu().numpy()
            fq_logits, fq_trace = fq.trace(x)
            int_logits, int_trace = int_model.run(
                quantize_input(x, input_max=int_model.numerics.input_max), trace=True
            )
            report.samples += len(y)
            report.float_correct += int((float_pred == y).sum())
            report.fakequant_correct += int((fq_logits.argmax(axis=1) == y).sum())
            report.integer_correct += int((int_logits.argmax(axis=1) == y).sum())
            mismatch = compare_traces(int_trace, fq_trace)
            if mismatch is not None and report.first_mismatch is None:
                report.first_mismatch = f"batch {index}: {mismatch}"
            for stats in report.layers:
                value = int_trace[stats.name]
                stats.elements += value.size
                stats.fq_mismatches += int((fq_trace.get(stats.name, value) != value).sum())
                if stats.kind in LIF_KINDS:
                    stats.int_spikes += int(value.sum())
                if stats.lif and stats.lif in hooks.spikes:
                    spikes = hooks.spikes[stats.lif]
                    if isinstance(fq.net, SjSpikformer):  # channel-major tokens, fused qkv
                        spikes = sj_float_spikes(int_model.op(stats.name), spikes, fq.net.cfg.embed_dim)
                    spikes = spikes.cpu().numpy().astype(np.int64)
                    if spikes.shape != value.shape:
                        raise ValueError(
                            f"float LIF {stats.lif!r} gives shape {spikes.shape}, the integer "
                            f"op {stats.name!r} {value.shape}: layouts differ"
                        )
                    stats.float_spikes += int(spikes.sum())
                    stats.agree += int((spikes == value).sum())
    finally:
        hooks.close()
    return report


def finetune_qat(
    fq: FakeQuantModel,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    epochs: int,
    lr: float = 1e-4,
    log: Any = print,
) -> list[float]:
    """Quantization-aware fine-tuning: straight-through gradients through the integer emulation.

    BatchNorm statistics stay frozen (the folded BN is what the hardware runs); the weights,
    BN affine parameters and the head are trained with AdamW on the float-scaled logits.
    Returns the mean loss of each epoch.
    """
    params = [p for p in fq.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    losses = []
    fq.train()
    try:
        for epoch in range(epochs):
            total, count = 0.0, 0
            for x, y in loader:
                loss = nn.functional.cross_entropy(fq(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total, count = total + float(loss.detach()) * len(y), count + len(y)
            losses.append(total / max(count, 1))
            log(f"QAT epoch {epoch + 1}/{epochs}: loss {losses[-1]:.4f}")
    finally:
        fq.eval()
    return losses


# --------------------------------------------------------------------------- CLI
def _sample_count(text: str) -> int | None:
    """``--samples``: a positive count, or ``all`` (``None``)."""
    if text == "all":
        return None
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'all', not {text!r}") from None
    if count < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number or 'all', not {count}")
    return count


def _non_negative(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None
    if count < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative number, not {count}")
    return count


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m golden.quantize", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="checkpoint written by golden.train")
    p.add_argument("--data-root", default="build/data", help="dataset directory (default: build/data)")
    p.add_argument("--out", required=True, help="output directory (export/, reports)")
    p.add_argument(
        "--samples",
        type=_sample_count,
        default=16,
        help="test samples stored as test vectors, or 'all' for the whole test split (default 16)",
    )
    p.add_argument(
        "--traced-samples",
        type=_non_negative,
        default=16,
        help="of the stored test vectors, how many also store every layer's output and LIF current "
        "(default 16; traces of a whole test split would dwarf the model)",
    )
    p.add_argument("--limit", type=int, help="evaluate only the first N test samples (default: all)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--weight-bits", type=int, default=8)
    p.add_argument("--frac-bits", type=int, default=4)
    p.add_argument("--membrane-bits", type=int, default=24)
    p.add_argument(
        "--allow-saturation",
        action="store_true",
        help="export even if a current bound exceeds the membrane width (warns)",
    )
    p.add_argument(
        "--qat-epochs",
        type=int,
        default=0,
        help="quantization-aware fine-tuning epochs when the drop exceeds --qat-threshold (default 0: none)",
    )
    p.add_argument(
        "--rounding",
        choices=ROUNDINGS,
        default="calibrated",
        help="weight rounding: 'calibrated' (default) picks floor or ceil of each weight and corrects "
        "the bias to minimise every synaptic layer's current error on --calibration-samples training "
        "samples; 'nearest' rounds each weight on its own (docs/numerics.md section 12.1)",
    )
    p.add_argument(
        "--calibration-samples",
        type=int,
        default=256,
        help="training samples (seeded random subset) for --rounding calibrated (default 256)",
    )
    p.add_argument("--qat-threshold", type=float, default=1.0, help="drop in points that triggers QAT")
    p.add_argument("--qat-lr", type=float, default=1e-4)
    p.add_argument("--threads", type=int, help="torch intra-op threads")
    return p


def _loader(ds: Dataset, batch_size: int, *, shuffle: bool = False) -> DataLoader:
    return DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=torch.Generator().manual_seed(0) if shuffle else None,
    )


def calibration_inputs(ds: Dataset, count: int, *, seed: int = 0) -> torch.Tensor:
    """A seeded random subset of ``count`` inputs of ``ds`` (the training split), stacked."""
    order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))  # type: ignore[arg-type]
    return torch.stack([ds[int(i)][0] for i in order[:count]])


def _stack(ds: Dataset, count: int) -> tuple[np.ndarray, np.ndarray]:
    items = [ds[i] for i in range(min(count, len(ds)))]  # type: ignore[arg-type]
    return torch.stack([x for x, _ in items]).numpy(), np.array([int(y) for _, y in items])


def write_reports(report: QuantReport, out: Path, *, extra: dict[str, Any], overflow_table: str) -> None:
    """``quant_report.json``, ``quant_layers.csv`` and ``overflow.txt`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    rows = [s.row() for s in report.layers]
    summary = {**report.summary(), **extra, "layers": rows}
    (out / "quant_report.json").write_text(json.dumps(summary, indent=1) + "\n")
    with open(out / "quant_layers.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (out / "overflow.txt").write_text(overflow_table + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .checkpoint import load_model
    from .data import build_dataset

    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.time()
    out = Path(args.out)
    model, meta = load_model(args.checkpoint)
    data_kwargs = dict(meta.get("data_kwargs") or {})
    test = build_dataset(meta["data"], args.data_root, "test", **data_kwargs)
    if args.limit:
        test = Subset(test, range(min(args.limit, len(test))))  # type: ignore[arg-type]
    event = test[0][0].dim() == 4  # event frames [T, C, H, W]; static images are [C, H, W]
    numerics = numerics_for(
        model, weight_bits=args.weight_bits, frac_bits=args.frac_bits, membrane_bits=args.membrane_bits
    )

    def train() -> Dataset:
        return build_dataset(meta["data"], args.data_root, "train", **data_kwargs)

    calibration = None
    if args.rounding == "calibrated":
        calibration = calibration_inputs(train(), args.calibration_samples)
    fq = FakeQuantModel(model, numerics, rounding=args.rounding, calibration=calibration)
    int_model = to_int_model(fq, event=event)
    print(
        f"quantizing {meta['preset']} ({meta['data']}), numerics {numerics.to_dict()}, "
        f"rounding {args.rounding}"
    )
    report = evaluate_quantization(model, fq, int_model, _loader(test, args.batch_size))
    extra: dict[str, Any] = {
        "preset": meta["preset"],
        "data": meta["data"],
        "numerics": numerics.to_dict(),
        "rounding": fq.rounding,
        "ptq": report.summary(),
        "qat_epochs": 0,
    }
    if args.qat_epochs > 0 and report.drop > args.qat_threshold:
        print(report.table())
        print(f"PTQ drop {report.drop:.2f} > {args.qat_threshold} points: {args.qat_epochs} QAT epoch(s)")
        extra["qat_losses"] = finetune_qat(
            fq, _loader(train(), 32, shuffle=True), epochs=args.qat_epochs, lr=args.qat_lr
        )
        extra["qat_epochs"] = args.qat_epochs
        if calibration is not None:  # the rounding was chosen for the weights before fine-tuning
            extra["rounding"] = calibrate_rounding(fq, calibration)
        int_model = to_int_model(fq, event=event)
        report = evaluate_quantization(model, fq, int_model, _loader(test, args.batch_size))
    inputs, labels = _stack(test, len(test) if args.samples is None else args.samples)
    vectors = make_test_vectors(int_model, inputs, labels, traced=args.traced_samples)
    provenance = {
        "checkpoint": Path(args.checkpoint).name,
        "epoch": meta.get("epoch"),
        "data": meta["data"],
        "float_top1": report.float_top1,
        "integer_top1": report.integer_top1,
        "rounding": fq.rounding,
    }
    export_dir = write_export(
        int_model,
        out / "export",
        vectors=vectors,
        allow_saturation=args.allow_saturation,
        provenance=provenance,
    )
    checked = check_test_vectors(load_export(export_dir))
    write_reports(report, out, extra=extra, overflow_table=overflow_report(int_model).table())
    print(report.table())
    print(
        f"export: {export_dir} ({len(int_model.ops)} ops, {checked} test vectors re-checked); "
        f"reports in {out} ({time.time() - start:.1f} s)"
    )
    if not report.fakequant_equals_integer:
        print(f"ERROR: fake-quant and integer models differ: {report.first_mismatch}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
