"""What the two simulation engines share: the build root, the build lock, the top for a configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sim.tools import locked

from ..errors import HostError
from ..rtl import TopFiles, write_top

__all__ = ["DEFAULT_ROOT", "ENGINES", "SimulatorError", "locked", "top_for_config"]

#: Default parent of the simulator build directories (one per accelerator configuration).
DEFAULT_ROOT = Path("build/host-sim")
#: Simulation engines: ``native`` (in-process, the default) and ``cocotb``.
ENGINES = ("native", "cocotb")


class SimulatorError(HostError):
    """The simulator could not be built or started, died, or answered a request with an error."""


def top_for_config(config: Any, root: Path | None = None) -> tuple[TopFiles, Path, float]:
    """``(files, build_dir, clock_mhz)`` of the accelerator top for ``config``.

    The Verilog goes to ``<root>/rtl/<config>/``, builds to ``<root>/<config>/``.
    """
    from hw.accel.config import get_config

    cfg = get_config(config)
    root = Path(root if root is not None else DEFAULT_ROOT)
    with locked(root / "rtl"):
        files = write_top(cfg, root / "rtl" / cfg.name)
    return files, root / cfg.name, cfg.clock_mhz
