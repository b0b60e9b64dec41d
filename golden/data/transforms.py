"""Training augmentations for event frames ``[T, C, H, W]`` (one draw per sample).

The paper's CIFAR10-DVS recipe (REFERENCE.md 1.2): random horizontal flip, a random
roll of up to +-5 pixels in each direction and a 16-pixel cutout. The same draw is
applied to every time step, so motion stays coherent. All three keep integer counts
integer, as the hardware models need.

Horizontal flips are wrong for DVS128 Gesture and the synthetic motion classes (a
flip turns a right-hand wave into a left-hand wave, a rightward bar into a leftward
one), so their recipes omit it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["DVSAugment", "resolve_transform", "train_transform"]


def _check_nonneg(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, not {value!r}")
    return value


class DVSAugment:
    """Random horizontal flip, roll and cutout of event frames.

    Parameters
    ----------
    flip:
        Flip left-right with probability 1/2.
    max_roll:
        Roll (circular shift) by a uniform integer in ``[-max_roll, max_roll]`` along
        each spatial axis.
    cutout:
        Side of a square zeroed around a uniformly drawn centre (clipped at the
        borders); 0 disables it.
    generator:
        Random generator; ``None`` uses torch's global one (seeded per DataLoader worker).
    """

    def __init__(
        self,
        *,
        flip: bool = True,
        max_roll: int = 5,
        cutout: int = 16,
        generator: torch.Generator | None = None,
    ) -> None:
        self.flip = bool(flip)
        self.max_roll = _check_nonneg("max_roll", max_roll)
        self.cutout = _check_nonneg("cutout", cutout)
        self.generator = generator

    def _randint(self, low: int, high: int) -> int:
        return int(torch.randint(low, high, (1,), generator=self.generator))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2:
            raise ValueError(f"expected frames [..., H, W], got shape {tuple(x.shape)}")
        height, width = x.shape[-2:]
        if self.flip and self._randint(0, 2):
            x = x.flip(-1)
        if self.max_roll:
            dy = self._randint(-self.max_roll, self.max_roll + 1)
            dx = self._randint(-self.max_roll, self.max_roll + 1)
            x = torch.roll(x, shifts=(dy, dx), dims=(-2, -1))
        if self.cutout:
            cy, cx = self._randint(0, height), self._randint(0, width)
            half = self.cutout // 2
            y0, y1 = max(cy - half, 0), min(cy - half + self.cutout, height)
            x0, x1 = max(cx - half, 0), min(cx - half + self.cutout, width)
            x = x.clone()
            x[..., y0:y1, x0:x1] = 0
        return x

    def __repr__(self) -> str:
        return f"DVSAugment(flip={self.flip}, max_roll={self.max_roll}, cutout={self.cutout})"


def train_transform(name: str) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The training augmentation for event dataset ``name`` (``None`` for ``digits``).

    ``cifar10-dvs``: flip, roll +-5, cutout 16 (the paper). ``dvs128-gesture``: roll
    +-5 and cutout 16 without the flip (the paper used no augmentation here; this is
    what ``augment=True`` adds). ``synthetic-events``: roll +-4, cutout 8, no flip.
    Static-image sets have their own train transforms in :mod:`golden.data.static`.
    """
    if name == "cifar10-dvs":
        return DVSAugment(flip=True, max_roll=5, cutout=16)
    if name == "dvs128-gesture":
        return DVSAugment(flip=False, max_roll=5, cutout=16)
    if name == "synthetic-events":
        return DVSAugment(flip=False, max_roll=4, cutout=8)
    if name == "digits":
        return None
    raise KeyError(f"no event-frame augmentation for dataset {name!r}")


def resolve_transform(
    name: str,
    split: str,
    *,
    augment: bool,
    transform: Callable[[torch.Tensor], torch.Tensor] | None,
) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The transform a dataset split uses: ``train_transform(name)`` if ``augment`` (train
    split only), else the explicit ``transform`` (or none)."""
    if augment and transform is not None:
        raise ValueError("pass either augment=True or an explicit transform, not both")
    if augment and split == "train":
        return train_transform(name)
    return transform
