"""Paper-sized hw-gesture through the simulated ``pynq-z2`` RTL with the host driver.

``python scripts/gesture_rtl.py [--samples 1] [--out build/gesture-rtl]``

Builds an untrained ``hw-gesture`` (2 x 128 x 128 events, T = 16) whose BatchNorm
statistics make every layer fire (:func:`golden.workloads.firing_int_model`), writes it
as an export with test vectors of random event counts, and runs the board flow's CLI on
it: ``python -m host.run --backend sim --config pynq-z2`` (the band-tiled program, its 4
segments chained by the driver, on the ``pynq-z2`` top under Verilator). It prints the
accuracy line (meaningless for random inputs), whether the logits equal the integer
model's, and the cycles against the cycle model. The first run builds the ``pynq-z2``
top under Verilator (tens of minutes on 2 cores; cached afterwards).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from contract.manifest import make_test_vectors, write_export  # noqa: E402
from golden.workloads import firing_int_model  # noqa: E402
from host.run import main as host_run  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1, help="random event frames to run (default 1)")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "gesture-rtl", help="work directory")
    args = parser.parse_args(argv)
    if args.samples < 1:
        parser.error(f"--samples must be positive, not {args.samples}")
    model = firing_int_model("hw-gesture")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, (args.samples, model.timesteps, *model.input_shape))
    vectors = make_test_vectors(model, x, np.zeros(args.samples, dtype=np.int64), currents=False)
    export = write_export(model, args.out / "export", vectors=vectors)
    return host_run(
        [
            "--export",
            str(export),
            "--backend",
            "sim",
            "--config",
            "pynq-z2",
            "--samples",
            str(args.samples),
            "--json",
            str(args.out / "rtl_report.json"),
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
