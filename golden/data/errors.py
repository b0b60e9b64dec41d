"""Typed errors of the data layer: bad event or label files, missing dataset layouts."""

from __future__ import annotations

import os

__all__ = ["AedatFormatError", "DatasetLayoutError", "LabelFileError"]


class AedatFormatError(ValueError):
    """An event file is corrupt, truncated or not in the expected AEDAT version.

    Attributes
    ----------
    path:
        The offending file (as given).
    offset:
        Byte offset in the file where decoding failed.
    reason:
        What was wrong there.
    """

    def __init__(self, path: str | os.PathLike[str], offset: int, reason: str) -> None:
        self.path = os.fspath(path)
        self.offset = int(offset)
        self.reason = reason
        super().__init__(f"{self.path}: byte offset {self.offset}: {reason}")


class DatasetLayoutError(FileNotFoundError):
    """A dataset root does not hold the expected files; the message shows the layout.

    Attributes
    ----------
    root:
        The directory that was searched.
    layout:
        The expected directory layout, as an indented text tree.
    """

    def __init__(self, dataset: str, root: str | os.PathLike[str], problem: str, layout: str) -> None:
        self.root = os.fspath(root)
        self.layout = layout
        super().__init__(f"{dataset}: {problem} under {self.root!r}. Expected layout:\n{layout}")


class LabelFileError(ValueError):
    """A label or trial-list file of a dataset is malformed.

    Attributes
    ----------
    path:
        The offending file.
    line:
        1-based line number of the problem.
    """

    def __init__(self, path: str | os.PathLike[str], line: int, reason: str) -> None:
        self.path = os.fspath(path)
        self.line = int(line)
        super().__init__(f"{self.path}: line {self.line}: {reason}")
