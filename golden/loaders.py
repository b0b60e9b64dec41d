"""Data loaders with a data order that depends only on ``(seed, epoch)``.

Training batches come from a :class:`~torch.utils.data.distributed.DistributedSampler`
(also for a single process: a world of one), which permutes the indices with a generator
seeded ``seed + epoch``. The loader itself gets its own generator seeded from
``(seed, epoch)`` as well: it draws the worker seeds from it, so dataset-side random
augmentation in worker processes is reproducible, and the global torch generator is
never touched by data loading. A resumed run therefore sees exactly the batches the
uninterrupted run would have seen.

Evaluation shards a split over ranks as ``rank, rank + world, ...`` without padding, so
every sample is counted exactly once when the ranks' counts are summed.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset
from torch.utils.data.distributed import DistributedSampler

from .distributed import DistContext

__all__ = ["build_datasets", "limit_dataset", "train_loader", "eval_loader", "epoch_seed"]

PathLike = str | os.PathLike[str]


def epoch_seed(seed: int, epoch: int, stream: int = 0) -> int:
    """A 63-bit seed for ``(seed, epoch, stream)``; nearby tuples give unrelated seeds."""
    state = np.random.SeedSequence([seed, epoch, stream]).generate_state(1, np.uint64)[0]
    return int(state >> np.uint64(1))


def limit_dataset(ds: Dataset, limit: int | None, *, seed: int) -> Dataset:
    """A seeded random subset of ``limit`` samples (in index order), or ``ds`` itself."""
    if limit is None or limit >= len(ds):  # type: ignore[arg-type]
        return ds
    if limit < 1:
        raise ValueError(f"a dataset limit must be a positive integer, not {limit!r}")
    g = torch.Generator().manual_seed(seed)
    keep = torch.randperm(len(ds), generator=g)[:limit].sort().values.tolist()  # type: ignore[arg-type]
    return Subset(ds, keep)


def build_datasets(
    data: str,
    root: PathLike | None,
    *,
    timesteps: int,
    data_kwargs: dict[str, Any],
    augment: bool,
    train_limit: int | None = None,
    test_limit: int | None = None,
    seed: int = 0,
) -> tuple[Dataset, Dataset]:
    """The train and test splits of ``data`` (training augmentation only on the train split)."""
    from .data import build_dataset  # lazy: the data package imports its readers

    train_kw = dict(data_kwargs)
    if augment:
        train_kw["augment"] = True
    try:
        train = build_dataset(data, root, "train", timesteps=timesteps, **train_kw)
    except TypeError as exc:
        if augment and "augment" in str(exc):
            raise ValueError(f"dataset {data!r} has no training augmentation; drop --augment") from exc
        raise
    test = build_dataset(data, root, "test", timesteps=timesteps, **data_kwargs)
    return limit_dataset(train, train_limit, seed=seed), limit_dataset(test, test_limit, seed=seed + 1)


def train_loader(
    ds: Dataset, *, batch_size: int, ctx: DistContext, seed: int, epoch: int, workers: int
) -> DataLoader:
    """Shuffled, rank-sharded loader for one epoch (incomplete last batches are dropped)."""
    sampler = DistributedSampler(
        ds, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=seed, drop_last=False
    )
    sampler.set_epoch(epoch)
    return DataLoader(
        ds,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=ctx.device.type == "cuda",
        drop_last=True,
        generator=torch.Generator().manual_seed(epoch_seed(seed, epoch, stream=1)),
        persistent_workers=False,
    )


def eval_loader(ds: Dataset, *, batch_size: int, ctx: DistContext, workers: int) -> DataLoader:
    """This rank's share of ``ds`` in a fixed order, every sample on exactly one rank."""
    shard = ds if ctx.world_size == 1 else Subset(ds, range(ctx.rank, len(ds), ctx.world_size))  # type: ignore[arg-type]
    return DataLoader(
        shard,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        pin_memory=ctx.device.type == "cuda",
        generator=torch.Generator().manual_seed(0),
    )
