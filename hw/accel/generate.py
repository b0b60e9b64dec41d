"""Verilog of the accelerator top for one configuration, plus its description.

``python -m hw.accel.generate --config sim --out build/accel/rtl`` writes into
``<out>/<config>/``:

* ``spikeformer_accel.v`` -- the top (:class:`hw.accel.top.AcceleratorTop`), deterministic
  (``emit_src=False``, no source paths);
* ``spikeformer_accel.json`` -- the configuration, its hash, the port list and the
  register map, for drivers and board scripts that must agree with the RTL.

Files are rewritten only when their content changes, so Verilator builds stay incremental.
The Verilator waivers that go with the Verilog are the linter's business
(:mod:`sim.accel.lint`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from amaranth.hdl import Value

from hw.accel.top import TOP_NAME, AcceleratorTop
from hw.generate import verilog_of, write_if_changed
from protocol import regmap
from protocol.config import ACCEL_CONFIGS, AcceleratorConfig, get_config

__all__ = ["VERILOG_FILE", "describe", "generate", "main"]

#: File name of the generated top (Verilator wants it to match the module name).
VERILOG_FILE = f"{TOP_NAME}.v"


def describe(top: AcceleratorTop) -> dict[str, Any]:
    """Configuration, hash, ports and register map of a top (JSON-able)."""
    ports = [
        {
            "name": "__".join(map(str, path)),
            "direction": "input" if member.flow.name == "In" else "output",
            "width": len(Value.cast(value)),
        }
        for path, member, value in top.signature.flatten(top)
    ]
    return {
        "module": TOP_NAME,
        "config": top.config.to_dict(),
        "config_hash": top.config.config_hash,
        "version": list(regmap.VERSION),
        "ports": ports,
        "registers": [asdict(reg) for reg in regmap.REGISTERS],
        "profile_base": regmap.PROFILE_BASE,
    }


def generate(config: str | AcceleratorConfig, out: Path) -> dict[str, Path]:
    """Write the files of the module docstring into ``out/<config name>/``; return their paths."""
    cfg = get_config(config)
    directory = Path(out) / cfg.name
    top = AcceleratorTop(cfg)
    paths = {
        "verilog": directory / VERILOG_FILE,
        "json": directory / f"{TOP_NAME}.json",
    }
    verilog = verilog_of(top, name=TOP_NAME)
    write_if_changed(paths["verilog"], verilog)
    write_if_changed(paths["json"], json.dumps(describe(top), indent=1) + "\n")
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hw.accel.generate", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config",
        action="append",
        choices=sorted(ACCEL_CONFIGS),
        help="accelerator configuration (repeatable; default all)",
    )
    parser.add_argument("--out", type=Path, default=Path("build/accel/rtl"), help="output root")
    args = parser.parse_args(argv)
    for name in args.config or list(ACCEL_CONFIGS):
        paths = generate(name, args.out)
        print(f"{name}: {paths['verilog']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
