"""Integer models that exercise the accelerator without a trained checkpoint.

An untrained Hardware Spikeformer barely fires: its BatchNorm layers start at zero mean
and unit variance, so most currents stay below threshold and a bit-exact comparison
would mostly compare zeros. :func:`firing_int_model` sets the BatchNorm statistics and
affine parameters so that every layer fires, then quantizes the model to its
:class:`contract.intmodel.IntModel`. The statistics are either seeded random numbers or,
given calibration data, the averages over it. The accelerator's schedule does not
depend on the values, so cycle figures are those of the trained model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from contract.intmodel import IntModel

if TYPE_CHECKING:
    import numpy as np
    import torch

__all__ = ["firing_int_model"]

#: BatchNorm bias of the calibrated variant: normalized currents then sit near the LIF
#: threshold instead of far below it.
CALIBRATED_BIAS = 0.6


def firing_int_model(
    preset: str, *, seed: int = 0, calibration: np.ndarray | None = None, **overrides: Any
) -> IntModel:
    """The hardware-family ``preset`` (with ``overrides``) as an integer model whose layers fire.

    Parameters
    ----------
    preset, overrides:
        The model, as for :func:`golden.models.create_model`; weights come from
        ``torch.manual_seed(seed)``.
    seed:
        Seeds the weights and, without ``calibration``, the BatchNorm statistics and affine
        parameters; token layers (BatchNorm1d) then get a positive bias so Q, K and V are
        dense enough that the attention of small groups reaches its threshold too.
    calibration:
        Input frames ``[N, (T,) C, H, W]``: BatchNorm statistics are then the plain averages
        over them and every bias is :data:`CALIBRATED_BIAS`. Frames with a time axis are
        event input.
    """
    import torch

    from golden.models import create_model
    from golden.quantize import FakeQuantModel, to_int_model

    torch.manual_seed(seed)
    net = create_model(preset, **overrides)
    norms = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if calibration is None:
        _seeded_statistics(norms, seed)
        event = net.cfg.in_channels == 2
    else:
        _calibrated_statistics(net, norms, calibration)
        event = calibration.ndim == 5
    net.eval()
    return to_int_model(FakeQuantModel(net), event=event)


def _seeded_statistics(norms: list[torch.nn.Module], seed: int) -> None:
    import torch

    g = torch.Generator().manual_seed(seed)
    for m in norms:
        m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
        m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
        m.weight.data.copy_(torch.rand(m.num_features, generator=g) * 2 + 1)
        shift = 0.6 if isinstance(m, torch.nn.BatchNorm1d) else 0.0
        m.bias.data.copy_(torch.rand(m.num_features, generator=g) + shift)


def _calibrated_statistics(
    net: torch.nn.Module, norms: list[torch.nn.Module], calibration: np.ndarray
) -> None:
    """Train-mode forward passes with cumulative statistics; ``eps`` tiny, so sparse event
    inputs far below the default ``eps`` still normalize to unit variance."""
    import torch

    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the calibration batches
        norm.eps = 1e-12
    net.train()
    with torch.no_grad():
        for batch in torch.from_numpy(calibration).float().split(64):
            net(batch)
        for norm in norms:
            norm.bias.fill_(CALIBRATED_BIAS)
