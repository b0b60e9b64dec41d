"""Locating a dataset's files under a user-given root, with a helpful error if absent."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from .errors import DatasetLayoutError

__all__ = ["resolve_base"]


def resolve_base(
    root: str | os.PathLike[str] | None,
    *,
    dataset: str,
    subdir: str,
    is_base: Callable[[Path], bool],
    layout: str,
) -> Path:
    """Return the folder holding a dataset's files: ``root/subdir`` or ``root`` itself.

    Parameters
    ----------
    root:
        Directory given by the user.
    dataset:
        Dataset name for the error message.
    subdir:
        The folder name of the original release (e.g. ``DvsGesture``).
    is_base:
        Test that recognises the folder (e.g. "holds ``trials_to_train.txt``").
    layout:
        Expected layout, shown when nothing matches.

    Raises
    ------
    DatasetLayoutError
        When neither ``root/subdir`` nor ``root`` passes ``is_base``.
    """
    if root is None:
        raise DatasetLayoutError(dataset, ".", "no root directory given", layout)
    root = Path(root)
    for candidate in (root / subdir, root):
        if candidate.is_dir() and is_base(candidate):
            return candidate
    problem = "directory does not exist" if not root.exists() else "dataset files not found"
    raise DatasetLayoutError(dataset, root, problem, layout)
