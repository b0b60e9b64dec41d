"""The dataset registry: each dataset module registers a builder and a :class:`DatasetInfo` here."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch.utils.data import Dataset

__all__ = [
    "DatasetInfo",
    "build_dataset",
    "dataset_info",
    "list_datasets",
    "register_dataset",
]

PathLike = str | os.PathLike[str]
Builder = Callable[..., Dataset]

SPLITS = ("train", "test")


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a dataset, known without touching its files.

    Attributes
    ----------
    name:
        Registry name (``"digits"``, ``"dvs128-gesture"``, ...).
    num_classes:
        Number of classes; labels are ``0 .. num_classes - 1``.
    shape:
        Shape of one sample's ``x`` without the time axis: ``(C, H, W)``.
    event:
        ``True`` when ``x`` is ``[T, C, H, W]`` event counts (frames over time);
        ``False`` for static images (``[C, H, W]``, repeated over time by the model).
    integer_input:
        ``True`` when ``x`` holds non-negative integers (pixels or event counts),
        as the hardware presets require; ``False`` for normalized float images.
    input_max:
        Largest value of an integer input when it is bounded by the format (255 for
        8-bit pixels); ``None`` for event counts (unbounded; the hardware model clips
        them to ``2**input_bits - 1``) and for float images.
    class_names:
        Human-readable class names in label order; empty when they come from the
        files (ImageNet folder names, CIFAR-100): see the dataset's ``classes``.
    needs_root:
        ``True`` when the dataset reads files under ``root``.
    default_timesteps:
        ``T`` the paper's recipe (or, for digits, the ``hw-tiny`` preset) uses with
        this data; static images are repeated ``T`` times by the model.
    """

    name: str
    num_classes: int
    shape: tuple[int, int, int]
    event: bool
    integer_input: bool
    input_max: int | None
    class_names: tuple[str, ...]
    needs_root: bool
    default_timesteps: int

    def __post_init__(self) -> None:
        if self.class_names and len(self.class_names) != self.num_classes:
            raise ValueError(
                f"dataset {self.name!r}: {len(self.class_names)} class names for {self.num_classes} classes"
            )


@dataclass(frozen=True)
class _Entry:
    info: Callable[..., DatasetInfo]
    build: Builder


_REGISTRY: dict[str, _Entry] = {}


def register_dataset(name: str, *, info: Callable[..., DatasetInfo], build: Builder) -> None:
    """Register dataset ``name``.

    Parameters
    ----------
    name:
        Registry name.
    info:
        Callable returning the :class:`DatasetInfo`; it receives the same keyword
        options as ``build`` that change the sample shape (e.g. ``size``) and must
        ignore the others.
    build:
        ``build(root, split, *, timesteps, **kw) -> Dataset``.
    """
    if name in _REGISTRY:
        raise ValueError(f"dataset {name!r} is registered twice")
    _REGISTRY[name] = _Entry(info=info, build=build)


def list_datasets() -> list[str]:
    """Names of all registered datasets, sorted."""
    return sorted(_REGISTRY)


def _entry(name: str) -> _Entry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known datasets: {', '.join(list_datasets())}") from None


def dataset_info(name: str, **kw: Any) -> DatasetInfo:
    """Facts about dataset ``name`` (classes, sample shape, input kind).

    The keyword options of :func:`build_dataset` may be passed; those that change the
    sample shape or class count (``size``, ``img_size``, ``num_classes``) are used,
    the others ignored.
    """
    return _entry(name).info(**kw)


def build_dataset(name: str, root: PathLike | None, split: str, *, timesteps: int, **kw: Any) -> Dataset:
    """Build split ``split`` (``"train"`` or ``"test"``) of dataset ``name``.

    Parameters
    ----------
    name:
        One of :func:`list_datasets`.
    root:
        Directory holding the dataset's files (see each module for the expected
        layout); ignored by ``digits`` and the in-memory ``synthetic-events``.
    split:
        ``"train"`` or ``"test"`` (``"test"`` is ImageNet's ``val`` folder).
    timesteps:
        Number of frames ``T`` of event datasets; static datasets accept and ignore it
        (the model repeats static inputs ``T`` times).
    **kw:
        Dataset-specific options (``split_by``, ``augment``, ``size``, ...).

    Returns
    -------
    torch.utils.data.Dataset
        Map-style dataset of ``(x, label)``.
    """
    entry = _entry(name)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    if isinstance(timesteps, bool) or not isinstance(timesteps, int) or timesteps < 1:
        raise ValueError(f"timesteps must be a positive integer, not {timesteps!r}")
    if entry.info(**_shape_kw(kw)).needs_root and root is None:
        raise ValueError(f"dataset {name!r} reads files: pass root= (the directory that holds them)")
    return entry.build(root, split, timesteps=timesteps, **kw)


_SHAPE_KEYS = ("size", "img_size")


def _shape_kw(kw: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kw.items() if k in _SHAPE_KEYS}


# Dataset modules register themselves on import (kept last: they import the names above).
