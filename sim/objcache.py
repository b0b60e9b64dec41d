"""Compiler wrapper that caches Verilator's design-independent run-time objects between builds.

Verilator's generated makefile accepts a command prefix ``OBJCACHE`` for every
compile (``$(OBJCACHE) $(CXX) ...``). Each simulator build recompiles the same
run-time library (``verilated.cpp``, ``verilated_vpi.cpp``, ...): about 20 s of CPU per
build, against a few seconds for a small design. This wrapper serves those objects
from a cache, in the manner of ccache's direct mode:

* only a single-source compile of a file outside the build directory is a
  candidate, and it is stored only if the dependency file written by ``-MMD`` lists
  no file inside the build directory. cocotb's ``verilator.cpp`` includes the
  design's ``Vtop.h`` (whose class size depends on the design's ports), so it is
  never cached; the ``verilated*.cpp`` library is;
* the key is the exact command (output name aside), the compiler binary and the
  source text; an entry also records the content hash of every header it was built
  from, and is used only while all of them are unchanged.

It runs as a script (``python objcache.py CXX ARGS...``), imports nothing from the
project and uses only the standard library, so its start-up stays cheap.
The cache directory comes from the ``SIM_OBJCACHE_DIR`` environment variable; when
it is unset the wrapper simply runs the compiler.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["CACHE_DIR_ENV", "cache_key", "dependencies", "main"]

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


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cache_key(args: list[str], source: Path, output: Path) -> str:
    """Hash of the command, the compiler binary and the source text.

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


def dependencies(dep_file: Path) -> list[Path]:
    """Prerequisites listed in a make dependency file written by ``-MMD`` (target excluded)."""
    words = dep_file.read_text().replace("\\\n", " ").split()
    return [Path(word) for word in words if not word.endswith(":")]


def _inside(path: Path, directory: Path) -> bool:
    try:
        (directory / path).resolve().relative_to(directory.resolve())
    except ValueError:
        return False
    return True


def _write_atomic(target: Path, data: bytes) -> None:
    # The write-then-rename of contract.files.atomic_write, kept as a copy: make runs this
    # file as a bare script, where the project's packages are not on the path.
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _store(entry: Path, output: Path, deps: list[Path]) -> None:
    # Write under temporary names and rename: parallel builds (pytest-xdist) may fill
    # the same entry at once, and a reader must never see half a file. The object is
    # renamed last, so an entry that has an object has its dependency record.
    entry.parent.mkdir(parents=True, exist_ok=True)
    record = json.dumps([[str(dep.resolve()), _file_hash(dep)] for dep in deps])
    _write_atomic(entry.with_suffix(".deps"), record.encode())
    _write_atomic(entry.with_suffix(".o"), output.read_bytes())


def _valid(entry: Path) -> bool:
    try:
        record = json.loads(entry.with_suffix(".deps").read_text())
        return entry.with_suffix(".o").is_file() and all(_file_hash(Path(p)) == h for p, h in record)
    except (OSError, ValueError):
        return False


def main(argv: list[str]) -> int:
    """Run ``argv`` (a compiler command), serving run-time objects from the cache."""
    if not argv:
        print("usage: objcache.py CXX [ARGS...]", file=sys.stderr)
        return 2
    cache_dir = os.environ.get(CACHE_DIR_ENV)
    source, output = _parse(argv)
    build_dir = Path.cwd()
    if not cache_dir or source is None or output is None or _inside(source, build_dir) or "-MMD" not in argv:
        return subprocess.call(argv)

    entry = Path(cache_dir) / cache_key(argv, source, output)
    if _valid(entry):
        shutil.copyfile(entry.with_suffix(".o"), output)
        return 0
    status = subprocess.call(argv)
    dep_file = output.with_suffix(".d")
    if status == 0 and output.is_file() and dep_file.is_file():
        deps = dependencies(dep_file)
        if not any(_inside(dep, build_dir) for dep in deps):
            _store(entry, output, deps)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
