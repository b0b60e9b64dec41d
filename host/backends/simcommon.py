"""What the two simulation engines share: the build root, the build lock, the top for a configuration."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import HostError

__all__ = ["DEFAULT_ROOT", "ENGINES", "SimulatorError", "locked", "top_for_config"]

#: Default parent of the simulator build directories (one per accelerator configuration).
DEFAULT_ROOT = Path("build/host-sim")
#: Simulation engines: ``native`` (in-process, the default) and ``cocotb``.
ENGINES = ("native", "cocotb")


class SimulatorError(HostError):
    """The simulator could not be built or started, died, or answered a request with an error."""


@contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``directory`` (created if needed).

    pytest-xdist workers may build the same design at once; one builds, the others wait
    and then find the build up to date.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".build.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def top_for_config(config: Any, root: Path | None = None) -> tuple[Path, str, Path, float]:
    """``(verilog, toplevel, build_dir, clock_mhz)`` of the accelerator top for ``config``."""
    from hw.accel.config import get_config

    from ..rtl import write_top

    cfg = get_config(config)
    build_dir = Path(root if root is not None else DEFAULT_ROOT) / cfg.name
    with locked(build_dir):
        verilog, toplevel = write_top(cfg, build_dir)
    return verilog, toplevel, build_dir, cfg.clock_mhz
