"""The inner loops: optimizer and schedule construction, one training epoch, evaluation.

Kept apart from the command line (``golden.train``) so that ``golden.eval`` and tests
use the very same evaluation code. Everything here is data-parallel aware through a
:class:`golden.distributed.DistContext`: counts are summed over ranks before they are
divided, so every rank returns the same metrics.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from .distributed import DistContext, all_reduce_sum
from .firing import FiringRecorder, FiringStats
from .mixing import Mixer, soft_cross_entropy
from .recipes import OPTIMIZERS, SCHEDULES

__all__ = [
    "Amp",
    "LRSchedule",
    "TrainingDiverged",
    "build_optimizer",
    "train_one_epoch",
    "evaluate",
    "EvalResult",
]


class TrainingDiverged(FloatingPointError):
    """The training loss became NaN or infinite."""


@dataclass(frozen=True)
class Amp:
    """Mixed precision settings: autocast dtype on CUDA, or off.

    ``float16`` needs a gradient scaler (its range is narrow); ``bfloat16`` does not.
    """

    enabled: bool = False
    dtype: torch.dtype = torch.bfloat16

    def autocast(self, device: torch.device):  # noqa: ANN201 - a context manager
        if not self.enabled:
            return nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.dtype)

    @property
    def needs_scaler(self) -> bool:
        return self.enabled and self.dtype == torch.float16


class LRSchedule:
    """Per-step learning-rate factor: linear warm-up, then cosine, step or constant.

    An instance is the ``lr_lambda`` of a :class:`torch.optim.lr_scheduler.LambdaLR`; it
    holds only numbers, so the scheduler's ``state_dict`` stays plain.

    Parameters
    ----------
    total_steps:
        Optimizer steps of the whole run.
    warmup_steps:
        Steps of linear warm-up from ``warmup_start`` to 1.
    steps_per_epoch:
        For the ``step`` schedule, whose period is given in epochs.
    sched:
        ``"cosine"``, ``"step"`` or ``"constant"``.
    """

    def __init__(
        self,
        *,
        total_steps: int,
        warmup_steps: int,
        steps_per_epoch: int,
        sched: str = "cosine",
        warmup_start: float = 0.01,
        min_lr_ratio: float = 0.0,
        step_size: int = 30,
        gamma: float = 0.1,
    ) -> None:
        if sched not in SCHEDULES:
            raise ValueError(f"sched must be one of {SCHEDULES}, not {sched!r}")
        if total_steps < 1 or steps_per_epoch < 1 or warmup_steps < 0:
            raise ValueError(
                f"need total_steps >= 1, steps_per_epoch >= 1, warmup_steps >= 0, not "
                f"{total_steps}, {steps_per_epoch}, {warmup_steps}"
            )
        if step_size < 1:
            raise ValueError(f"step_size must be a positive number of epochs, not {step_size!r}")
        self.total_steps = int(total_steps)
        self.warmup_steps = int(min(warmup_steps, total_steps))
        self.steps_per_epoch = int(steps_per_epoch)
        self.sched = sched
        self.warmup_start = float(warmup_start)
        self.min_lr_ratio = float(min_lr_ratio)
        self.step_size = int(step_size)
        self.gamma = float(gamma)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.warmup_start + (1.0 - self.warmup_start) * step / self.warmup_steps
        if self.sched == "constant":
            return 1.0
        if self.sched == "step":
            return self.gamma ** (step // self.steps_per_epoch // self.step_size)
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return self.min_lr_ratio + (1.0 - self.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_optimizer(
    model: nn.Module, *, opt: str, lr: float, weight_decay: float, momentum: float = 0.9
) -> torch.optim.Optimizer:
    """Optimizer with weight decay on weight matrices and kernels only.

    Parameters of fewer than two dimensions (biases, BatchNorm affine, learnable neuron
    time constants) are not decayed: shrinking them towards zero only shifts thresholds.
    """
    if opt not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, not {opt!r}")
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if opt == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=False)
    if opt == "adam":
        return torch.optim.Adam(groups, lr=lr)
    return torch.optim.AdamW(groups, lr=lr)


def _batches(loader: Iterable[Any], max_steps: int | None) -> Iterable[Any]:
    for step, batch in enumerate(loader):
        if max_steps is not None and step >= max_steps:
            return
        yield batch


def train_one_epoch(
    model: nn.Module,
    loader: Iterable[Any],
    *,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    mixer: Mixer,
    rng: np.random.Generator,
    ctx: DistContext,
    amp: Amp,
    steps: int,
    clip_grad: float = 0.0,
    desc: str = "train",
) -> dict[str, float]:
    """Run ``steps`` optimizer steps over ``loader`` and return summed-over-ranks metrics.

    Returns
    -------
    dict
        ``train_loss`` (mean per sample, of the mixed targets when mixing), ``train_acc``
        (percent, against the unmixed labels), ``train_samples``, ``lr`` (after the last step).
    """
    model.train()
    totals = torch.zeros(3, dtype=torch.float64, device=ctx.device)  # loss sum, correct, samples
    bar = tqdm(total=steps, desc=desc, leave=False, disable=not ctx.is_main, dynamic_ncols=True)
    for step, (x, labels) in enumerate(_batches(loader, steps)):
        x = x.to(ctx.device, non_blocking=True)
        labels = labels.to(ctx.device, non_blocking=True)
        x, targets = mixer(x, labels, rng)
        with amp.autocast(ctx.device):
            logits = model(x)
        loss = soft_cross_entropy(logits, targets)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if clip_grad > 0:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        n = labels.shape[0]
        totals += torch.stack(
            [loss.detach().double() * n, (logits.argmax(-1) == labels).sum().double(), totals.new_tensor(n)]
        )
        bar.update(1)
        if ctx.is_main and (step % 10 == 0 or step + 1 == steps):
            bar.set_postfix(loss=f"{totals[0].item() / max(totals[2].item(), 1):.4f}")
    bar.close()
    loss_sum, correct, samples = all_reduce_sum(totals, ctx).tolist()
    if not math.isfinite(loss_sum):
        raise TrainingDiverged(f"training loss became {loss_sum} ({desc}); lower the learning rate")
    return {
        "train_loss": loss_sum / max(samples, 1),
        "train_acc": 100.0 * correct / max(samples, 1),
        "train_samples": int(samples),
        "lr": float(optimizer.param_groups[0]["lr"]),
    }


@dataclass(frozen=True)
class EvalResult:
    """Evaluation outcome over every rank's share of a split.

    Attributes
    ----------
    loss:
        Mean cross-entropy per sample (no label smoothing).
    acc:
        Top-1 accuracy in percent.
    samples:
        Samples evaluated.
    firing:
        Per-layer firing statistics (summed over ranks), or ``None`` when not recorded.
    predictions, labels:
        Predicted and true classes of this rank's samples in loader order (only when asked for).
    """

    loss: float
    acc: float
    samples: int
    firing: FiringStats | None
    predictions: torch.Tensor | None = None
    labels: torch.Tensor | None = None


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable[Any],
    *,
    ctx: DistContext,
    amp: Amp,
    record_firing: bool = True,
    keep_predictions: bool = False,
    desc: str = "eval",
) -> EvalResult:
    """Top-1 accuracy and loss on ``loader`` (each rank its own shard), with firing rates."""
    model.eval()
    totals = torch.zeros(3, dtype=torch.float64, device=ctx.device)
    preds: list[torch.Tensor] = []
    seen: list[torch.Tensor] = []
    recorder = FiringRecorder(model) if record_firing else None
    with recorder if recorder is not None else nullcontext():
        for x, labels in tqdm(loader, desc=desc, leave=False, disable=not ctx.is_main, dynamic_ncols=True):
            x = x.to(ctx.device, non_blocking=True)
            labels = labels.to(ctx.device, non_blocking=True)
            with amp.autocast(ctx.device):
                logits = model(x)
            loss = F.cross_entropy(logits.float(), labels, reduction="sum")
            pred = logits.argmax(-1)
            totals += torch.stack(
                [loss.double(), (pred == labels).sum().double(), totals.new_tensor(len(labels))]
            )
            if keep_predictions:
                preds.append(pred.cpu())
                seen.append(labels.cpu())
    loss_sum, correct, samples = all_reduce_sum(totals, ctx).tolist()
    firing = None
    if recorder is not None:
        local = recorder.stats()
        firing = local.with_totals(all_reduce_sum(local.totals(), ctx))
    return EvalResult(
        loss=loss_sum / max(samples, 1),
        acc=100.0 * correct / max(samples, 1),
        samples=int(samples),
        firing=firing,
        predictions=torch.cat(preds) if keep_predictions and preds else None,
        labels=torch.cat(seen) if keep_predictions and seen else None,
    )
