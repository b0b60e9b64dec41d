"""Briefly trained models shared by the quantization, simulation and end-to-end tests.

Training is seeded (initial weights, data order, schedule), so every run of the suite
builds the same models from scratch and no test depends on what an earlier `make demo`
left in build/. The conftest fixtures train each model once per test session and share it
between pytest-xdist workers through a lock-protected directory.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset

from golden.models import create_model

DVS = dict(
    in_channels=2,
    img_size=32,
    timesteps=4,
    tokenizer_channels=(8,),
    tokenizer_pools=(True, True),
    embed_dim=32,
    heads=2,
    depth=1,
    input_bits=3,
)
"""A small DVS-shaped hardware model: 2x32x32 events, T=4, 64 tokens; counts (and the residual
stream, at most 1 + 3 with divided attention) within 3 bits."""

TINY_RECIPE = dict(epochs=5, seed=0, lr=6e-3)
"""hw-tiny on digits: five epochs reach ~97% and keep the integer model within a point."""


def train_briefly(
    preset: str, dataset: Dataset, *, epochs: int, seed: int, lr: float, **overrides: object
) -> nn.Module:
    """Build ``preset`` and train it with seeded AdamW + one-cycle: a few epochs to real margins."""
    torch.manual_seed(seed)  # before building: the initial weights are part of the seeded run
    model = create_model(preset, **overrides)
    loader = DataLoader(
        dataset, batch_size=32, shuffle=True, drop_last=True, generator=torch.Generator().manual_seed(seed)
    )
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=epochs * len(loader), pct_start=0.15)
    model.train()
    for _ in range(epochs):
        for x, y in loader:
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()
