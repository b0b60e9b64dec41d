"""Mixup / CutMix batch mixing and the soft-target loss that goes with it.

A batch is mixed with its own reverse (sample ``i`` with sample ``B-1-i``), so the
pairing needs no random numbers; only the mixing weight ``lam ~ Beta(alpha, alpha)``,
the choice between mixup and cutmix and the cutmix box are drawn, from a
``numpy.random.Generator`` owned by the caller (seeded per epoch, so a resumed run draws
the same). CutMix cuts the same box out of every time step: the last two axes are
``H, W`` for both static ``[B, C, H, W]`` and event ``[B, T, C, H, W]`` batches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["Mixer", "soft_targets", "soft_cross_entropy"]


def soft_targets(labels: torch.Tensor, num_classes: int, smoothing: float = 0.0) -> torch.Tensor:
    """One-hot targets ``[B, classes]`` with label smoothing (``smoothing / classes`` off target)."""
    off = smoothing / num_classes
    out = torch.full((labels.shape[0], num_classes), off, device=labels.device, dtype=torch.float32)
    return out.scatter_(1, labels.view(-1, 1), 1.0 - smoothing + off)


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``-sum(targets * log_softmax(logits))`` (computed in float32)."""
    return -(targets * F.log_softmax(logits.float(), dim=-1)).sum(dim=-1).mean()


@dataclass(frozen=True)
class Mixer:
    """Mixup and/or CutMix with label smoothing.

    Parameters
    ----------
    num_classes:
        Number of classes of the soft targets.
    mixup_alpha, cutmix_alpha:
        Beta distribution parameters; 0 disables that kind of mixing.
    label_smoothing:
        Smoothing applied to both targets before they are mixed.
    switch_prob:
        With both kinds enabled, the probability of CutMix for a batch.
    prob:
        Probability that a batch is mixed at all.
    """

    num_classes: int
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    label_smoothing: float = 0.0
    switch_prob: float = 0.5
    prob: float = 1.0

    def __post_init__(self) -> None:
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, not {self.num_classes!r}")
        for name in ("mixup_alpha", "cutmix_alpha"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, not {getattr(self, name)!r}")
        for name in ("label_smoothing", "switch_prob", "prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], not {getattr(self, name)!r}")

    @property
    def active(self) -> bool:
        return self.prob > 0 and (self.mixup_alpha > 0 or self.cutmix_alpha > 0)

    def __call__(
        self, x: torch.Tensor, labels: torch.Tensor, rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mix batch ``x`` (``[B, ..., H, W]``) and return ``(mixed x, soft targets)``."""
        targets = soft_targets(labels, self.num_classes, self.label_smoothing)
        if not self.active or rng.random() >= self.prob:
            return x, targets
        use_cutmix = self.cutmix_alpha > 0 and (self.mixup_alpha == 0 or rng.random() < self.switch_prob)
        alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
        lam = float(rng.beta(alpha, alpha))
        partner = x.flip(0)
        if use_cutmix:
            x, lam = _cutmix(x, partner, lam, rng)
        else:
            x = x * lam + partner * (1.0 - lam)
        return x, targets * lam + targets.flip(0) * (1.0 - lam)


def _cutmix(
    x: torch.Tensor, partner: torch.Tensor, lam: float, rng: np.random.Generator
) -> tuple[torch.Tensor, float]:
    """Paste a box of area ``(1 - lam) * H * W`` from ``partner``; return the area-corrected lam."""
    h, w = x.shape[-2], x.shape[-1]
    cut = math.sqrt(1.0 - lam)
    bh, bw = int(h * cut), int(w * cut)
    cy, cx = int(rng.integers(h)), int(rng.integers(w))
    y0, y1 = max(cy - bh // 2, 0), min(cy + bh // 2 + bh % 2, h)
    x0, x1 = max(cx - bw // 2, 0), min(cx + bw // 2 + bw % 2, w)
    out = x.clone()
    out[..., y0:y1, x0:x1] = partner[..., y0:y1, x0:x1]
    return out, 1.0 - (y1 - y0) * (x1 - x0) / (h * w)
