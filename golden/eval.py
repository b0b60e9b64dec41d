"""Evaluate a checkpoint: ``python -m golden.eval --checkpoint RUN/checkpoint.pt --out RUN/eval``.

Rebuilds the model from the checkpoint (:func:`golden.checkpoint.load_model`), evaluates
top-1 accuracy on a split of the dataset it was trained on, records the firing rate of
every LIF layer, and draws the spike raster of one sample. Writes into ``--out``:

``eval.json``          accuracy, loss, per-class accuracy, firing rates, the raster's sample
``firing_rates.csv``   per-layer table (neurons, spikes, neuron-steps, rate)
``firing_rates.png``   bar chart of the rates
``raster.png``         spikes (neurons x time steps) of a few layers for one sample
``raster.npz``         the raster data (one ``uint8 [T, neurons]`` array per layer)

and prints a summary table.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from .checkpoint import load_model
from .distributed import DistContext, resolve_device
from .engine import Amp, evaluate
from .firing import lif_layers, pick_layers, record_raster
from .loaders import eval_loader, limit_dataset
from .plots import plot_firing_rates, plot_raster
from .runlog import USER_ERRORS, print_user_error, write_json

__all__ = ["build_parser", "run", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m golden.eval",
        description="Top-1 accuracy, per-layer firing rates and a spike raster of a golden.train checkpoint.",
    )
    p.add_argument("--checkpoint", required=True, help="checkpoint file written by golden.train")
    p.add_argument("--data-root", default="build/data", help="dataset directory (default: build/data)")
    p.add_argument("--out", required=True, help="directory for the evaluation files")
    p.add_argument("--split", default="test", choices=("train", "test"))
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--limit", type=int, help="evaluate a seeded subset of this many samples")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    p.add_argument("--workers", type=int, default=0, help="data loader processes")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: 1 on CPU)")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=False, help="bf16 autocast (CUDA)")
    p.add_argument("--raster-sample", type=int, default=0, help="index (in the split) of the raster's sample")
    p.add_argument(
        "--raster-layers",
        default="6",
        help="a number of layers spread over the model, or comma-separated layer names",
    )
    p.add_argument("--raster-neurons", type=int, default=64, help="neurons shown per layer")
    return p


def _check_args(args: argparse.Namespace) -> None:
    for name in ("batch_size", "raster_neurons") + (("threads",) if args.threads is not None else ()):
        if getattr(args, name) < 1:
            raise ValueError(
                f"--{name.replace('_', '-')} must be a positive integer, not {getattr(args, name)}"
            )
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be a positive integer, not {args.limit}")
    if args.workers < 0 or args.raster_sample < 0:
        raise ValueError("--workers and --raster-sample must be non-negative")


def _display_path(path: str | os.PathLike[str]) -> str:
    """``path`` relative to the working directory, or its name when it lies elsewhere (no absolute paths)."""
    rel = os.path.relpath(os.path.abspath(path))
    return rel if not rel.startswith("..") else Path(path).name


def _raster_layers(model: torch.nn.Module, spec: str) -> list[str]:
    names = [n for n, _ in lif_layers(model)]
    if spec.isdigit():
        return pick_layers(names, int(spec))
    wanted = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [w for w in wanted if w not in names]
    if unknown:
        raise ValueError(f"--raster-layers: unknown LIF layers {unknown}; known: {names}")
    return wanted


def _per_class(pred: torch.Tensor, labels: torch.Tensor, num_classes: int) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for c in range(num_classes):
        mask = labels == c
        out[str(c)] = 100.0 * float((pred[mask] == c).double().mean()) if mask.any() else None
    return out


def run(argv: Sequence[str] | None = None, *, console: Console | None = None) -> dict[str, Any]:
    """Evaluate as the command line says; return the summary written to ``eval.json``."""
    from .data import build_dataset

    args = build_parser().parse_args(argv)
    _check_args(args)
    console = console or Console(stderr=False)
    device = resolve_device(args.device)
    if args.threads is not None or device.type == "cpu":
        torch.set_num_threads(args.threads or 1)  # as golden.train: small ops, busy cores
    if args.amp and device.type != "cuda":
        raise ValueError("--amp needs a CUDA device")
    model, meta = load_model(args.checkpoint, map_location=device)
    ds = build_dataset(meta["data"], args.data_root, args.split, **meta["data_kwargs"])
    ds = limit_dataset(ds, args.limit, seed=0)
    if args.raster_sample >= len(ds):  # type: ignore[arg-type]
        raise ValueError(
            f"--raster-sample {args.raster_sample} is outside the {len(ds)} samples of the split"
        )

    ctx = DistContext(rank=0, world_size=1, local_rank=0, device=device, backend=None)
    amp = Amp(enabled=args.amp, dtype=torch.bfloat16)
    loader = eval_loader(ds, batch_size=args.batch_size, ctx=ctx, workers=args.workers)
    result = evaluate(model, loader, ctx=ctx, amp=amp, keep_predictions=True, desc=args.split)
    assert result.firing is not None and result.predictions is not None and result.labels is not None

    layers = _raster_layers(model, args.raster_layers)
    x, label = ds[args.raster_sample]
    logits, rasters = record_raster(
        model, torch.as_tensor(x).to(device), layers=layers, max_neurons=args.raster_neurons
    )
    predicted = int(logits.argmax())

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    title = f"{meta['preset']} on {meta['data']} ({args.split})"
    rates = result.firing.rates()
    result.firing.write_csv(out / "firing_rates.csv")
    plot_firing_rates(rates, out / "firing_rates.png", title=f"{title}: firing rates")
    caption = f"sample {args.raster_sample}, label {int(label)}, predicted {predicted}"
    plot_raster(rasters, out / "raster.png", title=f"{title}: {caption}")
    np.savez_compressed(out / "raster.npz", **{k: v.numpy() for k, v in rasters.items()})
    num_classes = int(model.cfg.num_classes)
    summary = {
        "checkpoint": _display_path(args.checkpoint),
        "preset": meta["preset"],
        "data": meta["data"],
        "split": args.split,
        "epoch": meta["epoch"],
        "samples": result.samples,
        "top1": result.acc,
        "loss": result.loss,
        "per_class_top1": _per_class(result.predictions, result.labels, num_classes),
        "mean_firing_rate": result.firing.mean_rate(),
        "firing_rates": rates,
        "raster": {
            "sample": args.raster_sample,
            "label": int(label),
            "predicted": predicted,
            "layers": layers,
        },
    }
    write_json(out / "eval.json", summary)
    _print(console, summary, result.firing.neurons, out)
    return summary


def _print(console: Console, summary: dict[str, Any], neurons: Sequence[int], out: Path) -> None:
    table = Table(title="firing rate per LIF layer", show_lines=False)
    table.add_column("layer")
    table.add_column("neurons", justify="right")
    table.add_column("rate", justify="right")
    for (name, rate), n in zip(summary["firing_rates"].items(), neurons, strict=True):
        table.add_row(name, str(n), f"{rate:.4f}")
    console.print(table)
    console.print(
        f"[bold]{summary['preset']}[/bold] on {summary['data']} ({summary['split']}, "
        f"{summary['samples']} samples, epoch {summary['epoch']}): "
        f"top-1 [bold]{summary['top1']:.2f}%[/bold], loss {summary['loss']:.4f}, "
        f"mean firing rate {summary['mean_firing_rate']:.4f}  ->  {_display_path(out)}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point: returns the process exit status (2 for a bad checkpoint or request)."""
    try:
        run(argv)
    except USER_ERRORS as exc:  # CheckpointError is a ValueError
        return print_user_error(exc, prog="golden.eval")
    return 0


if __name__ == "__main__":
    sys.exit(main())
