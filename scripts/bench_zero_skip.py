"""Zero-word skipping: cycles per inference against the dense engine, from the cycle model.

``python scripts/bench_zero_skip.py [--export DIR] [--samples all] [--out build/bench/zero_skip]``

* Every test vector of the export (default: the ``make demo`` export) through the program
  compiled for ``sim`` and for ``sim-zero-skip``: the emulator runs each sample and the
  cycle model counts each command for the activation memory it meets
  (:attr:`protocol.emulator.Emulator.cycles`; the RTL agrees within 1 % per command,
  docs/accelerator.md section 5). Prints min / median / max cycles per inference, frames
  per second, dense-equivalent synaptic ops per cycle and the mean cycles per layer.
* The paper-sized ``hw-gesture`` on ``pynq-z2`` with zero skipping, its CONV inputs drawn
  with 0, 50, 70 and 90 % zero words: frames per second against the zero-word fraction
  (every other command as the dense model counts it).

Writes ``zero_skip.md`` and ``zero_skip.csv`` (per layer) and ``zero_skip_layers.png``
under ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from contract.manifest import load_export  # noqa: E402
from protocol.compiler import compile_model  # noqa: E402
from protocol.config import get_config  # noqa: E402
from protocol.descriptors import Opcode  # noqa: E402
from protocol.emulator import Emulator  # noqa: E402
from protocol.perf import command_cycles, report  # noqa: E402

FRACTIONS = (0.0, 0.5, 0.7, 0.9)


def demo_cycles(export: Path, samples: int | None) -> dict[str, dict]:
    """Per configuration: cycles per sample and mean cycles per command."""
    loaded = load_export(export)
    inputs = loaded.vectors.inputs[:samples]
    results = {}
    for name in ("sim", "sim-zero-skip"):
        cfg = get_config(name)
        program = compile_model(loaded.model, cfg)
        emulator = Emulator(cfg)
        per_sample, per_command = [], np.zeros(len(program.commands))
        for x in tqdm(inputs, desc=f"{name}: emulator", unit="sample", file=sys.stderr):
            emulator.run(program.stream(x))
            per_sample.append(sum(emulator.cycles))
            per_command += emulator.cycles
        results[name] = {
            "cfg": cfg,
            "program": program,
            "cycles": np.asarray(per_sample),
            "per_command": per_command / len(inputs),
            "dense_ops": report(program).synaptic_ops,
        }
    return results


def gesture_fps(fractions: tuple[float, ...], seed: int) -> list[tuple[float, int, float]]:
    """``(zero-word fraction, cycles, frames/s)`` of hw-gesture on pynq-z2 with zero skipping."""
    from golden.workloads import firing_int_model

    cfg = dataclasses.replace(get_config("pynq-z2"), name="pynq-z2-zero-skip", zero_skip=True)
    program = compile_model(firing_int_model("hw-gesture"), cfg)
    rng = np.random.default_rng(seed)
    rows = []
    for fraction in fractions:
        total = 0
        for command in program.commands:
            d = command.descriptor
            occupied = rng.random(cfg.amem_depth) >= fraction if d.opcode == Opcode.CONV else None
            total += command_cycles(d, cfg, occupied)[0]
        rows.append((fraction, total, cfg.clock_mhz * 1e6 / total))
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--export", type=Path, default=ROOT / "build" / "export" / "hw-tiny-digits" / "export")
    p.add_argument("--samples", default="all", help="test vectors to run, or 'all'")
    p.add_argument("--out", type=Path, default=ROOT / "build" / "bench" / "zero_skip")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if not (args.export / "manifest.json").is_file():
        raise SystemExit(f"{args.export}: no export (manifest.json); run `make demo` or pass --export")
    samples = None if args.samples == "all" else int(args.samples)
    args.out.mkdir(parents=True, exist_ok=True)

    results = demo_cycles(args.export, samples)
    where = args.export.relative_to(ROOT) if args.export.is_relative_to(ROOT) else args.export
    lines = [
        f"Trained export {where}, "
        f"{len(results['sim']['cycles'])} test vectors, cycle model for each sample's data:",
        "",
        "| configuration | cycles min | median | max | frames/s at 100 MHz (median) "
        "| dense-equivalent synaptic ops/cycle (median) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        c = r["cycles"]
        median = float(np.median(c))
        lines.append(
            f"| `{name}` | {c.min():,} | {median:,.0f} | {c.max():,} | "
            f"{r['cfg'].clock_mhz * 1e6 / median:,.0f} | {r['dense_ops'] / median:.1f} |"
        )
    dense, skip = results["sim"], results["sim-zero-skip"]
    names = [c.name for c in dense["program"].commands]
    with open(args.out / "zero_skip.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["command", "opcode", "sim_cycles", "sim_zero_skip_cycles_mean"])
        for command, a, b in zip(
            dense["program"].commands, dense["per_command"], skip["per_command"], strict=True
        ):
            writer.writerow([command.name, command.opcode.name, f"{a:.0f}", f"{b:.1f}"])

    rows = gesture_fps(FRACTIONS, args.seed)
    lines += [
        "",
        "hw-gesture (2x128x128, T=16) on `pynq-z2` with zero skipping, CONV inputs with a given",
        "fraction of zero words (cycle model; every other command dense):",
        "",
        "| zero words | cycles | frames/s at 100 MHz |",
        "|---:|---:|---:|",
    ]
    lines += [f"| {100 * f:.0f} % | {cycles:,} | {fps:.1f} |" for f, cycles, fps in rows]
    text = "\n".join(lines) + "\n"
    (args.out / "zero_skip.md").write_text(text)
    print(text)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.5))
    index = np.arange(len(names))
    ax.bar(index - 0.2, dense["per_command"], 0.4, label="sim (dense)")
    ax.bar(index + 0.2, skip["per_command"], 0.4, label="sim-zero-skip (mean over samples)")
    ax.set_xticks(index, names, rotation=75, fontsize=7)
    ax.set_ylabel("cycles")
    ax.set_title("hw-tiny per command: dense vs zero-word skipping")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out / "zero_skip_layers.png", dpi=120)
    print(f"wrote {args.out}/zero_skip.md, zero_skip.csv, zero_skip_layers.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
