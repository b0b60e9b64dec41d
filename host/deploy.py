"""``python -m host.deploy`` (``make deploy BOARD=<host>``): run an export on a PYNQ board.

1. :func:`stage` assembles a directory with everything the board needs: the Python
   packages ``host.run --backend pynq`` imports (``contract``, ``protocol``, ``host``;
   sources only; they need numpy and ``pynq``, which a PYNQ image has), the overlay
   (``overlay/spikeformer.bit`` + ``.hwh``), the export directory (``export/``) and, in
   ``vendor/``, any installed pure-Python package of :data:`VENDORED` (none today).
2. The directory is streamed to the board with ``tar | ssh`` into ``--board-dir``.
3. ``python -m host.run --backend pynq`` runs there and prints its report here; without
   ``--clock-mhz`` it reports frames per second at the configuration's clock.

The same for both board families (a PYNQ-Z2 image, a Kria image with Kria-PYNQ): the overlay
carries the difference. ``--config`` / ``--part`` name the configuration as ``make bitstream``
does (:func:`host.bitstream.resolve_target`).

``--stage-only`` stops after step 1 (and prints the two remote commands).
"""

from __future__ import annotations

import argparse
import importlib.util
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from .bitstream import OVERLAY_NAME, TargetError, resolve_target

__all__ = ["PACKAGES", "VENDORED", "stage", "remote_run_command", "main"]

#: Project packages copied to the board: the board path imports only these (and numpy, pynq).
PACKAGES = ("contract", "protocol", "host")
#: Installed pure-Python packages those import that a PYNQ image lacks, copied to ``vendor/``.
VENDORED: tuple[str, ...] = ()
#: Python on a PYNQ (v3) image; pynq needs root for /dev/mem and the XRT environment.
DEFAULT_PYTHON = "sudo -E /usr/local/share/pynq-venv/bin/python3"

_ROOT = Path(__file__).resolve().parents[1]


def _copy_sources(package: Path, target: Path) -> None:
    for source in package.rglob("*.py"):
        if "__pycache__" in source.parts:
            continue
        destination = target / source.relative_to(package.parent)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination)


def stage(directory: Path, *, export: Path, overlay_dir: Path, vendor: bool = True) -> Path:
    """Fill ``directory`` (emptied first) with the packages, the overlay, the export and ``vendor/``."""
    export, overlay_dir = Path(export), Path(overlay_dir)
    if not (export / "manifest.json").is_file():
        raise FileNotFoundError(f"{export} is not an export directory (no manifest.json); run `make export`")
    overlay = [overlay_dir / f"{OVERLAY_NAME}.{suffix}" for suffix in ("bit", "hwh")]
    missing = [str(path) for path in overlay if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"overlay file(s) {', '.join(missing)} missing; run `make bitstream`")
    directory = Path(directory)
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    for package in PACKAGES:
        _copy_sources(_ROOT / package, directory)
    (directory / "overlay").mkdir()
    for path in overlay:
        shutil.copy2(path, directory / "overlay" / path.name)
    shutil.copytree(export, directory / "export")
    if vendor:
        for name in VENDORED:
            spec = importlib.util.find_spec(name)
            if spec is None or spec.origin is None:
                raise ModuleNotFoundError(
                    f"{name} is not installed here, so it cannot be copied to the board"
                )
            shutil.copytree(
                Path(spec.origin).parent,
                directory / "vendor" / name,
                ignore=shutil.ignore_patterns("__pycache__"),
            )
    return directory


def remote_run_command(
    board_dir: str, *, python: str, config: str, samples: int | str, clock_mhz: float | None = None
) -> str:
    """The shell command that runs the CLI on the board (``clock_mhz`` overrides the configuration's)."""
    run = (
        f"{python} -m host.run --export export --backend pynq --overlay overlay/{OVERLAY_NAME}.bit "
        f"--config {shlex.quote(config)} --samples {samples}"
    )
    if clock_mhz is not None:
        run += f" --clock-mhz {clock_mhz:g}"
    return f'cd {shlex.quote(board_dir)} && export PYTHONPATH="$PWD/vendor:$PWD" && {run}'


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m host.deploy", description=__doc__.splitlines()[0])
    p.add_argument("--board", help="ssh destination of the PYNQ board (user@host)")
    p.add_argument("--export", type=Path, required=True, help="export directory")
    p.add_argument(
        "--overlay-dir",
        type=Path,
        default=Path("build/board"),
        help=f"directory with {OVERLAY_NAME}.bit and .hwh (default build/board)",
    )
    p.add_argument(
        "--stage", type=Path, default=Path("build/deploy"), help="staging directory (default build/deploy)"
    )
    p.add_argument(
        "--board-dir", default="spikeformer", help="directory on the board (default ~/spikeformer)"
    )
    p.add_argument(
        "--python", default=DEFAULT_PYTHON, help=f"Python on the board (default: {DEFAULT_PYTHON})"
    )
    p.add_argument(
        "--config",
        default=None,
        help="accelerator configuration of the overlay (default: --part's, else pynq-z2)",
    )
    p.add_argument("--part", default=None, help="the overlay's Vivado part (picks the configuration)")
    p.add_argument("--samples", default="all", help="test vectors to run on the board, or 'all' (default)")
    p.add_argument(
        "--clock-mhz",
        type=float,
        default=None,
        help="clock override for the board run (default: the configuration's clock_mhz)",
    )
    p.add_argument("--stage-only", action="store_true", help="only assemble the staging directory")
    args = p.parse_args(argv)
    if not args.stage_only and not args.board:
        print("error: --board user@host is required (or --stage-only)", file=sys.stderr)
        return 2
    try:
        # A configuration alone is taken as it is (the board runs what the overlay was built for).
        config = (
            args.config if args.part is None and args.config else resolve_target(args.config, args.part)[0]
        )
    except TargetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        staged = stage(args.stage, export=args.export, overlay_dir=args.overlay_dir)
    except (FileNotFoundError, ModuleNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    copy = (
        f"tar -C {shlex.quote(str(staged))} -czf - . | ssh {args.board or '<board>'} "
        f"{shlex.quote(f'mkdir -p {args.board_dir} && tar -xzf - -C {args.board_dir}')}"
    )
    run = remote_run_command(
        args.board_dir, python=args.python, config=config, samples=args.samples, clock_mhz=args.clock_mhz
    )
    print(f"[deploy] staged {staged}")
    if args.stage_only:
        print(f"[deploy] copy: {copy}\n[deploy] run:  ssh {args.board or '<board>'} {shlex.quote(run)}")
        return 0
    for command in (copy, f"ssh {args.board} {shlex.quote(run)}"):
        print(f"[deploy] {command}", flush=True)
        status = subprocess.call(command, shell=True)
        if status != 0:
            print(f"error: `{command}` failed with exit status {status}", file=sys.stderr)
            return status
    return 0


if __name__ == "__main__":
    sys.exit(main())
