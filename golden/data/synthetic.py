"""Synthetic event files in the real DVS128 Gesture and CIFAR10-DVS layouts.

``python -m golden.data.synthetic --format gesture|cifar10dvs|cifar10dvs-aedat4
--out DIR`` writes valid AEDAT 3.1 / 2.0 / 4.0 files (moving shapes from
:mod:`golden.data.motion`, one motion pattern per class) in the original directory
layouts, so the real readers and dataset classes run end to end without the real
data. The in-memory ``synthetic-events`` dataset lives in
:mod:`golden.data.synthetic_events` (this module is kept out of the package import,
so that ``python -m`` runs it cleanly).

Deterministic given ``seed``: gesture trial ``j`` draws from
``numpy.random.default_rng([seed, 2, j])``, CIFAR10-DVS sample ``i`` of class ``c``
from ``default_rng([seed, 3, c, i])``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .aedat4 import Compression
from .aedat_write import write_aedat2, write_aedat3, write_aedat4
from .cache import Sample
from .cifar10dvs import CLASSES as CIFAR10DVS_CLASSES
from .events import cifar10dvs_flip, make_events
from .gesture import CLASSES as GESTURE_CLASSES
from .motion import PATTERNS, check_count, check_size, motion_events

__all__ = [
    "FORMATS",
    "WrittenRecording",
    "main",
    "write_cifar10dvs_layout",
    "write_gesture_layout",
]

SENSOR = 128
FORMATS = ("gesture", "cifar10dvs", "cifar10dvs-aedat4")
LIGHTINGS = ("fluorescent", "fluorescent_led", "lab", "led", "natural")
_KIND_GESTURE, _KIND_CIFAR = 2, 3  # 0 and 1: the in-memory train/test splits
_NOISE_RATE_PER_S = 2000  # background events per second between gestures


@dataclass(frozen=True)
class WrittenRecording:
    """Ground truth of one generated file.

    Attributes
    ----------
    path:
        The file written.
    split:
        ``"train"`` or ``"test"`` under the dataset's convention.
    events:
        All events of the file as the dataset reader must return them (dataset
        coordinates, i.e. after the CIFAR10-DVS orientation fix).
    samples:
        The labelled samples the dataset must cut from it (same keys and windows).
    """

    path: Path
    split: str
    events: np.ndarray
    samples: tuple[Sample, ...]


def _centre(events: np.ndarray, size: int) -> np.ndarray:
    """Place a ``size x size`` scene in the middle of the 128x128 sensor."""
    offset = (SENSOR - size) // 2
    out = events.copy()
    out["x"] += offset
    out["y"] += offset
    return out


def _noise(rng: np.random.Generator, start: int, end: int) -> np.ndarray:
    n = (end - start) * _NOISE_RATE_PER_S // 1_000_000
    return make_events(
        rng.integers(start, end, n),
        rng.integers(0, SENSOR, n),
        rng.integers(0, SENSOR, n),
        rng.integers(0, 2, n),
    )


def _trial_splits(n_trials: int) -> list[str]:
    """Last ~20% of the trials (at least one) test, the rest train, like users 24-29."""
    n_test = max(1, round(0.2 * n_trials))
    return ["train"] * (n_trials - n_test) + ["test"] * n_test


def write_gesture_layout(
    out: str | os.PathLike[str], *, samples_per_class: int = 2, size: int = SENSOR, seed: int = 0
) -> list[WrittenRecording]:
    """Write a DVS128 Gesture tree ``out/DvsGesture/`` of synthetic AEDAT 3.1 trials.

    Every trial (``userNN_<lighting>.aedat``) performs each of the 11 gestures once,
    in a random order, separated by idle stretches of pure noise that the labels CSV
    leaves out; so ``samples_per_class`` trials give that many samples per class.
    """
    n_trials = check_count("samples_per_class", samples_per_class, 2)
    size = check_size(size)
    base = Path(out) / "DvsGesture"
    base.mkdir(parents=True, exist_ok=True)
    written, lists = [], {"train": [], "test": []}
    for j, split in enumerate(_trial_splits(n_trials)):
        rng = np.random.default_rng([seed, _KIND_GESTURE, j])
        stem = f"user{j + 1:02d}_{LIGHTINGS[j % len(LIGHTINGS)]}"
        parts, rows = [], []
        t = int(rng.integers(200_000, 400_000))
        parts.append(_noise(rng, 0, t))
        for cls in rng.permutation(len(GESTURE_CLASSES)):
            duration = int(rng.integers(600_000, 900_000))
            parts.append(
                _centre(
                    motion_events(PATTERNS[cls], size=size, rng=rng, t_start=t, duration_us=duration), size
                )
            )
            rows.append((int(cls), t, t + duration))
            gap = int(rng.integers(150_000, 300_000))
            parts.append(_noise(rng, t + duration, t + duration + gap))
            t += duration + gap
        events = np.concatenate(parts)
        events = events[np.argsort(events["t"], kind="stable")]
        # A few events with a clear valid bit: the reader must drop them.
        valid = rng.random(len(events)) > 0.001
        path = base / f"{stem}.aedat"
        write_aedat3(path, events, valid=valid)
        csv = ["class,startTime_usec,endTime_usec"] + [f"{c + 1},{a},{b}" for c, a, b in rows]
        (base / f"{stem}_labels.csv").write_text("\r\n".join(csv) + "\r\n")
        lists[split].append(path.name)
        samples = tuple(
            Sample(key=f"{stem}_{i:02d}", label=c, window=(a, b)) for i, (c, a, b) in enumerate(rows)
        )
        written.append(WrittenRecording(path=path, split=split, events=events[valid], samples=samples))
    for split, names in lists.items():
        (base / f"trials_to_{split}.txt").write_text("".join(f"{n}\n" for n in names))
    return written


def write_cifar10dvs_layout(
    out: str | os.PathLike[str],
    *,
    samples_per_class: int = 10,
    size: int = SENSOR,
    seed: int = 0,
    aedat4: bool = False,
    compression: Compression | str = Compression.LZ4,
    train_fraction: float = 0.9,
) -> list[WrittenRecording]:
    """Write a CIFAR10-DVS tree ``out/<class>/cifar10_<class>_<i>.aedat[4]``.

    AEDAT 2.0 files store the events orientation-flipped, so that the reader's fix
    (:func:`~golden.data.events.cifar10dvs_flip`) restores the generated scene; AEDAT
    4.0 files store them as generated. Classes ``airplane..truck`` get motion patterns
    ``0..9``.
    """
    n = check_count("samples_per_class", samples_per_class, 1)
    size = check_size(size)
    n_train = int(n * train_fraction)
    written = []
    for label, cls in enumerate(CIFAR10DVS_CLASSES):
        folder = Path(out) / cls
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            rng = np.random.default_rng([seed, _KIND_CIFAR, label, i])
            t0 = int(rng.integers(0, 50_000))
            events = motion_events(
                PATTERNS[label],
                size=size,
                rng=rng,
                t_start=t0,
                duration_us=int(rng.integers(200_000, 400_000)),
            )
            events = _centre(events, size)
            stem = f"cifar10_{cls}_{i}"
            if aedat4:
                path = folder / f"{stem}.aedat4"
                write_aedat4(path, events, compression=compression)
            else:
                path = folder / f"{stem}.aedat"
                write_aedat2(path, cifar10dvs_flip(events, size=SENSOR))
            sample = Sample(key=f"{cls}_{stem}", label=label)
            split = "train" if i < n_train else "test"
            written.append(WrittenRecording(path=path, split=split, events=events, samples=(sample,)))
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write synthetic event files in a real dataset layout."""
    parser = argparse.ArgumentParser(
        prog="python -m golden.data.synthetic",
        description="Write synthetic DVS recordings in the DVS128 Gesture or CIFAR10-DVS layout.",
    )
    parser.add_argument("--format", required=True, choices=FORMATS, help="layout and file format")
    parser.add_argument("--out", required=True, type=Path, help="dataset root to create")
    parser.add_argument(
        "--samples-per-class", type=int, default=None, help="default: gesture 4, cifar10dvs 10"
    )
    parser.add_argument("--size", type=int, default=SENSOR, help="scene side, centred on the 128x128 sensor")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--compression", default="lz4", choices=[c.name.lower() for c in Compression], help="AEDAT 4.0 only"
    )
    args = parser.parse_args(argv)
    if args.format == "gesture":
        per_class = args.samples_per_class or 4
        written = write_gesture_layout(args.out, samples_per_class=per_class, size=args.size, seed=args.seed)
    else:
        per_class = args.samples_per_class or 10
        written = write_cifar10dvs_layout(
            args.out,
            samples_per_class=per_class,
            size=args.size,
            seed=args.seed,
            aedat4=args.format == "cifar10dvs-aedat4",
            compression=args.compression,
        )
    n_samples = sum(len(w.samples) for w in written)
    n_events = sum(len(w.events) for w in written)
    splits = {s: sum(len(w.samples) for w in written if w.split == s) for s in ("train", "test")}
    print(
        f"wrote {len(written)} {args.format} files ({n_samples} samples: {splits['train']} train, "
        f"{splits['test']} test; {n_events} events) under {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
