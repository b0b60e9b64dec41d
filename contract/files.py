"""Atomic file writes: a reader sees the old file or the whole new one, never half of one.

Exports, checkpoints, caches and generated Verilog are written by parallel processes
(pytest-xdist workers, data loader workers, a training run being watched) and read while
they may be rewritten. Every writer therefore writes a temporary file in the target's
folder (so the rename stays on one file system) and renames it over the target with
:func:`os.replace`, which is atomic on POSIX and Windows.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "atomic_write"]


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path next to ``path`` that replaces ``path`` when the block ends cleanly.

    For writers that need a file name or handle of their own (``torch.save``,
    ``np.savez``, :mod:`csv`): the block creates and fills the yielded path. The folder
    is created if needed; on an exception the temporary file is removed and ``path``
    is left as it was.

    Parameters
    ----------
    path:
        The file to (re)place.

    Yields
    ------
    Path
        A hidden, not yet existing file name in ``path``'s folder, unique to this call.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A random part as well as the pid: threads of one process may write the same target.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: str | os.PathLike[str], data: bytes | str) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` atomically; return ``path`` as a :class:`Path`."""
    with atomic_path(path) as tmp:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)
    return Path(path)
