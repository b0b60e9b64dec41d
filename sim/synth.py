"""Resource estimates of the PE configurations with Yosys ``synth_xilinx`` (7-series, xc7z020).

``make synth`` runs ``python -m sim.synth`` on the Verilog that ``make rtl`` wrote to
``build/rtl``: each ``<name>.v`` goes through
``read_verilog; synth_xilinx -family xc7 -top <name> -noiopad; stat -json``, and the
cell counts become one row of ``build/synth/resources.md`` and ``resources.csv``:
LUTs (logic plus LUTs used as shift registers or distributed RAM), flip-flops, CARRY4,
DSP48E1 and BRAM (in RAMB36 equivalents), with utilisation of the PYNQ-Z2's xc7z020.
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
    """Capacity of an FPGA for the utilisation columns."""

    name: str
    lut: int
    ff: int
    carry4: int
    dsp: int
    bram36: int


#: PYNQ-Z1/Z2 device: 53,200 LUT, 106,400 FF, 13,300 slices (one CARRY4 each), 220 DSP, 140 BRAM36.
XC7Z020 = Device(name="xc7z020", lut=53_200, ff=106_400, carry4=13_300, dsp=220, bram36=140)

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
}
_FLIP_FLOPS = ("FDRE", "FDSE", "FDCE", "FDPE", "LDCE", "LDPE")
_DSPS = ("DSP48E1",)
#: BRAM in RAMB36 equivalents.
_BRAMS: dict[str, float] = {"RAMB36E1": 1.0, "RAMB18E1": 0.5, "FIFO36E1": 1.0, "FIFO18E1": 0.5}


@dataclass(frozen=True)
class Resources:
    """7-series resources of one synthesized design.

    Attributes
    ----------
    lut, ff, carry4, dsp:
        LUT sites (logic + memory), flip-flops and latches, CARRY4 and DSP48E1 cells.
    bram36:
        Block RAM in RAMB36 equivalents (a RAMB18 counts one half).
    cells:
        Every cell type and its count, as Yosys reported them.
    """

    lut: int
    ff: int
    carry4: int
    dsp: int
    bram36: float
    cells: Mapping[str, int] = field(default_factory=dict)

    def utilisation(self, device: Device = XC7Z020) -> dict[str, float]:
        """Percentages of ``device``'s LUT, FF, CARRY4, DSP and BRAM36 capacity."""
        return {
            "lut": 100.0 * self.lut / device.lut,
            "ff": 100.0 * self.ff / device.ff,
            "carry4": 100.0 * self.carry4 / device.carry4,
            "dsp": 100.0 * self.dsp / device.dsp,
            "bram36": 100.0 * self.bram36 / device.bram36,
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
        carry4=cells.get("CARRY4", 0),
        dsp=sum(cells.get(cell, 0) for cell in _DSPS),
        bram36=sum(count * _BRAMS.get(cell, 0.0) for cell, count in cells.items()),
        cells=cells,
    )


def synthesize(
    verilog: Path, *, top: str, workdir: Path, yosys: Path | None = None, timeout: float = 1800.0
) -> Resources:
    """Run ``synth_xilinx -family xc7 -noiopad`` on ``verilog`` and return its resources.

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
        f"read_verilog {verilog}; synth_xilinx -family xc7 -top {top} -noiopad; "
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


_COLUMNS = (
    "config",
    "kind",
    "params",
    "LUT",
    "FF",
    "CARRY4",
    "DSP48E1",
    "BRAM36",
    "LUT %",
    "FF %",
    "DSP %",
    "BRAM %",
)


def _cells(row: SynthRow, device: Device) -> list[str]:
    r, use = row.resources, row.resources.utilisation(device)
    params = " ".join(f"{k}={v}" for k, v in row.params.items() if k != "kind")
    return [
        row.name,
        row.kind,
        params,
        str(r.lut),
        str(r.ff),
        str(r.carry4),
        str(r.dsp),
        f"{r.bram36:g}",
        f"{use['lut']:.2f}",
        f"{use['ff']:.2f}",
        f"{use['dsp']:.2f}",
        f"{use['bram36']:.2f}",
    ]


def write_tables(rows: Iterable[SynthRow], out: Path, *, device: Device = XC7Z020) -> tuple[Path, Path]:
    """Write ``resources.md`` and ``resources.csv`` into ``out``; return both paths."""
    rows = list(rows)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    md, csv_path = out / "resources.md", out / "resources.csv"
    lines = [
        f"# PE resources: Yosys synth_xilinx -family xc7, utilisation of {device.name}",
        "",
        f"{device.name}: {device.lut:,} LUT, {device.ff:,} FF, {device.carry4:,} CARRY4, "
        f"{device.dsp} DSP48E1, {device.bram36} BRAM36. LUT counts LUT sites (logic, SRL, LUT RAM); "
        "BRAM in RAMB36 units. Estimates before place and route.",
        "",
        "| " + " | ".join(_COLUMNS) + " |",
        "|" + "|".join("---" if i < 3 else "---:" for i in range(len(_COLUMNS))) + "|",
    ]
    lines += ["| " + " | ".join(_cells(row, device)) + " |" for row in rows]
    md.write_text("\n".join(lines) + "\n")
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(_COLUMNS)
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
    args = parser.parse_args(argv)
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
        resources = synthesize(verilog, top=verilog.stem, workdir=args.out / "logs", yosys=yosys)
        kind, params = _describe(verilog)
        row = SynthRow(verilog.stem, kind, params, resources, time.perf_counter() - start)
        print(
            f"[synth] {row.name:24s} LUT {resources.lut:6d}  FF {resources.ff:6d}  CARRY4 "
            f"{resources.carry4:5d}  DSP {resources.dsp:3d}  BRAM36 {resources.bram36:g}  "
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
    md, csv_path = write_tables(rows, args.out)
    print(f"[synth] wrote {md} and {csv_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
