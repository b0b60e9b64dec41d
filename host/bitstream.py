"""``python -m host.bitstream`` (``make bitstream``): the accelerator's Verilog through Vivado to an overlay.

Writes ``<out>/rtl/<config>/spikeformer_accel.v`` for the accelerator configuration, then runs
``board/bitstream.tcl`` in Vivado batch mode, which packages it as an IP, builds the block
design for the part's family (Zynq-7000: ``processing_system7``; Zynq UltraScale+:
``zynq_ultra_ps_e``) and writes ``<out>/spikeformer.bit`` and ``<out>/spikeformer.hwh``.
The part is the configuration's board part (:data:`protocol.config.BOARD_PARTS`) unless
``--part`` names one; ``--part`` alone picks the preset built for that device
(:func:`resolve_target`). The fabric clock (FCLK0 / pl_clk0) is the configuration's
``clock_mhz`` (:mod:`protocol.config`, the one place the clock is set); ``--clock-mhz``
overrides it for one build. The block-design names below are the ones
:class:`host.backends.pynq_backend.PynqBackend` binds. Without ``vivado`` on ``PATH`` it
stops before doing anything, with a message saying how to get it.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from protocol.config import ACCEL_CONFIGS, BOARD_PARTS

from .errors import BackendUnavailable

__all__ = [
    "OVERLAY_NAME",
    "IP_INSTANCE",
    "DMA_INSTANCE",
    "PART",
    "DMA_LENGTH_WIDTH",
    "TCL_SCRIPT",
    "TargetError",
    "ps_family",
    "board_glob",
    "resolve_target",
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
#: PYNQ-Z2 device (the default part: ``pynq-z2`` is the default configuration).
PART = BOARD_PARTS["pynq-z2"]
#: Width of the DMA's buffer length register: transfers up to 2**26 - 1 bytes (64 MB).
DMA_LENGTH_WIDTH = 26
#: The Vivado batch script.
TCL_SCRIPT = Path(__file__).resolve().parents[1] / "board" / "bitstream.tcl"
#: Part-name prefix -> processing-system family of board/bitstream.tcl.
_PS_FAMILIES = (("xc7z", "zynq"), ("xczu", "zynqmp"), ("xck", "zynqmp"))
#: Part-name prefix -> glob of the Vivado board part whose presets the PS takes when installed.
_BOARD_GLOBS = (("xc7z020", "*pynq-z2*"), ("xck26", "*kv260_som*"), ("xczu7ev", "*zcu104*"))


class TargetError(ValueError):
    """The configuration and part given to ``make bitstream`` / ``make deploy`` do not make a target."""


def ps_family(part: str) -> str:
    """``zynq`` (Zynq-7000) or ``zynqmp`` (Zynq UltraScale+, Kria) for a Vivado part name."""
    for prefix, family in _PS_FAMILIES:
        if part.lower().startswith(prefix):
            return family
    raise TargetError(
        f"part {part!r} is neither a Zynq-7000 (xc7z...) nor a Zynq UltraScale+ (xczu..., xck...) device"
    )


def board_glob(part: str) -> str:
    """The board-part glob for ``part``'s board files, or ``-`` when no board is known."""
    return next((glob for prefix, glob in _BOARD_GLOBS if part.lower().startswith(prefix)), "-")


def _device(part: str) -> str:
    # The device is the part name before its first dash: xck26 of xck26-sfvc784-2LV-c,
    # xc7z020clg400 (device and package) of xc7z020clg400-1.
    return part.lower().split("-", 1)[0]


def resolve_target(config: str | None, part: str | None) -> tuple[str, str]:
    """``(configuration name, part)`` from either or both (``make`` ``ACCEL_CONFIG``, ``BOARD_PART``).

    Neither: ``pynq-z2`` on its part. A configuration alone: its board part. A part alone: the
    preset whose board part is the same device. Both: taken as they are (a configuration built
    for a larger part than its own).

    Raises
    ------
    TargetError
        For an unknown configuration, a configuration without a board part and no part, a part
        that no preset is built for, or a part of neither family.
    """
    if config is not None and config not in ACCEL_CONFIGS:
        raise TargetError(f"unknown accelerator configuration {config!r}; known: {', '.join(ACCEL_CONFIGS)}")
    if config is None and part is None:
        config = "pynq-z2"
    if part is None:
        if config not in BOARD_PARTS:
            raise TargetError(
                f"configuration {config!r} has no board part; name one with BOARD_PART= (--part); "
                f"board presets: {', '.join(f'{c} ({p})' for c, p in BOARD_PARTS.items())}"
            )
        part = BOARD_PARTS[config]
    if config is None:
        matches = [name for name, board in BOARD_PARTS.items() if _device(board) == _device(part)]
        if not matches:
            raise TargetError(
                f"no accelerator configuration is built for part {part!r}; name one with ACCEL_CONFIG= "
                f"(--config); board presets: {', '.join(f'{c} ({p})' for c, p in BOARD_PARTS.items())}"
            )
        config = matches[0]
    ps_family(part)
    return config, part


def vivado_executable() -> Path:
    """``vivado`` from ``PATH``, or :class:`~host.errors.BackendUnavailable` saying how to get it."""
    found = shutil.which("vivado")
    if found is None:
        raise BackendUnavailable(
            "vivado is not on PATH: `make bitstream` needs AMD Vivado (2020.2 or later, with the "
            "target's devices: Zynq-7000 for pynq-z2, Kria K26 (Zynq UltraScale+) for kv260). Install "
            "it, then `source <Vivado install>/settings64.sh` and rerun; see docs/board.md"
        )
    return Path(found)


def vivado_command(
    vivado: Path, *, verilog: Path, top: str, out: Path, clock_mhz: float, jobs: int, part: str = PART
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
        part,
        ps_family(part),
        board_glob(part),
        str(DMA_LENGTH_WIDTH),
        f"{clock_mhz:g}",
        str(jobs),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m host.bitstream", description=__doc__.splitlines()[0])
    p.add_argument(
        "--config",
        default=None,
        help="accelerator configuration (default: the preset of --part, else pynq-z2)",
    )
    p.add_argument(
        "--part", default=None, help="Vivado part (default: the configuration's board part, protocol.config)"
    )
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
        config, part = resolve_target(args.config, args.part)
        vivado = vivado_executable()
    except (TargetError, BackendUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from protocol.config import get_config
    from sim.accel.rtl import write_top

    args.out.mkdir(parents=True, exist_ok=True)
    cfg = get_config(config)
    print(f"[bitstream] {cfg.name} on {part} ({ps_family(part)})", flush=True)
    files = write_top(cfg, args.out / "rtl" / cfg.name)
    command = vivado_command(
        vivado,
        verilog=files.verilog.resolve(),
        top=files.toplevel,
        out=args.out.resolve(),
        clock_mhz=cfg.clock_mhz if args.clock_mhz is None else args.clock_mhz,
        jobs=args.jobs,
        part=part,
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
