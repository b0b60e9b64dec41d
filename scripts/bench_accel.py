"""Accelerator benchmark: simulator speed, wall time per inference and the cycle model.

``python scripts/bench_accel.py [--export DIR] [--config sim] [--samples 4] [--gesture [CONFIG]]``

* runs ``--samples`` inferences of the model with the host driver on the simulated backend
  (the accelerator's Verilog under Verilator with the C++ AXI4-Lite and AXI DMA models,
  :mod:`host.backends.native_backend`) and prints the build time, wall time per inference,
  cycles per inference, the simulator's speed (cycles per second) and whether the logits
  equal the integer model's (:func:`host.verify.check_bit_exact`);
* prints the analytic cycle model of the same program (per layer, frames per second at
  the configuration's clock, stream traffic, synaptic operations per cycle);
* ``--gesture`` also prints the model of the paper-sized ``hw-gesture`` (128 x 128, T = 16)
  on the ``pynq-z2`` configuration, band tiling of the oversize tokenizer stages included;
  ``--gesture kv260`` on another configuration (frames per second at its clock).

Without ``--export`` the ``make demo`` export (``build/export/hw-tiny-digits``) is used when
present, else an untrained quantized ``hw-tiny`` (the schedule, and so every cycle count,
does not depend on the weights or the data).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from contract.intmodel import IntModel  # noqa: E402
from golden.workloads import firing_int_model  # noqa: E402
from host.backends.native_backend import NativeSimBackend  # noqa: E402
from host.driver import Driver  # noqa: E402
from host.verify import check_bit_exact  # noqa: E402
from protocol.compiler import compile_model  # noqa: E402
from protocol.config import ACCEL_CONFIGS, get_config  # noqa: E402
from protocol.perf import plan, report  # noqa: E402


def _model(export: Path | None) -> tuple[IntModel, np.ndarray, str]:
    from contract.manifest import load_export

    path = export or ROOT / "build" / "export" / "hw-tiny-digits"
    if (path / "manifest.json").is_file():
        loaded = load_export(path)
        if loaded.vectors is not None:
            return loaded.model, loaded.vectors.inputs, f"export {path}"
        model = loaded.model
        origin = f"export {path}"
    elif export is not None:
        raise SystemExit(f"{export} is not an export directory (no manifest.json)")
    else:
        model = firing_int_model("hw-tiny")
        origin = "untrained hw-tiny (no export found)"
    rng = np.random.default_rng(0)
    shape = (model.timesteps, *model.input_shape) if model.event else model.input_shape
    return model, rng.integers(0, model.numerics.input_max + 1, (16, *shape)), origin


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export", type=Path, help="export directory (default: the make demo export)")
    parser.add_argument(
        "--config", default="sim", choices=sorted(ACCEL_CONFIGS), help="accelerator configuration"
    )
    parser.add_argument("--samples", type=int, default=4, help="inferences to simulate (default 4)")
    parser.add_argument("--no-sim", action="store_true", help="only print the cycle model")
    parser.add_argument(
        "--gesture",
        nargs="?",
        const="pynq-z2",
        default=None,
        choices=sorted(ACCEL_CONFIGS),
        metavar="CONFIG",
        help="also model hw-gesture on CONFIG (default pynq-z2)",
    )
    args = parser.parse_args(argv)
    if args.samples < 1:
        parser.error(f"--samples must be positive, not {args.samples}")
    cfg = get_config(args.config)
    model, inputs, origin = _model(args.export)
    program = compile_model(model, cfg)
    perf = report(program)
    print(
        f"model: {origin}; configuration {cfg.name} (L={cfg.lanes}, T={cfg.timesteps}, "
        f"peak {cfg.peak_synaptic_ops} synaptic ops/cycle)"
    )
    print(perf.table())

    if not args.no_sim:
        began = time.perf_counter()
        with NativeSimBackend.for_config(cfg) as backend:
            build = time.perf_counter() - began
            driver = Driver(backend, program)
            samples = inputs[: args.samples]
            first_cycle, began = backend.cycle, time.perf_counter()
            try:
                bit_exact = check_bit_exact(driver, model, samples, trace="never")
            finally:
                driver.close()
            wall = time.perf_counter() - began
            simulated = backend.cycle - first_cycle
        result = bit_exact.result
        execute = result.times.seconds["execute"]
        print(
            f"\nVerilator, host driver ({len(samples)} inference(s)): build {build:.1f} s (cached when "
            f"unchanged), simulator {execute:.1f} s, total {wall:.1f} s"
        )
        print(
            f"  cycles per inference {int(result.cycles[0])} (model {perf.cycles}); wall time per inference "
            f"{result.times.total / len(samples):.2f} s; simulator speed {simulated / execute:,.0f} cycles/s"
        )
        print(f"  logits bit-exact with the integer model: {'yes' if bit_exact.exact else 'NO'}")

    if args.gesture is not None:
        gesture = firing_int_model("hw-gesture")
        board = get_config(args.gesture)
        rep, _, resident = plan(gesture, board)
        print(
            f"\nhw-gesture (2x128x128, T=16) on {board.name} (peak {board.peak_synaptic_ops} synaptic "
            "ops/cycle; the compiled band-tiled program):"
        )
        print(rep.table())
        print(
            f"  a fully resident schedule would need {resident} activation words "
            f"({resident * board.timesteps / 8 / 1024:.0f} KiB)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
