"""The in-memory ``synthetic-events`` dataset: moving shapes framed to event counts.

``build_dataset("synthetic-events", None, split, timesteps=T, size=32)`` gives frames
``[T, 2, size, size]`` generated in memory (no files), small enough to train a
DVS-shaped model on a CPU in about a minute. Classes are the motion patterns of
:mod:`golden.data.motion`; several differ only by the direction of motion.

Deterministic given ``seed``: sample ``i`` of class ``c`` draws from
``numpy.random.default_rng([seed, s, c, i])`` with ``s`` = 0 (train) or 1 (test), so
the splits never share a draw.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from .frames import events_to_frames
from .motion import PATTERNS, check_count, check_size, motion_events
from .registry import DatasetInfo, register_dataset
from .transforms import resolve_transform

__all__ = ["SyntheticEvents"]

NAME = "synthetic-events"
_KIND_TRAIN, _KIND_TEST = 0, 1
Transform = Callable[[torch.Tensor], torch.Tensor]


class SyntheticEvents(Dataset):
    """In-memory synthetic event frames ``(x [T, 2, size, size] float32 counts, label)``.

    Parameters
    ----------
    split:
        ``"train"`` or ``"test"`` (disjoint random draws).
    timesteps:
        Frames per sample.
    size:
        Sensor side (e.g. 32 or 48).
    num_classes:
        Motion patterns used, the first ``num_classes`` of
        :data:`~golden.data.motion.PATTERNS` (at most 11).
    samples_per_class:
        Samples per class; default 100 for train, 20 for test.
    split_by:
        ``"number"`` or ``"time"`` framing.
    seed:
        Seed of the whole dataset.
    noise:
        Noise events as a fraction of the signal events.
    transform:
        Optional tensor transform applied to every item.
    """

    def __init__(
        self,
        *,
        split: str,
        timesteps: int,
        size: int = 32,
        num_classes: int = 10,
        samples_per_class: int | None = None,
        split_by: str = "number",
        seed: int = 0,
        noise: float = 0.05,
        transform: Transform | None = None,
    ) -> None:
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', not {split!r}")
        size = check_size(size)
        if (
            isinstance(num_classes, bool)
            or not isinstance(num_classes, int)
            or not 2 <= num_classes <= len(PATTERNS)
        ):
            raise ValueError(f"num_classes must be an integer in 2..{len(PATTERNS)}, not {num_classes!r}")
        per_class = samples_per_class if samples_per_class is not None else (100 if split == "train" else 20)
        per_class = check_count("samples_per_class", per_class, 1)
        kind = _KIND_TRAIN if split == "train" else _KIND_TEST
        frames, labels = [], []
        for label in range(num_classes):
            for i in range(per_class):
                rng = np.random.default_rng([seed, kind, label, i])
                events = motion_events(PATTERNS[label], size=size, rng=rng, steps=32, noise=noise)
                frames.append(
                    events_to_frames(events, timesteps=timesteps, split_by=split_by, height=size, width=size)
                )
                labels.append(label)
        stacked = np.stack(frames)
        # Counts per pixel and frame are tiny; uint8 keeps the whole set small in memory.
        self.frames = torch.from_numpy(stacked.astype(np.uint8 if stacked.max() <= 255 else np.int32))
        self.targets = labels
        self.classes = list(PATTERNS[:num_classes])
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        x = self.frames[index].to(torch.float32)
        if self.transform is not None:
            x = self.transform(x)
        return x, self.targets[index]


def _info(*, size: int = 32, num_classes: int = 10, **_: object) -> DatasetInfo:
    return DatasetInfo(
        name=NAME,
        num_classes=num_classes,
        shape=(2, size, size),
        event=True,
        integer_input=True,
        input_max=None,
        class_names=PATTERNS[:num_classes],
        needs_root=False,
        default_timesteps=4,
    )


def _build(
    root: str | os.PathLike[str] | None,
    split: str,
    *,
    timesteps: int,
    augment: bool = False,
    transform: Transform | None = None,
    **kw: object,
) -> SyntheticEvents:
    del root  # generated in memory
    transform = resolve_transform(NAME, split, augment=augment, transform=transform)
    return SyntheticEvents(split=split, timesteps=timesteps, transform=transform, **kw)  # type: ignore[arg-type]


register_dataset(NAME, info=_info, build=_build)
