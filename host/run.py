"""``python -m host.run``: run an export on the accelerator (simulated or on a board) and report.

Example::

    python -m host.run --export build/export/hw-tiny-digits/export --backend sim --samples all
    python -m host.run --export export --backend pynq --overlay overlay/spikeformer.bit --config pynq-z2

Samples are the export's stored test vectors (``python -m golden.quantize --samples N|all``
chooses how many it stores). Prints the accuracy of the accelerator and of the integer
reference, whether the logits are bit-exact (with the first differing layer when they
are not), cycles per inference, frames per second at the clock and the driver's stage
times. The clock is the accelerator configuration's ``clock_mhz``; ``--clock-mhz``
overrides it for the frames per second and the driver's timeouts alike (and for the
simulated clock of ``--backend sim``). Exit status: 0 bit-exact, 1 not bit-exact, 2 bad
arguments or a driver / export error.

``--backend sim`` says on stderr what it is doing: generating the Verilog (or that it is
up to date), building the simulator with Verilator (and how long that took), simulating
``N`` samples on ``J`` processes. ``--jobs J`` (default: one per CPU, at most one per
sample) splits the samples into ``J`` contiguous shares, each simulated by its own process
(:mod:`host.parallel`; the Verilator build happens first, here), and merges their results
in sample order. A board runs one sample at a time: ``--backend pynq`` takes ``--jobs 1``
only. While the samples run, a progress bar on stderr counts them (samples done, samples
per second) when stderr is a terminal, or always with ``--progress always``.

With ``--backend pynq`` this module and everything it loads import numpy and ``pynq``
only (the packages ``contract``, ``protocol`` and ``host``): it is what runs on a
board (tests/test_host_board.py checks the imports).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .backends import BACKENDS

__all__ = ["Samples", "load_samples", "build_parser", "main"]


@dataclass(frozen=True, eq=False)
class Samples:
    """Inputs, labels and the integer reference's logits, and where they came from."""

    inputs: np.ndarray
    labels: np.ndarray
    reference: np.ndarray
    source: str


def load_samples(export: Any, count: int | None) -> Samples:
    """The first ``count`` (``None``: all) of the export's test vectors."""
    vectors = export.vectors
    if vectors is None or vectors.count == 0:
        raise ValueError(
            f"export {export.path} stores no test vectors; re-export with "
            f"`python -m golden.quantize ... --samples N` (or --samples all)"
        )
    count = vectors.count if count is None else count
    if count > vectors.count:
        raise ValueError(
            f"export {export.path} stores {vectors.count} test vectors, fewer than --samples {count}; "
            f"re-export with `python -m golden.quantize ... --samples {count}` (or --samples all)"
        )
    return Samples(
        vectors.inputs[:count],
        vectors.labels[:count],
        vectors.logits[:count],
        f"the export's test vectors ({count} of {vectors.count})",
    )


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
    p.add_argument(
        "--config",
        default=None,
        help="accelerator configuration (protocol.config presets; default: sim for --backend sim, "
        "pynq-z2 for --backend pynq)",
    )
    p.add_argument(
        "--samples",
        type=_sample_count,
        default=None,
        help="test vectors to run, or 'all' (default: all the export stores)",
    )
    p.add_argument(
        "--clock-mhz",
        type=float,
        default=None,
        help="clock for frames per second and timeouts (default: the configuration's clock_mhz)",
    )
    p.add_argument(
        "--trace",
        choices=("on-failure", "always", "never"),
        default="on-failure",
        help="per-layer comparison with the integer reference (default: on failure)",
    )
    p.add_argument("--timeout", type=float, default=None, help="seconds per wait (default: from the program)")
    p.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="processes that simulate shares of the samples (--backend sim; default: one per CPU, "
        "at most one per sample); --backend pynq runs 1",
    )
    p.add_argument(
        "--progress",
        choices=("auto", "always", "never"),
        default="auto",
        help="progress bar on stderr (default auto: when stderr is a terminal)",
    )
    p.add_argument("--json", type=Path, default=None, help="also write the report as JSON here")
    return p


def _report(
    args: argparse.Namespace, export: Any, program: Any, samples: Samples, report: Any
) -> dict[str, Any]:
    from protocol.perf import report as perf_report

    cfg = program.config
    model = perf_report(program)
    result = report.result
    cycles = result.cycles.astype(np.float64)
    mean_cycles = float(cycles.mean())
    # Dense-equivalent: every synaptic op of the layers, skipped zero words included.
    ops_per_cycle = model.synaptic_ops / mean_cycles if mean_cycles else float("nan")
    # A zero-skipping program's cycles follow its data: the model's are the emulator's counts.
    predicted = _data_cycles(program, samples.inputs[: report.samples]) if cfg.zero_skip else None
    return {
        "export": str(args.export),
        "preset": export.model.preset,
        "backend": args.backend,
        "config": cfg.name,
        "samples": report.samples,
        "source": samples.source,
        "accuracy": float((result.predictions == samples.labels).mean() * 100),
        "reference_accuracy": float((report.reference.argmax(axis=1) == samples.labels).mean() * 100),
        "bit_exact": report.exact,
        "differing_samples": report.differing,
        "first_mismatch": None if report.mismatch is None else str(report.mismatch),
        "cycles_mean": mean_cycles,
        "cycles_min": int(cycles.min()),
        "cycles_median": float(np.median(cycles)),
        "cycles_max": int(cycles.max()),
        "model_cycles_for_data": None if predicted is None else float(predicted.mean()),
        "clock_mhz": cfg.clock_mhz,
        "fps": cfg.clock_mhz * 1e6 / mean_cycles if mean_cycles else float("nan"),
        "model_cycles": model.cycles,
        "synaptic_ops": model.synaptic_ops,
        "synaptic_ops_per_cycle": ops_per_cycle,
        "peak_synaptic_ops_per_cycle": cfg.peak_synaptic_ops,
        "utilization": ops_per_cycle / cfg.peak_synaptic_ops,
        "stage_seconds": dict(result.times.seconds),
    }


def _data_cycles(program: Any, inputs: np.ndarray) -> np.ndarray:
    """The cycle model's count per sample for the data each command meets (the emulator's)."""
    from protocol.emulator import Emulator
    from protocol.segments import run_program

    emulator = Emulator(program.config)
    totals = []
    for x in inputs:
        counted: list[int] = []
        run_program(program, x, lambda stream, counted=counted: _counted(emulator, stream, counted))
        totals.append(sum(counted))
    return np.asarray(totals, dtype=np.float64)


def _counted(emulator: Any, stream: np.ndarray, counted: list[int]) -> np.ndarray:
    out = emulator.run(stream)
    counted.extend(emulator.cycles)
    return out


def _print(summary: dict[str, Any], report: Any) -> None:
    print(f"export   {summary['export']} (preset {summary['preset'] or '?'})")
    print(f"backend  {summary['backend']}, accelerator configuration {summary['config']}")
    print(f"samples  {summary['samples']} from {summary['source']}")
    print(
        f"accuracy accelerator {summary['accuracy']:.2f} %, integer reference "
        f"{summary['reference_accuracy']:.2f} %"
    )
    print(f"bit-exact {report.summary()}")
    if summary["model_cycles_for_data"] is None:
        model = f"cycle model {summary['model_cycles']}"
    else:
        model = (
            f"cycle model for these inputs {summary['model_cycles_for_data']:.0f} on average, "
            f"{summary['model_cycles']} with no zero word"
        )
    print(
        f"cycles   {summary['cycles_mean']:.0f} per inference (min {summary['cycles_min']}, median "
        f"{summary['cycles_median']:.0f}, max {summary['cycles_max']}; {model})"
    )
    print(
        f"synapse  {summary['synaptic_ops_per_cycle']:.1f} dense-equivalent synaptic ops per cycle "
        f"(every op of the layers, skipped zero words included) of a peak "
        f"{summary['peak_synaptic_ops_per_cycle']} (dense-equivalent utilization "
        f"{100 * summary['utilization']:.1f} %; above 100 % only by skipping zero words)"
    )
    print(f"FPS      {summary['fps']:.1f} at {summary['clock_mhz']:g} MHz")
    print(f"stages   {report.result.times.table()}")


def _say(message: str) -> None:
    """A progress message on stderr (stdout holds the report)."""
    print(f"host.run: {message}", file=sys.stderr, flush=True)


def _cpus() -> int:
    # The CPUs this process may run on, which a container or taskset can make fewer than the machine's.
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


@contextmanager
def _progress_bar(total: int, mode: str, what: str) -> Iterator[Any]:
    """A tqdm bar on stderr counting samples, or ``None`` when off.

    ``mode`` ``"auto"`` shows it only on a terminal, so a log or a pipe gets no carriage
    returns. tqdm is imported only for a bar: a board image may lack it (then there is none).
    """
    if mode == "never" or (mode == "auto" and not sys.stderr.isatty()):
        yield None
        return
    try:
        from tqdm import tqdm
    except ImportError:
        yield None
        return
    with tqdm(total=total, desc=what, unit="sample", file=sys.stderr, dynamic_ncols=True) as bar:
        yield lambda _index: bar.update()


def _run(args: argparse.Namespace, driver: Any, samples: Samples, jobs: int, opener: Any) -> Any:
    """Run the samples (in ``jobs`` processes) under a progress bar; the driver's :class:`RunResult`."""
    count = len(samples.inputs)
    what = "simulating" if args.backend == "sim" else "running"
    where = f"{jobs} processes" if jobs > 1 else "1 process"
    _say(f"{what} {count} samples on {where} ...")
    start = time.perf_counter()
    with _progress_bar(count, args.progress, what) as progress:
        if jobs == 1:
            result = driver.run(samples.inputs, progress=progress)
        else:
            # Imported for shares only: multiprocessing registers a '__mp_main__' module, which
            # the board runtime's import check (one board, --jobs 1) counts as foreign.
            from .parallel import run_shares

            result = run_shares(
                opener,
                driver.program,
                samples.inputs,
                jobs=jobs,
                timeout_s=driver.timeout_s,
                progress=progress,
            )
    seconds = max(time.perf_counter() - start, 1e-9)
    _say(f"{count} samples in {seconds:.1f} s ({count / seconds:.2f} samples/s)")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.samples is not None and args.samples < 1:
        print(f"error: --samples must be positive, not {args.samples}", file=sys.stderr)
        return 2
    if args.jobs is not None and args.jobs < 1:
        print(f"error: --jobs must be positive, not {args.jobs}", file=sys.stderr)
        return 2
    if args.backend == "pynq" and args.jobs not in (None, 1):
        print(
            f"error: --jobs {args.jobs}: a board runs one sample at a time; --backend pynq takes --jobs 1",
            file=sys.stderr,
        )
        return 2
    if args.clock_mhz is not None and not args.clock_mhz > 0:
        print(f"error: --clock-mhz must be positive, not {args.clock_mhz}", file=sys.stderr)
        return 2
    if args.backend == "pynq" and args.overlay is None:
        print("error: --backend pynq needs --overlay FILE.bit (with FILE.hwh beside it)", file=sys.stderr)
        return 2
    from contract.manifest import ExportError, load_export
    from protocol.compiler import CompileError, compile_model
    from protocol.config import ConfigError, get_config

    from .backends import open_backend
    from .driver import Driver
    from .errors import HostError
    from .verify import check_bit_exact

    try:
        export = load_export(args.export)
        built = get_config(args.config or ("pynq-z2" if args.backend == "pynq" else "sim"))
        # config_hash leaves the clock out, so the program of the overridden configuration
        # still matches the hardware built from the preset.
        clock_mhz = built.clock_mhz if args.clock_mhz is None else args.clock_mhz
        cfg = dataclasses.replace(built, clock_mhz=clock_mhz)
        program = compile_model(export.model, cfg)
        samples = load_samples(export, args.samples)
    except (ExportError, CompileError, ConfigError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    jobs = 1 if args.backend == "pynq" else min(args.jobs or _cpus(), len(samples.inputs))
    try:
        # The simulator is generated from the configuration as built (an overridden clock
        # must not regenerate the top) and clocked at the run's clock; a board keeps the clock
        # its bitstream was built for unless --clock-mhz asks for another. The workers of
        # --jobs open the same backend, quietly: this process has built it.
        if args.backend == "sim":
            options = {"clock_mhz": clock_mhz}
        else:
            options = {} if args.clock_mhz is None else {"clock_mhz": args.clock_mhz}
        opener = functools.partial(open_backend, args.backend, config=built, overlay=args.overlay, **options)
        loud = {"report": _say} if args.backend == "sim" else {}
        with open_backend(args.backend, config=built, overlay=args.overlay, **options, **loud) as backend:
            driver = Driver(backend, program, timeout_s=args.timeout)
            try:
                result = _run(args, driver, samples, jobs, opener)
                report = check_bit_exact(
                    driver,
                    export.model,
                    samples.inputs,
                    reference=samples.reference,
                    trace=args.trace,
                    result=result,
                )
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
