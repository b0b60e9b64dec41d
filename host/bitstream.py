"""``python -m host.bitstream`` (``make bitstream``): the accelerator's Verilog through Vivado to an overlay.

Writes ``<out>/rtl/<config>/spikeformer_accel.v`` for the accelerator configuration, then runs
``board/bitstream.tcl`` in Vivado batch mode, which packages it as an IP, builds the
PYNQ-Z2 block design and writes ``<out>/spikeformer.bit`` and ``<out>/spikeformer.hwh``.
The fabric clock (FCLK0) is the configuration's ``clock_mhz`` (:mod:`protocol.config`, the
one place the clock is set); ``--clock-mhz`` overrides it for one build.
The block-design names below are the ones :class:`host.backends.pynq_backend.PynqBackend`
binds. Without ``vivado`` on ``PATH`` it stops before doing anything, with a message
saying how to get it.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import BackendUnavailable

__all__ = [
    "OVERLAY_NAME",
    "IP_INSTANCE",
    "DMA_INSTANCE",
    "PART",
    "DMA_LENGTH_WIDTH",
    "TCL_SCRIPT",
    "vivado_executable",
    "vivado_command",
    "main",
]

#: Base name of the overlay files (``spikeformer.bit`` + ``spikeformer.hwh``).
OVERLAY_NAME = "spikeformer"
#: Block-design instance name of the accelerator (the pynq IP attribute).
IP_INSTANCE = "spikeformer_0"
#: Block-design instance name of the AXI DMA.
DMA_INSTANCE = "axi_dma_0"
#: PYNQ-Z2 device.
PART = "xc7z020clg400-1"
#: Width of the DMA's buffer length register: transfers up to 2**26 - 1 bytes (64 MB).
DMA_LENGTH_WIDTH = 26
#: The Vivado batch script.
TCL_SCRIPT = Path(__file__).resolve().parents[1] / "board" / "bitstream.tcl"


def vivado_executable() -> Path:
    """``vivado`` from ``PATH``, or :class:`~host.errors.BackendUnavailable` saying how to get it."""
    found = shutil.which("vivado")
    if found is None:
        raise BackendUnavailable(
            "vivado is not on PATH: `make bitstream` needs AMD Vivado (2020.2 or later, with Zynq-7000 "
            "support). Install it, then `source <Vivado install>/settings64.sh` and rerun; "
            "see docs/board.md"
        )
    return Path(found)


def vivado_command(
    vivado: Path, *, verilog: Path, top: str, out: Path, clock_mhz: float, jobs: int
) -> list[str]:
    """The batch command line; the argument order is the one board/bitstream.tcl reads."""
    return [
        str(vivado),
        "-mode",
        "batch",
        "-nojournal",
        "-log",
        str(out / "vivado.log"),
        "-source",
        str(TCL_SCRIPT),
        "-tclargs",
        str(verilog),
        top,
        str(out),
        OVERLAY_NAME,
        IP_INSTANCE,
        DMA_INSTANCE,
        PART,
        str(DMA_LENGTH_WIDTH),
        f"{clock_mhz:g}",
        str(jobs),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m host.bitstream", description=__doc__.splitlines()[0])
    p.add_argument("--config", default="pynq-z2", help="accelerator configuration (default pynq-z2)")
    p.add_argument(
        "--out", type=Path, default=Path("build/board"), help="output directory (default build/board)"
    )
    p.add_argument(
        "--clock-mhz",
        type=float,
        default=None,
        help="fabric clock FCLK0 in MHz (default: the configuration's clock_mhz)",
    )
    p.add_argument("--jobs", type=int, default=4, help="Vivado implementation jobs (default 4)")
    args = p.parse_args(argv)
    if args.clock_mhz is not None and not args.clock_mhz > 0:
        print(f"error: --clock-mhz must be positive, not {args.clock_mhz}", file=sys.stderr)
        return 2
    try:
        vivado = vivado_executable()
    except BackendUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from protocol.config import get_config
    from sim.accel.rtl import write_top

    args.out.mkdir(parents=True, exist_ok=True)
    cfg = get_config(args.config)
    files = write_top(cfg, args.out / "rtl" / cfg.name)
    command = vivado_command(
        vivado,
        verilog=files.verilog.resolve(),
        top=files.toplevel,
        out=args.out.resolve(),
        clock_mhz=cfg.clock_mhz if args.clock_mhz is None else args.clock_mhz,
        jobs=args.jobs,
    )
    print("[bitstream]", " ".join(command), flush=True)
    status = subprocess.call(command)
    outputs = [args.out / f"{OVERLAY_NAME}.{suffix}" for suffix in ("bit", "hwh")]
    if status != 0 or not all(path.is_file() for path in outputs):
        print(f"error: Vivado failed (exit status {status}); see {args.out / 'vivado.log'}", file=sys.stderr)
        return 1
    print(f"[bitstream] overlay: {outputs[0]} + {outputs[1].name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
