"""On-disk cache of framed event samples and the dataset class that serves them.

Reading and integrating events is the slow part of an event dataset (tens of MB of
AEDAT per recording), so every sample is framed once and stored as
``<cache_dir>/<key>.npz`` (array ``frames``, ``uint16`` counts, compressed). The
cache directory name carries every parameter that changes the frames (``T``,
``split_by``, frame size), so different settings never mix; files are written
atomically (temporary name, then rename), so an interrupted build leaves only
whole samples and the next build frames just the missing ones.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from contract.files import atomic_path

from .frames import events_to_frames

__all__ = ["CachedEventFrames", "Recording", "Sample", "cache_dir_name", "register_event_dataset"]

_STORE_DTYPE = np.uint16


@dataclass(frozen=True)
class Sample:
    """One labelled sample cut from a recording.

    Attributes
    ----------
    key:
        Unique file stem inside the cache directory.
    label:
        Class index.
    window:
        ``(start_us, end_us)``: keep events with ``start <= t < end``; ``None`` keeps
        the whole recording.
    """

    key: str
    label: int
    window: tuple[int, int] | None = None


@dataclass(frozen=True)
class Recording:
    """An event file and the samples cut from it."""

    path: Path
    samples: tuple[Sample, ...]


def cache_dir_name(*, timesteps: int, split_by: str, height: int, width: int, tag: str = "") -> str:
    """Directory name that identifies a frame setting, e.g. ``cache_T16_number_128x128``.

    ``tag`` distinguishes other choices that change the frames (source format, ...).
    """
    return f"cache_{tag + '_' if tag else ''}T{timesteps}_{split_by}_{height}x{width}"


@dataclass(frozen=True)
class _Framer:
    """Picklable job: read one recording, frame its samples, store them."""

    read_events: Callable[[Path], np.ndarray]
    directory: Path
    timesteps: int
    split_by: str
    height: int
    width: int

    def __call__(self, recording: Recording) -> int:
        events = self.read_events(recording.path)
        for sample in recording.samples:
            part = events
            if sample.window is not None:
                start, end = sample.window
                part = events[(events["t"] >= start) & (events["t"] < end)]
            frames = events_to_frames(
                part, timesteps=self.timesteps, split_by=self.split_by, height=self.height, width=self.width
            )
            if frames.max(initial=0) > np.iinfo(_STORE_DTYPE).max:
                raise OverflowError(f"{recording.path}: sample {sample.key} has a pixel count above 65535")
            _save_atomic(self.directory / f"{sample.key}.npz", frames.astype(_STORE_DTYPE))
        return len(recording.samples)


def _save_atomic(path: Path, frames: np.ndarray) -> None:
    # A handle, not a name: np.savez_compressed would append ".npz" to the temporary name.
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, frames=frames)


class CachedEventFrames(Dataset):
    """Framed event samples ``(x [T, 2, H, W] float32 counts, label)``, cached on disk.

    Missing samples are framed when the dataset is built (with a progress bar);
    afterwards items are read from the cache only.

    Parameters
    ----------
    recordings:
        Event files and the samples to cut from each.
    cache_dir:
        Directory of the ``.npz`` files (created if needed); name it with
        :func:`cache_dir_name` so settings never collide.
    read_events:
        Picklable ``path -> events`` function; it also applies any coordinate fix
        (orientation flip, rescaling) so frames come out at ``height x width``.
    timesteps, split_by, height, width:
        Frame setting (see :func:`golden.data.frames.events_to_frames`).
    transform:
        Optional ``x -> x`` applied to every item (augmentation).
    workers:
        Processes that frame recordings in parallel (0 = in this process).
    progress:
        Show a tqdm progress bar while framing.
    desc:
        Progress-bar label.
    """

    def __init__(
        self,
        *,
        recordings: Sequence[Recording],
        cache_dir: Path,
        read_events: Callable[[Path], np.ndarray],
        timesteps: int,
        split_by: str,
        height: int,
        width: int,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        workers: int = 0,
        progress: bool = True,
        desc: str = "framing events",
    ) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
            raise ValueError(f"workers must be a non-negative integer, not {workers!r}")
        self.cache_dir = Path(cache_dir)
        self.samples = [s for r in recordings for s in r.samples]
        keys = [s.key for s in self.samples]
        if len(set(keys)) != len(keys):
            raise ValueError("sample keys must be unique within a dataset")
        self.targets = [s.label for s in self.samples]
        self.transform = transform
        self.shape = (timesteps, 2, height, width)
        todo = [r for r in recordings if any(not self._path(s).exists() for s in r.samples)]
        if todo:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            framer = _Framer(read_events, self.cache_dir, timesteps, split_by, height, width)
            total = sum(len(r.samples) for r in todo)
            with tqdm(total=total, desc=desc, unit="sample", disable=not progress) as bar:
                if workers:
                    with ProcessPoolExecutor(max_workers=workers) as pool:
                        for done in pool.map(framer, todo):
                            bar.update(done)
                else:
                    for recording in todo:
                        bar.update(framer(recording))

    def _path(self, sample: Sample) -> Path:
        return self.cache_dir / f"{sample.key}.npz"

    def __len__(self) -> int:
        return len(self.samples)

    def frames(self, index: int) -> np.ndarray:
        """The stored integer counts of sample ``index`` (``uint16 [T, 2, H, W]``)."""
        with np.load(self._path(self.samples[index])) as npz:
            return npz["frames"]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        x = torch.from_numpy(self.frames(index).astype(np.float32))
        if self.transform is not None:
            x = self.transform(x)
        return x, self.samples[index].label


def register_event_dataset(
    cls: type[CachedEventFrames], *, name: str, classes: tuple[str, ...], sensor: int, default_timesteps: int
) -> None:
    """Register an event-camera dataset class under ``name``.

    Its items are ``[T, 2, size, size]`` integer event counts (``size`` defaults to the
    ``sensor`` resolution); ``augment`` selects the dataset's training transform
    (:func:`golden.data.transforms.resolve_transform`).
    """
    from .registry import DatasetInfo, register_dataset
    from .transforms import resolve_transform

    def info(*, size: int = sensor, **_: object) -> DatasetInfo:
        return DatasetInfo(
            name=name,
            num_classes=len(classes),
            shape=(2, size, size),
            event=True,
            integer_input=True,
            input_max=None,
            class_names=classes,
            needs_root=True,
            default_timesteps=default_timesteps,
        )

    def build(
        root: str | os.PathLike[str],
        split: str,
        *,
        timesteps: int,
        augment: bool = False,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        **kw: object,
    ) -> CachedEventFrames:
        transform = resolve_transform(name, split, augment=augment, transform=transform)
        return cls(root=root, split=split, timesteps=timesteps, transform=transform, **kw)  # type: ignore[call-arg]

    register_dataset(name, info=info, build=build)
