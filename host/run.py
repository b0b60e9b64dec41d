"""``python -m host.run``: run an export on the accelerator (simulated or on a board) and report.

Example::

    python -m host.run --export build/export/hw-tiny-digits/export --backend sim --samples 32
    python -m host.run --export export --backend pynq --overlay overlay/spikeformer.bit --config pynq-z2

Samples come from the export's stored test vectors (numpy only, so this runs on a
board), or with ``--data-root`` from the test split of the dataset the model was
trained on (needs the golden package's data loaders). Prints the accuracy of the
accelerator and of the integer reference, whether the logits are bit-exact (with the
first differing layer when they are not), cycles per inference, frames per second at
``--clock-mhz`` and the driver's stage times. Exit status: 0 bit-exact, 1 not
bit-exact, 2 bad arguments or a driver / export error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .backends import BACKENDS, ENGINES

__all__ = ["Samples", "load_samples", "build_parser", "main"]


@dataclass(frozen=True, eq=False)
class Samples:
    """Inputs, labels and (when known) the integer reference's logits, and where they came from."""

    inputs: np.ndarray
    labels: np.ndarray
    reference: np.ndarray | None
    source: str


def load_samples(export: Any, count: int | None, data_root: Path | None) -> Samples:
    """``count`` samples (``None``: all): the export's test vectors, or the test split under ``data_root``."""
    from golden.intmodel import quantize_input

    if data_root is None:
        vectors = export.vectors
        if vectors is None or vectors.count == 0:
            raise ValueError(f"export {export.path} stores no test vectors; pass --data-root to draw samples "
                             f"from the dataset")
        count = vectors.count if count is None else count
        if count > vectors.count:
            raise ValueError(f"export {export.path} stores {vectors.count} test vectors, fewer than "
                             f"--samples {count}; pass --data-root to draw them from the dataset, or "
                             f"re-export with `python -m golden.quantize ... --samples {count}`")
        return Samples(vectors.inputs[:count], vectors.labels[:count], vectors.logits[:count],
                       f"the export's test vectors ({count} of {vectors.count})")
    from golden.data import build_dataset

    name = export.manifest.get("provenance", {}).get("data")
    if not name:
        raise ValueError(f"export {export.path} does not record its dataset (provenance.data); use its test "
                         f"vectors instead of --data-root")
    dataset = build_dataset(name, str(data_root), "test", timesteps=export.model.timesteps)
    count = len(dataset) if count is None else count
    if count > len(dataset):
        raise ValueError(f"the {name} test split has {len(dataset)} samples, fewer than --samples {count}")
    items = [dataset[i] for i in range(count)]
    inputs = quantize_input(np.stack([np.asarray(x) for x, _ in items]),
                            input_max=export.model.numerics.input_max)
    labels = np.asarray([int(y) for _, y in items], dtype=np.int64)
    return Samples(inputs, labels, None, f"the first {count} samples of the {name} test split")


def _sample_count(text: str) -> int | None:
    if text == "all":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'all', not {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m host.run", description=__doc__.splitlines()[0])
    p.add_argument("--export", required=True, type=Path, help="export directory (manifest.json, tensors/)")
    p.add_argument("--backend", required=True, choices=BACKENDS, help="sim: Verilator; pynq: a PYNQ board")
    p.add_argument("--overlay", type=Path, help="overlay .bit (with its .hwh beside it); --backend pynq")
    p.add_argument("--sim-engine", choices=ENGINES, default="native",
                   help="--backend sim: native (in-process, default) or cocotb (cocotbext-axi bus models)")
    p.add_argument("--config", default=None,
                   help="accelerator configuration (hw.accel.config presets; default: sim for --backend sim, "
                        "pynq-z2 for --backend pynq)")
    p.add_argument("--samples", type=_sample_count, default=32,
                   help="samples to run, or 'all' for every test vector / the whole test split (default 32)")
    p.add_argument("--data-root", type=Path, default=None,
                   help="draw samples from the dataset's test split under this directory instead of the "
                        "export's test vectors")
    p.add_argument("--clock-mhz", type=float, default=100.0, help="clock for frames per second (default 100)")
    p.add_argument("--trace", choices=("on-failure", "always", "never"), default="on-failure",
                   help="per-layer comparison with the integer reference (default: on failure)")
    p.add_argument("--timeout", type=float, default=None, help="seconds per wait (default: from the program)")
    p.add_argument("--json", type=Path, default=None, help="also write the report as JSON here")
    return p


def _report(args: argparse.Namespace, export: Any, program: Any, samples: Samples,
            report: Any) -> dict[str, Any]:
    from hw.accel.perf import report as perf_report

    cfg = program.config
    model = perf_report(program)
    result = report.result
    cycles = result.cycles.astype(np.float64)
    mean_cycles = float(cycles.mean())
    ops_per_cycle = model.synaptic_ops / mean_cycles if mean_cycles else float("nan")
    return {
        "export": str(args.export), "preset": export.model.preset, "backend": args.backend,
        "config": cfg.name,
        "samples": report.samples, "source": samples.source,
        "accuracy": float((result.predictions == samples.labels).mean() * 100),
        "reference_accuracy": float((report.reference.argmax(axis=1) == samples.labels).mean() * 100),
        "bit_exact": report.exact, "differing_samples": report.differing,
        "first_mismatch": None if report.mismatch is None else str(report.mismatch),
        "cycles_mean": mean_cycles, "cycles_min": int(cycles.min()), "cycles_max": int(cycles.max()),
        "clock_mhz": args.clock_mhz,
        "fps": args.clock_mhz * 1e6 / mean_cycles if mean_cycles else float("nan"),
        "model_cycles": model.cycles,
        "synaptic_ops": model.synaptic_ops, "synaptic_ops_per_cycle": ops_per_cycle,
        "peak_synaptic_ops_per_cycle": cfg.peak_synaptic_ops,
        "utilization": ops_per_cycle / cfg.peak_synaptic_ops,
        "stage_seconds": dict(result.times.seconds),
    }


def _print(summary: dict[str, Any], report: Any) -> None:
    print(f"export   {summary['export']} (preset {summary['preset'] or '?'})")
    print(f"backend  {summary['backend']}, accelerator configuration {summary['config']}")
    print(f"samples  {summary['samples']} from {summary['source']}")
    print(f"accuracy accelerator {summary['accuracy']:.2f} %, integer reference "
          f"{summary['reference_accuracy']:.2f} %")
    print(f"bit-exact {report.summary()}")
    print(f"cycles   {summary['cycles_mean']:.0f} per inference (min {summary['cycles_min']}, "
          f"max {summary['cycles_max']}; cycle model {summary['model_cycles']})")
    print(f"synapse  {summary['synaptic_ops_per_cycle']:.1f} synaptic ops per cycle of a peak "
          f"{summary['peak_synaptic_ops_per_cycle']} (PE utilization {100 * summary['utilization']:.1f} %)")
    print(f"FPS      {summary['fps']:.1f} at {summary['clock_mhz']:g} MHz")
    print(f"stages   {report.result.times.table()}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.samples is not None and args.samples < 1:
        print(f"error: --samples must be positive, not {args.samples}", file=sys.stderr)
        return 2
    if args.clock_mhz <= 0:
        print(f"error: --clock-mhz must be positive, not {args.clock_mhz}", file=sys.stderr)
        return 2
    if args.backend == "pynq" and args.overlay is None:
        print("error: --backend pynq needs --overlay FILE.bit (with FILE.hwh beside it)", file=sys.stderr)
        return 2
    from golden.export import ExportError, load_export
    from hw.accel.compiler import CompileError, compile_model
    from hw.accel.config import ConfigError, get_config

    from .backends import open_backend
    from .driver import Driver
    from .errors import HostError
    from .verify import check_bit_exact

    try:
        export = load_export(args.export)
        cfg = get_config(args.config or ("pynq-z2" if args.backend == "pynq" else "sim"))
        program = compile_model(export.model, cfg)
        samples = load_samples(export, args.samples, args.data_root)
    except (ExportError, CompileError, ConfigError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        options = {"engine": args.sim_engine} if args.backend == "sim" else {}
        with open_backend(args.backend, config=cfg, overlay=args.overlay, **options) as backend:
            driver = Driver(backend, program, timeout_s=args.timeout)
            try:
                report = check_bit_exact(driver, export.model, samples.inputs, reference=samples.reference,
                                         trace=args.trace)
            finally:
                driver.close()
    except HostError as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    summary = _report(args, export, program, samples, report)
    _print(summary, report)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
    return 0 if report.exact else 1


if __name__ == "__main__":
    sys.exit(main())
