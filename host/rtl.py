"""The accelerator's Verilog for a configuration, regenerated only when its inputs change.

Both simulation engines and the Vivado flow (``make bitstream``) take the top from
here: :class:`hw.accel.top.AcceleratorTop` converted by :func:`hw.generate.verilog_of`
(no source paths in the output). Converting a top takes from seconds (``sim``) to
minutes (``pynq-z2``), so a fingerprint of everything the text depends on (the
configuration, the ``hw`` package's sources, the Amaranth version) is stored beside
the file and an unchanged fingerprint skips the conversion.
"""

from __future__ import annotations

import hashlib
import json
from importlib.metadata import version
from pathlib import Path

from hw.accel.config import AcceleratorConfig

__all__ = ["fingerprint", "write_top"]

_HW = Path(__file__).resolve().parents[1] / "hw"
_GOLDEN_NUMERICS = Path(__file__).resolve().parents[1] / "golden" / "numerics.py"


def fingerprint(config: AcceleratorConfig) -> str:
    """Hash of the configuration, the generator's sources and the Amaranth version."""
    digest = hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True).encode())
    digest.update(version("amaranth").encode())
    for source in sorted([*_HW.rglob("*.py"), _GOLDEN_NUMERICS]):
        digest.update(str(source.relative_to(_HW.parent)).encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()


def write_top(config: AcceleratorConfig, directory: Path) -> tuple[Path, str]:
    """Write ``<directory>/<top>.v`` for ``config``; returns its path and the module name.

    The file is rewritten only when its text changes, so Verilator and make see an
    unchanged design as up to date.
    """
    from hw.accel.top import TOP_NAME

    path = Path(directory) / f"{TOP_NAME}.v"
    stamp = path.with_suffix(".fingerprint")
    current = fingerprint(config)
    if path.is_file() and stamp.is_file() and stamp.read_text() == current:
        return path, TOP_NAME
    from hw.accel.top import AcceleratorTop
    from hw.generate import verilog_of

    text = verilog_of(AcceleratorTop(config), name=TOP_NAME)
    if not path.is_file() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    stamp.write_text(current)
    return path, TOP_NAME
