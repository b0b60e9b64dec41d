"""Yosys resource estimate of an accelerator configuration and its fit on the xc7z020.

``python -m hw.accel.synth --config pynq-z2`` generates the top (:mod:`hw.accel.generate`),
runs Yosys ``synth_xilinx`` through :func:`sim.synth.synthesize` (the project's runner and
parser), writes ``build/accel/synth/<config>/resources.md`` / ``.csv`` and exits non-zero
unless the design fits: LUT <= 80 %, BRAM and DSP <= 100 % of the xc7z020
(:data:`FIT_LIMITS`). Yosys' counts are estimates before place and route. On a 6 MB
design Yosys needs tens of minutes.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from hw.accel.config import ACCEL_CONFIGS, get_config
from hw.accel.generate import generate
from hw.accel.top import TOP_NAME
from sim.synth import XC7Z020, Device, Resources, SynthRow, synthesize, write_tables

__all__ = ["FIT_LIMITS", "misfits", "main"]

#: Largest utilisation (percent) per resource for a configuration to count as fitting.
FIT_LIMITS = {"lut": 80.0, "bram36": 100.0, "dsp": 100.0}


def misfits(resources: Resources, device: Device = XC7Z020) -> list[str]:
    """The resources above :data:`FIT_LIMITS` (empty when the design fits), as readable strings."""
    use = resources.utilisation(device)
    return [f"{name} {use[name]:.1f}% > {limit:g}%" for name, limit in FIT_LIMITS.items() if use[name] > limit]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hw.accel.synth", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="pynq-z2", choices=sorted(ACCEL_CONFIGS))
    parser.add_argument("--out", type=Path, default=Path("build/accel"), help="root of rtl/ and synth/")
    parser.add_argument("--timeout", type=float, default=7200.0, help="yosys time limit in seconds")
    args = parser.parse_args(argv)
    cfg = get_config(args.config)
    paths = generate(cfg, args.out / "rtl")
    workdir = args.out / "synth" / cfg.name
    began = time.perf_counter()
    resources = synthesize(paths["verilog"], top=TOP_NAME, workdir=workdir, timeout=args.timeout)
    seconds = time.perf_counter() - began
    params = {k: v for k, v in cfg.to_dict().items() if k not in ("numerics", "clock_mhz")}
    md, _ = write_tables([SynthRow(cfg.name, "accelerator", params, resources, seconds)], workdir)
    print(md.read_text())
    problems = misfits(resources)
    print(f"{cfg.name}: {'fits' if not problems else 'does not fit: ' + ', '.join(problems)} "
          f"(yosys {seconds:.0f} s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
