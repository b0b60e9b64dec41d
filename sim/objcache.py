"""Compiler wrapper that caches the Verilator and cocotb run-time objects between builds.

Verilator's generated makefile accepts a command prefix ``OBJCACHE`` for every
compile (``$(OBJCACHE) $(CXX) ...``). Each simulator build recompiles the same
design-independent run-time library (``verilated.cpp``, ``verilated_vpi.cpp``,
cocotb's ``verilator.cpp``, ...): about 20 s of CPU per build, against a few
seconds for a small design. This wrapper serves those objects from a cache keyed
by the exact compile command, the compiler binary and the source's content, so
only the first build per flag set pays for them. Design sources (those inside the
build directory) always compile normally.

It runs as a script (``python objcache.py CXX ARGS...``), imports nothing from the
project and uses only the standard library, so its start-up stays cheap.
The cache directory comes from the ``SIM_OBJCACHE_DIR`` environment variable; when
it is unset the wrapper simply runs the compiler.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["CACHE_DIR_ENV", "cache_key", "main"]

#: Environment variable naming the cache directory.
CACHE_DIR_ENV = "SIM_OBJCACHE_DIR"


def _parse(args: list[str]) -> tuple[Path | None, Path | None]:
    """``(source, output)`` of a single-source ``-c`` compile, else ``(None, None)``."""
    if "-c" not in args:
        return None, None
    sources = [a for a in args if a.endswith((".cpp", ".cc")) and not a.startswith("-")]
    output = None
    for flag, value in zip(args, args[1:], strict=False):
        if flag == "-o":
            output = Path(value)
    if len(sources) != 1:
        return None, None
    source = Path(sources[0])
    if output is None:
        output = Path(source.stem + ".o")
    return source, output


def cache_key(args: list[str], source: Path, output: Path) -> str:
    """Hash of everything that decides the object: command, compiler binary, source text.

    The output name is replaced by a placeholder so the same compile in another
    build directory hits the same entry.
    """
    digest = hashlib.sha256()
    compiler = shutil.which(args[0]) or args[0]
    stat = os.stat(compiler)
    digest.update(f"{os.path.realpath(compiler)}:{stat.st_size}:{stat.st_mtime_ns}\0".encode())
    for arg in args[1:]:
        digest.update(("<out>" if arg == str(output) else arg).encode() + b"\0")
    digest.update(source.read_bytes())
    return digest.hexdigest()[:32]


def _is_runtime_source(source: Path) -> bool:
    # Design files live in the build (current) directory; everything compiled from
    # elsewhere is the simulator's or cocotb's fixed run-time library.
    try:
        source.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return source.is_absolute()
    return False


def main(argv: list[str]) -> int:
    """Run ``argv`` (a compiler command), serving run-time objects from the cache."""
    if not argv:
        print("usage: objcache.py CXX [ARGS...]", file=sys.stderr)
        return 2
    cache_dir = os.environ.get(CACHE_DIR_ENV)
    source, output = _parse(argv)
    if not cache_dir or source is None or output is None or not _is_runtime_source(source):
        return subprocess.call(argv)

    entry = Path(cache_dir) / cache_key(argv, source, output)
    dep = output.with_suffix(".d")
    if entry.with_suffix(".o").is_file():
        shutil.copyfile(entry.with_suffix(".o"), output)
        if entry.with_suffix(".d").is_file() and "-MMD" in argv:
            shutil.copyfile(entry.with_suffix(".d"), dep)
        return 0

    status = subprocess.call(argv)
    if status == 0 and output.is_file():
        entry.parent.mkdir(parents=True, exist_ok=True)
        # Write under a temporary name and rename: parallel builds (pytest-xdist)
        # may fill the same entry at once, and a reader must never see half a file.
        for produced, suffix in ((output, ".o"), (dep, ".d")):
            if produced.is_file():
                fd, tmp = tempfile.mkstemp(dir=entry.parent, prefix=entry.name, suffix=".tmp")
                os.close(fd)
                shutil.copyfile(produced, tmp)
                os.replace(tmp, entry.with_suffix(suffix))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
