"""Yosys resource estimate of an accelerator configuration and its fit on its board's device.

``python -m sim.accel.synth --config pynq-z2`` converts the top to RTLIL, runs Yosys
``synth_xilinx -noiopad`` for the device's family on it, reads the statistics with the
project's parser (:func:`sim.synth.parse_stat`), writes
``build/accel/synth/<config>/resources.md`` / ``.csv`` (:func:`sim.synth.write_tables`) and
exits non-zero unless the design fits: LUT <= 80 %, BRAM, URAM and DSP <= 100 % of the
device (:data:`FIT_LIMITS`). The device is that of the configuration's board part
(:data:`protocol.config.BOARD_PARTS`: ``pynq-z2`` -> xc7z020 with ``-family xc7``,
``kv260`` -> xck26 with ``-family xcup -uram``, where Yosys maps large memories to
URAM288s); ``--device`` overrides it, and a configuration without a board is checked
against the xc7z020. Yosys' counts are estimates before place and route.

RTLIL rather than Verilog: it is the same netlist Amaranth hands its own Verilog writer,
and Yosys reads it in seconds where its Verilog frontend needs tens of minutes on the
several-megabyte ``pynq-z2`` top.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from amaranth.back import rtlil

from hw.accel.top import TOP_NAME, AcceleratorTop
from protocol.config import ACCEL_CONFIGS, BOARD_PARTS, AcceleratorConfig, get_config
from sim.synth import (
    DEVICES,
    XC7Z020,
    Device,
    Resources,
    SynthError,
    SynthRow,
    device_for_part,
    parse_stat,
    write_tables,
)
from sim.tools import yosys_executable

__all__ = ["FIT_LIMITS", "config_device", "misfits", "synthesize_config", "main"]

#: Largest utilisation (percent) per resource for a configuration to count as fitting.
FIT_LIMITS = {"lut": 80.0, "bram36": 100.0, "uram": 100.0, "dsp": 100.0}


def config_device(config: AcceleratorConfig) -> Device:
    """The device of ``config``'s board part (:data:`~protocol.config.BOARD_PARTS`); xc7z020 without one."""
    part = BOARD_PARTS.get(config.name)
    return XC7Z020 if part is None else device_for_part(part)


def misfits(resources: Resources, device: Device = XC7Z020) -> list[str]:
    """The resources above :data:`FIT_LIMITS` (empty when the design fits), as readable strings."""
    use = resources.utilisation(device)
    return [
        f"{name} {use[name]:.1f}% > {limit:g}%" for name, limit in FIT_LIMITS.items() if use[name] > limit
    ]


def synthesize_config(
    config: AcceleratorConfig, workdir: Path, *, timeout: float = 7200.0, device: Device | None = None
) -> Resources:
    """RTLIL of ``config``'s top -> Yosys ``synth_xilinx`` -> resources (log and stats in ``workdir``).

    ``device`` (default: :func:`config_device`) picks the family and whether URAM is inferred.

    Raises
    ------
    sim.synth.SynthError
        When Yosys fails, times out or writes no statistics.
    """
    device = config_device(config) if device is None else device
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    source = workdir / f"{TOP_NAME}.il"
    source.write_text(rtlil.convert(AcceleratorTop(config), name=TOP_NAME, emit_src=False))
    log, stat = workdir / f"{TOP_NAME}.log", workdir / f"{TOP_NAME}.stat.json"
    stat.unlink(missing_ok=True)
    # -flatten: as Vivado's default; Yosys 0.23 also writes broken `stat -json` for hierarchies.
    script = (
        f"read_rtlil {source.resolve()}; synth_xilinx {device.synth_options} -top {TOP_NAME} -noiopad "
        "-flatten; "
        f"tee -q -o {stat.resolve()} stat -json"
    )
    command = [str(yosys_executable()), "-q", "-l", str(log.resolve()), "-p", script]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as error:
        raise SynthError(f"yosys on {config.name} took longer than {timeout:.0f} s (log: {log})") from error
    if result.returncode != 0 or not stat.is_file():
        detail = " | ".join((result.stderr or result.stdout).strip().splitlines()[-5:])
        raise SynthError(f"yosys failed on {config.name} (exit {result.returncode}, log {log}): {detail}")
    return parse_stat(stat.read_text())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.accel.synth", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="pynq-z2", choices=sorted(ACCEL_CONFIGS))
    parser.add_argument("--out", type=Path, default=Path("build/accel"), help="root of synth/<config>/")
    parser.add_argument("--timeout", type=float, default=7200.0, help="yosys time limit in seconds")
    parser.add_argument(
        "--device", choices=sorted(DEVICES), help="target device (default: the configuration's board's)"
    )
    args = parser.parse_args(argv)
    cfg = get_config(args.config)
    device = config_device(cfg) if args.device is None else DEVICES[args.device]
    workdir = args.out / "synth" / cfg.name
    began = time.perf_counter()
    resources = synthesize_config(cfg, workdir, timeout=args.timeout, device=device)
    seconds = time.perf_counter() - began
    params = {k: v for k, v in cfg.to_dict().items() if k not in ("numerics", "clock_mhz")}
    row = SynthRow(cfg.name, "accelerator", params, resources, seconds)
    md, _ = write_tables([row], workdir, device=device)
    print(md.read_text())
    problems = misfits(resources, device)
    print(
        f"{cfg.name} on {device.name}: {'fits' if not problems else 'does not fit: ' + ', '.join(problems)} "
        f"(yosys {seconds:.0f} s)"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
