"""scikit-learn's 8x8 handwritten digits: the embedded, offline default dataset.

``sklearn.datasets.load_digits`` ships 1797 real 8x8 images (16 gray levels,
``0..16``) of 10 classes inside the package, so it needs no download. Pixels are
rescaled to the 8-bit range, ``round(p * 255 / 16)`` (round half to even, so
``p = 8`` gives 128), and kept as integer-valued float32: the hardware model
reads them as uint8 inputs.

The train/test split is stratified and deterministic: within every class the
images are permuted with ``numpy.random.default_rng(seed)`` (seeded per class
as ``[seed, class]``) and the first ``round(n_class * test_fraction)`` become test
images. With the defaults (``test_fraction=0.2``, ``seed=0``) that is 1438 train
and 359 test images.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from torch.utils.data import Dataset

from .registry import DatasetInfo, PathLike, register_dataset

__all__ = ["DigitsDataset", "digits_split", "load_digits_uint8"]

NAME = "digits"
PIXEL_MAX = 255
_SKLEARN_MAX = 16


@lru_cache(maxsize=1)
def load_digits_uint8() -> tuple[np.ndarray, np.ndarray]:
    """All 1797 digits as ``(images uint8 [N, 8, 8] in 0..255, labels int64 [N])``."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.round(bunch.images * (PIXEL_MAX / _SKLEARN_MAX)).astype(np.uint8)
    labels = np.asarray(bunch.target, dtype=np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def digits_split(labels: np.ndarray, *, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified deterministic split of ``labels`` into sorted (train, test) index arrays."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), not {test_fraction!r}")
    train, test = [], []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        # One generator per class keeps a class's split independent of the others.
        order = np.random.default_rng([seed, int(cls)]).permutation(members)
        n_test = int(round(len(members) * test_fraction))
        test.append(order[:n_test])
        train.append(order[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


class DigitsDataset(Dataset):
    """One split of the digits: ``x`` float32 ``[1, 8, 8]`` in ``0..255``, ``label`` int.

    Parameters
    ----------
    split:
        ``"train"`` or ``"test"``.
    test_fraction:
        Share of every class held out for testing.
    seed:
        Seed of the split.

    Attributes
    ----------
    images:
        float32 tensor ``[N, 1, 8, 8]`` of the split.
    targets:
        int64 tensor ``[N]`` of labels.
    indices:
        Indices of the split's images in ``load_digits()`` order.
    """

    def __init__(self, *, split: str, test_fraction: float = 0.2, seed: int = 0) -> None:
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', not {split!r}")
        images, labels = load_digits_uint8()
        train, test = digits_split(labels, test_fraction=test_fraction, seed=seed)
        self.indices = train if split == "train" else test
        self.images = torch.from_numpy(images[self.indices].astype(np.float32)).unsqueeze(1)
        self.targets = torch.from_numpy(labels[self.indices].copy())
        self.classes = [str(d) for d in range(10)]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], int(self.targets[index])


def _info(**_: object) -> DatasetInfo:
    return DatasetInfo(
        name=NAME,
        num_classes=10,
        shape=(1, 8, 8),
        event=False,
        integer_input=True,
        input_max=PIXEL_MAX,
        class_names=tuple(str(d) for d in range(10)),
        needs_root=False,
        default_timesteps=4,
    )


def _build(
    root: PathLike | None, split: str, *, timesteps: int, test_fraction: float = 0.2, seed: int = 0
) -> DigitsDataset:
    del root, timesteps  # in-package data; the model repeats static images over time
    return DigitsDataset(split=split, test_fraction=test_fraction, seed=seed)


register_dataset(NAME, info=_info, build=_build)
