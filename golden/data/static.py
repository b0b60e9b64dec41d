"""Static-image datasets through torchvision: ImageNet-1k, CIFAR-10 and CIFAR-100.

They serve the *reference* Spikeformer only: images come out as normalized float
tensors ``[3, H, W]``, which the hardware presets cannot take (those need integer
inputs such as the uint8 ``digits``). The model repeats an image ``T`` times
(direct encoding), so ``timesteps`` is ignored here.

Transforms (``augment=True`` applies to the train split only):

ImageNet
    train: RandomResizedCrop(img_size), horizontal flip, AutoAugment (ImageNet
    policy, on by default as in the paper), ToTensor, Normalize, RandomErasing(0.25);
    eval: Resize(img_size / 0.875), CenterCrop(img_size), ToTensor, Normalize.
CIFAR-10/100
    train: RandomCrop(32, padding=4), horizontal flip, optional AutoAugment (CIFAR-10
    policy), ToTensor, Normalize, optional RandomErasing; eval: ToTensor, Normalize.

Without ``augment`` the train split uses the eval transform.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from .errors import DatasetLayoutError
from .layout import resolve_base
from .registry import DatasetInfo, register_dataset

__all__ = ["CIFAR_STATS", "IMAGENET_MEAN", "IMAGENET_STD", "cifar_transform", "imagenet_transform"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CIFAR_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_CIFAR_FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
IMAGENET_LAYOUT = """\
<root>/                              (or <root>/imagenet/)
  train/n01440764/*.JPEG ...         1000 class folders (torchvision ImageFolder)
  val/n01440764/*.JPEG ...           validation images sorted into the same folders"""
CIFAR_LAYOUT = """\
<root>/
  cifar-10-batches-py/               (CIFAR-10, python version; or pass download=True)
  cifar-100-python/                  (CIFAR-100, python version)"""


def imagenet_transform(
    *, train: bool, img_size: int = 224, auto_augment: bool = True, random_erasing: float = 0.25
) -> Callable[[Any], Any]:
    """The ImageNet train or eval transform (see the module docstring)."""
    from torchvision import transforms as T

    normalize = [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    if not train:
        return T.Compose([T.Resize(int(round(img_size / 0.875))), T.CenterCrop(img_size), *normalize])
    steps: list[Any] = [T.RandomResizedCrop(img_size), T.RandomHorizontalFlip()]
    if auto_augment:
        steps.append(T.AutoAugment(T.AutoAugmentPolicy.IMAGENET))
    steps += normalize
    if random_erasing:
        steps.append(T.RandomErasing(p=random_erasing))
    return T.Compose(steps)


def cifar_transform(
    name: str, *, train: bool, auto_augment: bool = False, random_erasing: float = 0.0
) -> Callable[[Any], Any]:
    """The CIFAR-10/100 train or eval transform (see the module docstring)."""
    from torchvision import transforms as T

    mean, std = CIFAR_STATS[name]
    normalize = [T.ToTensor(), T.Normalize(mean, std)]
    if not train:
        return T.Compose(normalize)
    steps: list[Any] = [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()]
    if auto_augment:
        steps.append(T.AutoAugment(T.AutoAugmentPolicy.CIFAR10))
    steps += normalize
    if random_erasing:
        steps.append(T.RandomErasing(p=random_erasing))
    return T.Compose(steps)


def _build_imagenet(
    root: str | os.PathLike[str],
    split: str,
    *,
    timesteps: int,
    augment: bool = False,
    img_size: int = 224,
    auto_augment: bool = True,
    random_erasing: float = 0.25,
) -> Dataset:
    from torchvision.datasets import ImageFolder

    del timesteps  # the model repeats static images
    base = resolve_base(
        root,
        dataset="imagenet",
        subdir="imagenet",
        is_base=lambda p: (p / "train").is_dir() and (p / "val").is_dir(),
        layout=IMAGENET_LAYOUT,
    )
    train = augment and split == "train"
    transform = imagenet_transform(
        train=train, img_size=img_size, auto_augment=auto_augment, random_erasing=random_erasing
    )
    return ImageFolder(str(base / ("train" if split == "train" else "val")), transform=transform)


def _cifar_builder(name: str) -> Callable[..., Dataset]:
    def build(
        root: str | os.PathLike[str],
        split: str,
        *,
        timesteps: int,
        augment: bool = False,
        auto_augment: bool = False,
        random_erasing: float = 0.0,
        download: bool = False,
    ) -> Dataset:
        from torchvision import datasets

        del timesteps  # the model repeats static images
        if not download and not (Path(root) / _CIFAR_FOLDERS[name]).is_dir():
            raise DatasetLayoutError(name, root, f"{_CIFAR_FOLDERS[name]}/ not found", CIFAR_LAYOUT)
        cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
        train = augment and split == "train"
        transform = cifar_transform(
            name, train=train, auto_augment=auto_augment, random_erasing=random_erasing
        )
        return cls(str(root), train=split == "train", transform=transform, download=download)

    return build


def _static_info(
    name: str, num_classes: int, default_size: int, classes: tuple[str, ...]
) -> Callable[..., DatasetInfo]:
    def info(*, img_size: int = default_size, **_: object) -> DatasetInfo:
        return DatasetInfo(
            name=name,
            num_classes=num_classes,
            shape=(3, img_size, img_size),
            event=False,
            integer_input=False,
            input_max=None,
            class_names=classes,
            needs_root=True,
            default_timesteps=4,
        )

    return info


register_dataset("imagenet", info=_static_info("imagenet", 1000, 224, ()), build=_build_imagenet)
register_dataset(
    "cifar10", info=_static_info("cifar10", 10, 32, CIFAR10_CLASSES), build=_cifar_builder("cifar10")
)
register_dataset("cifar100", info=_static_info("cifar100", 100, 32, ()), build=_cifar_builder("cifar100"))
