"""Integer models that exercise the accelerator without a trained checkpoint.

An untrained Hardware Spikeformer barely fires: its BatchNorm layers start at zero mean
and unit variance, so most currents stay below threshold and a bit-exact comparison
would mostly compare zeros. :func:`firing_int_model` gives the BatchNorm layers seeded
statistics and affine parameters under which every layer fires, then quantizes the
model to its :class:`golden.intmodel.IntModel` (event input for two-channel presets).
The accelerator's schedule does not depend on the values, so cycle figures are those of
the trained model.
"""

from __future__ import annotations

from typing import Any

from golden.intmodel import IntModel

__all__ = ["firing_int_model"]


def firing_int_model(preset: str, *, seed: int = 0, **overrides: Any) -> IntModel:
    """The hardware-family ``preset`` (with ``overrides``) as an integer model whose layers fire.

    BatchNorm statistics and affine parameters are drawn from a generator seeded with
    ``seed``; token layers (BatchNorm1d) get a positive bias so Q, K and V are dense
    enough that the attention of small groups reaches its threshold too.
    """
    import torch

    from golden.models import create_model
    from golden.quantize import FakeQuantModel, to_int_model

    torch.manual_seed(seed)
    net = create_model(preset, **overrides).eval()
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) * 2 + 1)
            shift = 0.6 if isinstance(m, torch.nn.BatchNorm1d) else 0.0
            m.bias.data.copy_(torch.rand(m.num_features, generator=g) + shift)
    return to_int_model(FakeQuantModel(net), event=net.cfg.in_channels == 2)
