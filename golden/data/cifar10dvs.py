"""CIFAR10-DVS (Li et al. 2017) from the original AEDAT 2.0 files or an AEDAT 4.0 copy.

Layout: one folder per class holding ``cifar10_<class>_<i>.aedat`` (AEDAT 2.0, the
original release) or ``cifar10_<class>_<i>.aedat4`` (a converted AEDAT 4.0 copy).
There is no official split; as usual, the first 90% of every class (by ``i``) train
and the last 10% test (900/100 per class on the real set).

AEDAT 2.0 events get SpikingJelly's orientation fix
(:func:`golden.data.events.cifar10dvs_flip`). Whether a converted AEDAT 4.0 copy
already carries that fix depends on who converted it (*unverified*), so for
``.aedat4`` files the fix is off unless ``flip=True`` is passed.

Samples are framed to ``[T, 2, size, size]`` counts over the whole recording and
cached under ``root/cache_cifar10dvs-<format>_T<T>_<split_by>_<size>x<size>/``.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from .aedat import read_aedat2
from .aedat4 import read_aedat4
from .cache import CachedEventFrames, Recording, Sample, cache_dir_name, register_event_dataset
from .errors import DatasetLayoutError
from .events import cifar10dvs_flip
from .frames import rescale_events
from .layout import resolve_base

__all__ = ["CLASSES", "CIFAR10DVS", "LAYOUT", "cifar10dvs_recordings", "read_cifar10dvs_events"]

NAME = "cifar10-dvs"
SENSOR = 128
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SUFFIXES = {"aedat2": ".aedat", "aedat4": ".aedat4"}
Transform = Callable[[torch.Tensor], torch.Tensor]
LAYOUT = """\
<root>/
  airplane/cifar10_airplane_0.aedat ... cifar10_airplane_999.aedat   (AEDAT 2.0)
           (or cifar10_airplane_0.aedat4 ...                          AEDAT 4.0 copy)
  automobile/ bird/ cat/ deer/ dog/ frog/ horse/ ship/ truck/        (same pattern)
  cache_cifar10dvs-aedat2-flip_T4_number_128x128/                    (written by this loader)"""


def _is_base(folder: Path) -> bool:
    return all((folder / cls).is_dir() for cls in CLASSES)


def _index(path: Path, cls: str) -> int | None:
    match = re.fullmatch(rf"cifar10_{cls}_(\d+)", path.stem)
    return int(match.group(1)) if match else None


def detect_format(base: Path) -> str:
    """``"aedat2"`` if the first class folder holds ``.aedat`` files, else ``"aedat4"``."""
    folder = base / CLASSES[0]
    for fmt, suffix in SUFFIXES.items():
        if any(p.suffix == suffix for p in folder.iterdir()):
            return fmt
    raise DatasetLayoutError(NAME, base, f"no .aedat or .aedat4 files in {CLASSES[0]}/", LAYOUT)


def cifar10dvs_recordings(base: Path, split: str, *, fmt: str, train_fraction: float) -> list[Recording]:
    """Per class, files sorted by index; the first ``int(n * train_fraction)`` train."""
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must lie in (0, 1), not {train_fraction!r}")
    recordings = []
    for label, cls in enumerate(CLASSES):
        indexed = sorted(
            (i, p) for p in (base / cls).glob(f"*{SUFFIXES[fmt]}") if (i := _index(p, cls)) is not None
        )
        if not indexed:
            raise DatasetLayoutError(
                NAME, base, f"no cifar10_{cls}_<i>{SUFFIXES[fmt]} files in {cls}/", LAYOUT
            )
        n_train = int(len(indexed) * train_fraction)
        chosen = indexed[:n_train] if split == "train" else indexed[n_train:]
        for _, path in chosen:
            recordings.append(Recording(path=path, samples=(Sample(key=f"{cls}_{path.stem}", label=label),)))
    return recordings


def read_cifar10dvs_events(path: Path, *, fmt: str, flip: bool, size: int) -> np.ndarray:
    """Events of one recording, orientation-fixed if ``flip``, binned to ``size x size``."""
    events = read_aedat2(path) if fmt == "aedat2" else read_aedat4(path)
    if flip:
        events = cifar10dvs_flip(events, size=SENSOR)
    return rescale_events(events, sensor=(SENSOR, SENSOR), size=(size, size))


class CIFAR10DVS(CachedEventFrames):
    """CIFAR10-DVS samples ``(x [T, 2, size, size] float32 counts, label 0..9)``.

    Parameters
    ----------
    root:
        Folder holding the ten class folders; see :data:`LAYOUT`.
    split:
        ``"train"`` or ``"test"``.
    timesteps:
        Frames per sample.
    split_by:
        ``"number"`` (the paper's setting), ``"time"`` or ``"time-spikingjelly"``
        (:data:`golden.data.frames.SPLIT_MODES`).
    size:
        Frame side; coordinates are binned down from 128 when smaller (e.g. 48).
    format:
        ``"aedat2"``, ``"aedat4"`` or ``"auto"`` (whichever the class folders hold).
    flip:
        Apply the orientation fix; ``None`` = on for AEDAT 2.0, off for AEDAT 4.0.
    train_fraction:
        Leading share of every class used for training.
    transform:
        Optional tensor transform applied to every item.
    cache_dir:
        Where framed samples go; default ``root/cache_cifar10dvs-...``.
    workers, progress:
        See :class:`~golden.data.cache.CachedEventFrames`.
    """

    classes = CLASSES

    def __init__(
        self,
        *,
        root: str | os.PathLike[str],
        split: str,
        timesteps: int,
        split_by: str = "number",
        size: int = SENSOR,
        format: str = "auto",
        flip: bool | None = None,
        train_fraction: float = 0.9,
        transform: Transform | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        workers: int = 0,
        progress: bool = True,
    ) -> None:
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', not {split!r}")
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= SENSOR:
            raise ValueError(f"size must be an integer in 1..{SENSOR}, not {size!r}")
        if format not in ("auto", *SUFFIXES):
            raise ValueError(f"format must be 'auto', 'aedat2' or 'aedat4', not {format!r}")
        base = resolve_base(root, dataset=NAME, subdir="CIFAR10DVS", is_base=_is_base, layout=LAYOUT)
        fmt = detect_format(base) if format == "auto" else format
        flip = (fmt == "aedat2") if flip is None else bool(flip)
        tag = f"cifar10dvs-{fmt}" + ("-flip" if flip else "")
        name = cache_dir_name(timesteps=timesteps, split_by=split_by, height=size, width=size, tag=tag)
        self.format = fmt
        super().__init__(
            recordings=cifar10dvs_recordings(base, split, fmt=fmt, train_fraction=train_fraction),
            cache_dir=Path(cache_dir) if cache_dir is not None else Path(root) / name,
            read_events=functools.partial(read_cifar10dvs_events, fmt=fmt, flip=flip, size=size),
            timesteps=timesteps,
            split_by=split_by,
            height=size,
            width=size,
            transform=transform,
            workers=workers,
            progress=progress,
            desc=f"{NAME} {split}: framing",
        )


register_event_dataset(CIFAR10DVS, name=NAME, classes=CLASSES, sensor=SENSOR, default_timesteps=4)
