"""DVS128 Gesture (IBM, CVPR 2017) from the original AEDAT 3.1 release.

Each trial (one subject under one lighting condition) is one ``.aedat`` recording
plus ``<trial>_labels.csv`` with rows ``class, startTime_usec, endTime_usec``. Every
CSV row becomes one sample: the events with ``start <= t < end``. Labels ``1..11``
become ``0..10``. The trial lists choose the split (users 01-23 train, 24-29 test),
which gives 1176 train and 288 test samples on the real release (SpikingJelly's
count).

Samples are framed to ``[T, 2, size, size]`` counts and cached under
``root/cache_gesture_T<T>_<split_by>_<size>x<size>/``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from .aedat import read_aedat3
from .cache import CachedEventFrames, Recording, Sample, cache_dir_name, register_event_dataset
from .errors import DatasetLayoutError, LabelFileError
from .frames import rescale_events
from .layout import resolve_base

__all__ = ["CLASSES", "DVS128Gesture", "LAYOUT", "gesture_recordings", "read_labels_csv", "read_trial_list"]

NAME = "dvs128-gesture"
SENSOR = 128
CLASSES = (
    "hand_clapping",
    "right_hand_wave",
    "left_hand_wave",
    "right_arm_clockwise",
    "right_arm_counter_clockwise",
    "left_arm_clockwise",
    "left_arm_counter_clockwise",
    "arm_roll",
    "air_drums",
    "air_guitar",
    "other_gestures",
)
Transform = Callable[[torch.Tensor], torch.Tensor]
TRIAL_LISTS = {"train": "trials_to_train.txt", "test": "trials_to_test.txt"}
LAYOUT = """\
<root>/
  DvsGesture/                        (or <root> is this folder itself)
    trials_to_train.txt              one trial file per line: user01_fluorescent.aedat ...
    trials_to_test.txt               (users 24..29)
    user01_fluorescent.aedat         AEDAT 3.1 recording of one trial
    user01_fluorescent_labels.csv    class,startTime_usec,endTime_usec  (class 1..11)
    ...
  cache_gesture_T16_number_128x128/  framed samples (written by this loader)"""


def read_trial_list(path: Path) -> list[str]:
    """Trial file names listed in ``path`` (blank lines skipped, ``.aedat`` added if missing)."""
    names = []
    for line in path.read_text().splitlines():
        name = line.strip()
        if name:
            names.append(name if name.endswith(".aedat") else f"{name}.aedat")
    return names


def read_labels_csv(path: Path) -> list[tuple[int, int, int]]:
    """Rows ``(label 0..10, start_us, end_us)`` of a trial's labels CSV.

    Raises
    ------
    LabelFileError
        A row that is not three integers, a class outside ``1..11`` or an empty window.
    """
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.strip()
        if not text or (number == 1 and text.lower().startswith("class")):
            continue
        fields = [f.strip() for f in text.split(",")]
        try:
            cls, start, end = (int(f) for f in fields)
        except ValueError:
            raise LabelFileError(
                path, number, f"expected 'class,startTime_usec,endTime_usec', got {text!r}"
            ) from None
        if not 1 <= cls <= len(CLASSES):
            raise LabelFileError(path, number, f"class {cls} outside 1..{len(CLASSES)}")
        if end <= start:
            raise LabelFileError(path, number, f"empty window: start {start} >= end {end}")
        rows.append((cls - 1, start, end))
    return rows


def _is_base(folder: Path) -> bool:
    return all((folder / name).is_file() for name in TRIAL_LISTS.values())


def gesture_recordings(base: Path, split: str) -> list[Recording]:
    """The trials of ``split`` under ``base`` (the ``DvsGesture`` folder) and their samples."""
    recordings = []
    for name in read_trial_list(base / TRIAL_LISTS[split]):
        aedat = base / name
        labels = base / f"{name[: -len('.aedat')]}_labels.csv"
        for needed in (aedat, labels):
            if not needed.is_file():
                raise DatasetLayoutError(
                    NAME, base, f"{needed.name} (listed in {TRIAL_LISTS[split]}) is missing", LAYOUT
                )
        stem = aedat.stem
        samples = tuple(
            Sample(key=f"{stem}_{i:02d}", label=label, window=(start, end))
            for i, (label, start, end) in enumerate(read_labels_csv(labels))
        )
        recordings.append(Recording(path=aedat, samples=samples))
    return recordings


def read_gesture_events(path: Path, *, size: int) -> np.ndarray:
    """Valid polarity events of one trial, rescaled from 128x128 to ``size x size``."""
    return rescale_events(read_aedat3(path), sensor=(SENSOR, SENSOR), size=(size, size))


class DVS128Gesture(CachedEventFrames):
    """DVS128 Gesture samples ``(x [T, 2, size, size] float32 counts, label 0..10)``.

    Parameters
    ----------
    root:
        Folder holding ``DvsGesture/`` (or that folder itself); see :data:`LAYOUT`.
    split:
        ``"train"`` or ``"test"``.
    timesteps:
        Frames per sample.
    split_by:
        ``"number"`` (the paper's setting), ``"time"`` or ``"time-spikingjelly"``
        (:data:`golden.data.frames.SPLIT_MODES`).
    size:
        Frame side; coordinates are binned down from 128 when smaller.
    transform:
        Optional tensor transform applied to every item.
    cache_dir:
        Where framed samples go; default ``root/cache_gesture_...``.
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
        transform: Transform | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        workers: int = 0,
        progress: bool = True,
    ) -> None:
        if split not in TRIAL_LISTS:
            raise ValueError(f"split must be 'train' or 'test', not {split!r}")
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= SENSOR:
            raise ValueError(f"size must be an integer in 1..{SENSOR}, not {size!r}")
        base = resolve_base(root, dataset=NAME, subdir="DvsGesture", is_base=_is_base, layout=LAYOUT)
        name = cache_dir_name(timesteps=timesteps, split_by=split_by, height=size, width=size, tag="gesture")
        super().__init__(
            recordings=gesture_recordings(base, split),
            cache_dir=Path(cache_dir) if cache_dir is not None else Path(root) / name,
            read_events=functools.partial(read_gesture_events, size=size),
            timesteps=timesteps,
            split_by=split_by,
            height=size,
            width=size,
            transform=transform,
            workers=workers,
            progress=progress,
            desc=f"{NAME} {split}: framing",
        )


register_event_dataset(DVS128Gesture, name=NAME, classes=CLASSES, sensor=SENSOR, default_timesteps=16)
