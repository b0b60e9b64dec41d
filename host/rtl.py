"""The accelerator's Verilog for a configuration, written once per content change.

Both the simulation backend (Verilator) and the Vivado flow (``make bitstream``) take
the top from here: :class:`hw.accel.top.AcceleratorTop` converted by
:func:`hw.generate.verilog_of` (no source paths in the output).
"""

from __future__ import annotations

from pathlib import Path

from hw.accel.config import AcceleratorConfig

__all__ = ["write_top"]


def write_top(config: AcceleratorConfig, directory: Path) -> tuple[Path, str]:
    """Write ``<directory>/<top>.v`` for ``config``; returns its path and the module name.

    The file is rewritten only when its text changes, so Verilator and make see an
    unchanged design as up to date.
    """
    from hw.accel.top import TOP_NAME, AcceleratorTop
    from hw.generate import verilog_of

    text = verilog_of(AcceleratorTop(config), name=TOP_NAME)
    path = Path(directory) / f"{TOP_NAME}.v"
    if not path.is_file() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return path, TOP_NAME
