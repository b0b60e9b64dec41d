"""What the two simulation engines share: the build root, the build lock, the top for a configuration."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import HostError
from ..rtl import TopFiles, write_top

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
