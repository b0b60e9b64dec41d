"""The accelerator's Verilog for a configuration, regenerated only when its inputs change.

The host's simulated backend (:mod:`host.backends.native_backend`) and the Vivado flow
(``make bitstream``) take the top from :func:`hw.accel.generate.generate`: the Verilog
(:class:`hw.accel.top.AcceleratorTop`, no source paths), and its file-scoped Verilator
waivers from :mod:`sim.accel.lint`.
Converting a top takes from seconds (``sim``) to minutes (``pynq-z2``), so a fingerprint
of everything the files depend on (the configuration, the ``hw`` and ``protocol`` sources,
``contract/numerics.py``, the waiver rules, the Amaranth version) is stored beside them
and an unchanged fingerprint skips the work.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from protocol.config import AcceleratorConfig

__all__ = ["TopFiles", "fingerprint", "write_top"]

_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class TopFiles:
    """The generated top: ``verilog``, its ``waivers`` (a Verilator control file) and the module name."""

    verilog: Path
    waivers: Path
    toplevel: str


def fingerprint(config: AcceleratorConfig) -> str:
    """Hash of the configuration, the generator's sources and the Amaranth version."""
    digest = hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True).encode())
    digest.update(version("amaranth").encode())
    sources = [*(_ROOT / "hw").rglob("*.py"), *(_ROOT / "protocol").rglob("*.py")]
    sources += [_ROOT / "contract" / "numerics.py", _ROOT / "sim" / "accel" / "lint.py"]
    for source in sorted(sources):
        digest.update(str(source.relative_to(_ROOT)).encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()


def write_top(config: AcceleratorConfig, directory: Path) -> TopFiles:
    """Generate the top of ``config`` into ``directory`` unless it is up to date.

    Files are only rewritten when their content changes, so Verilator and make see an
    unchanged design as up to date.
    """
    from hw.accel.generate import VERILOG_FILE
    from hw.accel.top import TOP_NAME
    from sim.accel.lint import WAIVER_FILE, write_waivers

    directory = Path(directory)
    files = TopFiles(directory / VERILOG_FILE, directory / WAIVER_FILE, TOP_NAME)
    stamp = directory / "fingerprint"
    current = fingerprint(config)
    if not (
        files.verilog.is_file()
        and files.waivers.is_file()
        and stamp.is_file()
        and stamp.read_text() == current
    ):
        from hw.accel.generate import generate

        paths = generate(config, directory.parent)
        written = (paths["verilog"], write_waivers(paths["verilog"]))
        if directory.name != config.name or written != (files.verilog, files.waivers):
            raise RuntimeError(f"hw.accel.generate wrote {paths}, expected the files of {files}")
        stamp.write_text(current)
    return files
