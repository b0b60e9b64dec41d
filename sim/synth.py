"""Resource estimates with Yosys ``synth_xilinx`` against a device table (xc7z020, xck26).

``make synth`` runs ``python -m sim.synth`` on the Verilog that ``make rtl`` wrote to
``build/rtl``: each ``<name>.v`` goes through
``read_verilog; synth_xilinx -family xc7 -top <name> -noiopad; stat -json``, and the
cell counts become one row of ``build/synth/resources.md`` and ``resources.csv``:
LUTs (logic plus LUTs used as shift registers or distributed RAM), flip-flops, carry
chains, DSPs and BRAM (in RAMB36 equivalents), with utilisation of the PYNQ-Z2's
xc7z020. ``--device xck26`` synthesizes for the Kria K26 instead (``-family xcup -uram``:
DSP48E2, RAMB36E2 and URAM288 cells, and a URAM column).
Yosys' numbers are estimates before place and route; Vivado usually lands lower on
LUTs (better packing) but in the same range.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protocol.params import PE_CONFIGS
from sim.tools import ToolNotFoundError, yosys_executable

__all__ = [
    "Device",
    "XC7Z020",
    "XCK26",
    "DEVICES",
    "device_for_part",
    "Resources",
    "SynthError",
    "SynthRow",
    "parse_stat",
    "synthesize",
    "write_tables",
    "main",
]


class SynthError(RuntimeError):
    """Yosys failed or its statistics could not be read."""


@dataclass(frozen=True)
class Device:
    """Capacity of an FPGA for the utilisation columns, and the Yosys family that maps to it.

    Attributes
    ----------
    name:
        Device name, the prefix of its part names (``xc7z020`` of ``xc7z020clg400-1``).
    family:
        ``synth_xilinx -family`` value: ``xc7`` (7-series) or ``xcup`` (UltraScale+).
    lut, ff, carry, dsp, bram36, uram:
        LUT6 sites, flip-flops, carry chains in CARRY4 units (one per 7-series slice, two per
        UltraScale+ CLB: Yosys 0.23 maps ``-family xcup`` adders to CARRY4 cells too, and a
        CARRY8 counts two), DSP slices, RAMB36 blocks and URAM288 blocks (none on 7-series).
    """

    name: str
    family: str
    lut: int
    ff: int
    carry: int
    dsp: int
    bram36: int
    uram: int = 0

    @property
    def carry_cell(self) -> str:
        """Column name of the carry count (CARRY4 units on every family)."""
        return "CARRY4"

    @property
    def dsp_cell(self) -> str:
        return "DSP48E1" if self.family == "xc7" else "DSP48E2"

    @property
    def synth_options(self) -> str:
        """``synth_xilinx`` options for this device (URAM288s only where the device has them)."""
        return f"-family {self.family}" + (" -uram" if self.uram else "")


#: PYNQ-Z1/Z2 device: 53,200 LUT, 106,400 FF, 13,300 slices (one CARRY4 each), 220 DSP, 140 BRAM36.
XC7Z020 = Device(name="xc7z020", family="xc7", lut=53_200, ff=106_400, carry=13_300, dsp=220, bram36=140)
#: Kria K26 SOM (KV260): 117,120 LUT, 234,240 FF, 14,640 CLBs (one CARRY8, two CARRY4 units,
#: each), 1,248 DSP48E2, 144 BRAM36, 64 URAM288.
XCK26 = Device(
    name="xck26", family="xcup", lut=117_120, ff=234_240, carry=29_280, dsp=1_248, bram36=144, uram=64
)
#: The devices by name.
DEVICES: dict[str, Device] = {device.name: device for device in (XC7Z020, XCK26)}


def device_for_part(part: str) -> Device:
    """The device of a Vivado part name (``xck26-sfvc784-2LV-c`` -> :data:`XCK26`).

    Raises
    ------
    KeyError
        When no device of :data:`DEVICES` matches the part.
    """
    for name, device in DEVICES.items():
        if part.lower().startswith(name):
            return device
    raise KeyError(f"no device table for part {part!r}; known devices: {', '.join(DEVICES)}")


#: LUT6 sites taken by each 7-series cell that lives in LUTs (logic, shift registers, LUT RAM).
_LUT_SITES: dict[str, int] = {
    **{f"LUT{n}": 1 for n in range(1, 7)},
    "LUT6_2": 1,
    "SRL16E": 1,
    "SRLC16E": 1,
    "SRLC32E": 1,
    "RAM32X1S": 1,
    "RAM64X1S": 1,
    "RAM128X1S": 2,
    "RAM256X1S": 4,
    "RAM32X1D": 2,
    "RAM64X1D": 2,
    "RAM128X1D": 4,
    "RAM32M": 4,
    "RAM64M": 4,
    "RAM32M16": 8,
    "RAM64M8": 8,
    # UltraScale+ only (8 LUTs of a CLB each).
    "RAM256X1D": 8,
    "RAM512X1S": 8,
    "RAM64X8SW": 8,
    "RAM32X16DR8": 8,
}
_FLIP_FLOPS = ("FDRE", "FDSE", "FDCE", "FDPE", "LDCE", "LDPE")
#: Carry cells in CARRY4 units.
_CARRIES = {"CARRY4": 1, "CARRY8": 2}
_DSPS = ("DSP48E1", "DSP48E2")
#: BRAM in RAMB36 equivalents (7-series E1 and UltraScale+ E2 cells).
_BRAMS: dict[str, float] = {
    **{f"RAMB36E{n}": 1.0 for n in (1, 2)},
    **{f"RAMB18E{n}": 0.5 for n in (1, 2)},
    **{f"FIFO36E{n}": 1.0 for n in (1, 2)},
    **{f"FIFO18E{n}": 0.5 for n in (1, 2)},
}
_URAMS = ("URAM288", "URAM288_BASE")


@dataclass(frozen=True)
class Resources:
    """Resources of one synthesized design (7-series or UltraScale+ cells).

    Attributes
    ----------
    lut, ff, carry, dsp:
        LUT sites (logic + memory), flip-flops and latches, carry chains in CARRY4 units (a
        CARRY8 counts two) and DSP slices (DSP48E1 or DSP48E2).
    bram36:
        Block RAM in RAMB36 equivalents (a RAMB18 counts one half).
    uram:
        URAM288 blocks (UltraScale+ only).
    cells:
        Every cell type and its count, as Yosys reported them.
    """

    lut: int
    ff: int
    carry: int
    dsp: int
    bram36: float
    uram: int = 0
    cells: Mapping[str, int] = field(default_factory=dict)

    def utilisation(self, device: Device = XC7Z020) -> dict[str, float]:
        """Percentages of ``device``'s LUT, FF, carry, DSP, BRAM36 and URAM capacity (URAM on a
        device without any: 0 % when unused, infinite when used)."""
        if device.uram:
            uram = 100.0 * self.uram / device.uram
        else:
            uram = float("inf") if self.uram else 0.0
        return {
            "lut": 100.0 * self.lut / device.lut,
            "ff": 100.0 * self.ff / device.ff,
            "carry": 100.0 * self.carry / device.carry,
            "dsp": 100.0 * self.dsp / device.dsp,
            "bram36": 100.0 * self.bram36 / device.bram36,
            "uram": uram,
        }


def parse_stat(stat: Mapping[str, Any] | str) -> Resources:
    """Resources from the output of Yosys ``stat -json`` (the parsed dictionary or its text).

    Raises
    ------
    SynthError
        When the statistics lack the ``design`` summary or its cell counts.
    """
    if isinstance(stat, str):
        try:
            stat = json.loads(stat)
        except json.JSONDecodeError as error:
            raise SynthError(f"Yosys stat output is not JSON: {error}") from error
    design = stat.get("design") if isinstance(stat, Mapping) else None
    if design is None and isinstance(stat, Mapping) and len(stat.get("modules", {})) == 1:
        design = next(iter(stat["modules"].values()))
    if not isinstance(design, Mapping) or not isinstance(design.get("num_cells_by_type"), Mapping):
        raise SynthError("Yosys stat -json output has no design summary with num_cells_by_type")
    cells = {str(k): int(v) for k, v in design["num_cells_by_type"].items()}
    unmapped = sorted(c for c in cells if c.startswith("$"))
    if unmapped:
        raise SynthError(f"design still holds generic cells after synth_xilinx: {unmapped}")
    return Resources(
        lut=sum(count * _LUT_SITES.get(cell, 0) for cell, count in cells.items()),
        ff=sum(cells.get(cell, 0) for cell in _FLIP_FLOPS),
        carry=sum(cells.get(cell, 0) * units for cell, units in _CARRIES.items()),
        dsp=sum(cells.get(cell, 0) for cell in _DSPS),
        bram36=sum(count * _BRAMS.get(cell, 0.0) for cell, count in cells.items()),
        uram=sum(cells.get(cell, 0) for cell in _URAMS),
        cells=cells,
    )


def synthesize(
    verilog: Path,
    *,
    top: str,
    workdir: Path,
    yosys: Path | None = None,
    timeout: float = 1800.0,
    device: Device = XC7Z020,
) -> Resources:
    """Run ``synth_xilinx -noiopad`` for ``device``'s family on ``verilog`` and return its resources.

    The log goes to ``<workdir>/<top>.log`` and the statistics to ``<workdir>/<top>.stat.json``.

    Raises
    ------
    sim.tools.ToolNotFoundError
        When yosys is not installed.
    SynthError
        When yosys fails, times out or writes no statistics.
    """
    verilog = Path(verilog).resolve()
    if not verilog.is_file():
        raise FileNotFoundError(f"Verilog file {verilog} does not exist")
    if not top.isidentifier():
        raise ValueError(f"top module must be an identifier, not {top!r}")
    executable = yosys or yosys_executable()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    log, stat = workdir / f"{top}.log", workdir / f"{top}.stat.json"
    stat.unlink(missing_ok=True)
    script = (
        f"read_verilog {verilog}; synth_xilinx {device.synth_options} -top {top} -noiopad; "
        f"tee -q -o {stat.resolve()} stat -json"
    )
    try:
        result = subprocess.run(
            [str(executable), "-q", "-l", str(log.resolve()), "-p", script],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise SynthError(f"yosys on {verilog.name} took longer than {timeout:.0f} s (log: {log})") from error
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise SynthError(
            f"yosys failed on {verilog.name} (exit {result.returncode}, log {log}): " + " | ".join(detail)
        )
    if not stat.is_file():
        raise SynthError(f"yosys exited normally on {verilog.name} but wrote no statistics (log {log})")
    return parse_stat(stat.read_text())


@dataclass(frozen=True)
class SynthRow:
    """One table row: configuration name, PE kind, parameters and resources."""

    name: str
    kind: str
    params: Mapping[str, Any]
    resources: Resources
    seconds: float


def _columns(device: Device) -> tuple[str, ...]:
    """Table columns; the URAM ones only for a device that has URAM."""
    uram = ("URAM",) if device.uram else ()
    uram_use = ("URAM %",) if device.uram else ()
    return (
        "config",
        "kind",
        "params",
        "LUT",
        "FF",
        device.carry_cell,
        device.dsp_cell,
        "BRAM36",
        *uram,
        "LUT %",
        "FF %",
        "DSP %",
        "BRAM %",
        *uram_use,
    )


def _cells(row: SynthRow, device: Device) -> list[str]:
    r, use = row.resources, row.resources.utilisation(device)
    params = " ".join(f"{k}={v}" for k, v in row.params.items() if k != "kind")
    uram = [str(r.uram)] if device.uram else []
    uram_use = [f"{use['uram']:.2f}"] if device.uram else []
    return [
        row.name,
        row.kind,
        params,
        str(r.lut),
        str(r.ff),
        str(r.carry),
        str(r.dsp),
        f"{r.bram36:g}",
        *uram,
        f"{use['lut']:.2f}",
        f"{use['ff']:.2f}",
        f"{use['dsp']:.2f}",
        f"{use['bram36']:.2f}",
        *uram_use,
    ]


def write_tables(rows: Iterable[SynthRow], out: Path, *, device: Device = XC7Z020) -> tuple[Path, Path]:
    """Write ``resources.md`` and ``resources.csv`` into ``out``; return both paths."""
    rows = list(rows)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    md, csv_path = out / "resources.md", out / "resources.csv"
    columns = _columns(device)
    uram = f", {device.uram} URAM288" if device.uram else ""
    lines = [
        f"# PE resources: Yosys synth_xilinx {device.synth_options}, utilisation of {device.name}",
        "",
        f"{device.name}: {device.lut:,} LUT, {device.ff:,} FF, {device.carry:,} {device.carry_cell}, "
        f"{device.dsp:,} {device.dsp_cell}, {device.bram36} BRAM36{uram}. LUT counts LUT sites (logic, "
        "SRL, LUT RAM); BRAM in RAMB36 units. Estimates before place and route.",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---" if i < 3 else "---:" for i in range(len(columns))) + "|",
    ]
    lines += ["| " + " | ".join(_cells(row, device)) + " |" for row in rows]
    md.write_text("\n".join(lines) + "\n")
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(_cells(row, device) for row in rows)
    return md, csv_path


def _describe(verilog: Path) -> tuple[str, dict[str, Any]]:
    """PE kind and parameters of a generated file, from the generator's ``<name>.json``."""
    description = verilog.with_suffix(".json")
    if description.is_file():
        data = json.loads(description.read_text())
        return str(data.get("kind", "?")), dict(data.get("params", {}))
    for kind, configs in PE_CONFIGS.items():
        if verilog.stem in configs:
            return kind, configs[verilog.stem].to_dict()
    return "?", {}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sim.synth``: synthesize every ``*.v`` of ``--rtl`` and write the tables."""
    parser = argparse.ArgumentParser(prog="python -m sim.synth", description=__doc__.splitlines()[0])
    parser.add_argument("--rtl", type=Path, default=Path("build/rtl"), help="generated Verilog (make rtl)")
    parser.add_argument("--out", type=Path, default=Path("build/synth"), help="output directory")
    parser.add_argument(
        "--config", action="append", dest="names", metavar="NAME", help="only this configuration (repeatable)"
    )
    parser.add_argument("--jobs", type=int, default=1, help="parallel yosys runs (default 1)")
    parser.add_argument(
        "--device", default=XC7Z020.name, choices=sorted(DEVICES), help="target device (default xc7z020)"
    )
    args = parser.parse_args(argv)
    device = DEVICES[args.device]
    files = sorted(args.rtl.glob("*.v"))
    if args.names:
        missing = sorted(set(args.names) - {f.stem for f in files})
        if missing:
            parser.error(f"{', '.join(missing)} not found in {args.rtl} (run `make rtl` first)")
        files = [f for f in files if f.stem in args.names]
    if not files:
        parser.error(f"no Verilog in {args.rtl}: run `make rtl` first")
    if args.jobs < 1:
        parser.error(f"--jobs must be positive, not {args.jobs}")
    try:
        yosys = yosys_executable()
    except ToolNotFoundError as error:
        print(f"[synth] {error}", file=sys.stderr)
        return 2

    def run(verilog: Path) -> SynthRow:
        start = time.perf_counter()
        resources = synthesize(
            verilog, top=verilog.stem, workdir=args.out / "logs", yosys=yosys, device=device
        )
        kind, params = _describe(verilog)
        row = SynthRow(verilog.stem, kind, params, resources, time.perf_counter() - start)
        print(
            f"[synth] {row.name:24s} LUT {resources.lut:6d}  FF {resources.ff:6d}  {device.carry_cell} "
            f"{resources.carry:5d}  DSP {resources.dsp:3d}  BRAM36 {resources.bram36:g}  "
            f"({row.seconds:.0f} s)",
            flush=True,
        )
        return row

    try:
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            rows = list(pool.map(run, files))
    except SynthError as error:
        print(f"[synth] {error}", file=sys.stderr)
        return 1
    md, csv_path = write_tables(rows, args.out, device=device)
    print(f"[synth] wrote {md} and {csv_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
