"""Calibrated weight rounding: integer weights chosen for the layer's currents, not one by one.

Round-to-nearest makes each ``Wq_ci`` the integer nearest ``r_ci = W'_ci / alpha_c`` on its own.
What the neuron sees is the current ``sum_i Wq_ci s_i``; its error in units of ``alpha_c`` is
``e_c . s`` with ``e_c = Wq_c - r_c``. Its mean over the inputs is a systematic shift of the
neuron's operating point, and on correlated inputs (neighbouring pixels of an image are nearly
equal, so a 3x3 conv on pixels sees about ``s_0 * sum_i e_ci``) the per-weight errors add up
rather than average out. docs/numerics.md section 12.1.

The ``calibrated`` rounding keeps every weight at ``floor`` or ``ceil`` of ``r_ci`` (so in
``[-Q, Q]`` and within one of round-to-nearest) and picks them, per output channel, to minimise
``e_c^T C e_c`` with ``C`` the covariance of the layer's inputs on calibration samples; the
remaining mean error ``e_c . mu`` goes into the integer bias (``b_c = round(b'_c 2^F / alpha_c
- 2^F e_c . mu)``). Together they minimise the mean squared current error over the calibration
inputs. The search starts at round-to-nearest and applies the single floor/ceil change that lowers
the objective most until none does, so it is never worse than round-to-nearest on those inputs.

Layers are calibrated in the order the forward pass reaches them, each on the inputs that the
already calibrated integer layers before it produce (one forward pass of the fake-quant model).
The integer model keeps its form: integer weights in ``[-Q, Q]``, an integer bias; only which
integers changes, so everything downstream (export, RTL) is untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn
import torch.nn.functional as F

if TYPE_CHECKING:
    from .quantize import FakeQuantModel, _SynapseQuantizer

__all__ = ["ROUNDINGS", "InputMoments", "round_for_currents", "calibrate_rounding"]

ROUNDINGS = ("nearest", "calibrated")
"""Weight roundings of :class:`golden.quantize.FakeQuantModel` (``rounding=``, ``--rounding``)."""


class InputMoments:
    """Running mean and covariance of a layer's input vectors (rows of ``[P, I]``), in float64."""

    def __init__(self, features: int) -> None:
        self.count = 0
        self.total = torch.zeros(features, dtype=torch.float64)
        self.outer = torch.zeros(features, features, dtype=torch.float64)

    def add(self, rows: torch.Tensor) -> None:
        rows = rows.double()
        self.count += rows.shape[0]
        self.total += rows.sum(dim=0)
        self.outer += rows.t() @ rows

    @property
    def mean(self) -> torch.Tensor:
        return self.total / max(self.count, 1)

    @property
    def covariance(self) -> torch.Tensor:
        mean = self.mean
        return self.outer / max(self.count, 1) - torch.outer(mean, mean)


@torch.no_grad()
def round_for_currents(ratio: torch.Tensor, covariance: torch.Tensor, *, weight_max: int) -> torch.Tensor:
    """Integer weights ``q`` in ``{floor r, ceil r}`` (and ``[-Q, Q]``) lowering ``(q - r)^T C (q - r)``.

    Parameters
    ----------
    ratio:
        ``r = W' / alpha``, ``[O, I]`` (each row within ``[-Q, Q]``).
    covariance:
        ``C``, ``[I, I]``, positive semi-definite.
    weight_max:
        ``Q``.

    Returns
    -------
    torch.Tensor
        ``[O, I]`` float64 integers. Starting from round-to-nearest, each step applies, per
        channel, the one floor/ceil flip that lowers the objective most; a channel stops when
        none does. Each accepted step lowers the objective, so it ends, never above nearest.
    """
    r = ratio.double()
    cov = covariance.double()
    q = torch.clamp(torch.round(r), -weight_max, weight_max)
    err = q - r
    grad = err @ cov  # [O, I]: half the gradient of each channel's objective
    diag = torch.diagonal(cov)
    active = torch.ones(r.shape[0], dtype=torch.bool)
    rows = torch.arange(r.shape[0])
    for _ in range(8 * r.shape[1] + 8):
        # the other side of r: -sign(err); none where r is an integer or the bound is reached
        step = -torch.sign(err)
        step = torch.where((q + step).abs() <= weight_max, step, torch.zeros_like(step))
        change = 2.0 * step * grad + step * step * diag  # objective change of flipping one weight
        change = torch.where(step != 0, change, torch.zeros_like(change))
        best, index = change.min(dim=1)
        # relative tolerance: float64 noise must not count as a gain
        active &= best < -1e-12 * (1.0 + diag.max())
        if not bool(active.any()):
            break
        c, i = rows[active], index[active]
        delta = step[c, i]
        q[c, i] += delta
        err[c, i] += delta
        grad[c] += delta.unsqueeze(1) * cov[i]
    return q


def _synapse_inputs(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The layer's input vectors ``[P, I]`` in the order of its flattened weight (integer units)."""
    quant = module._quant
    layer = quant.layer
    if isinstance(layer, nn.Conv1d):  # SpikingJelly's 1x1 Conv1d on [B, C, N]
        rows = x.transpose(1, 2).reshape(-1, x.shape[1])
    elif isinstance(layer, nn.Conv2d):
        cols = F.unfold(x, layer.kernel_size, layer.dilation, layer.padding, layer.stride)
        rows = cols.transpose(1, 2).reshape(-1, cols.shape[1])
    else:
        rows = x.reshape(-1, x.shape[-1])
    return rows * quant.in_scale  # the first layer's float input is x / input_max


def _calibrator(quant: _SynapseQuantizer, chunk: int, bias_correction: bool) -> Callable[..., None]:
    """Forward pre-hook: on the layer's first call, set its rounding from the inputs it receives."""

    def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
        if quant.calibrated:
            return
        x = args[0].detach().double()
        weight = quant.refresh().weight.detach()
        moments = InputMoments(weight[0].numel())
        for part in x.split(chunk):
            moments.add(_synapse_inputs(module, part))
        ratio = quant.ratio().flatten(1)
        if bias_correction:
            q = round_for_currents(ratio, moments.covariance, weight_max=quant.cfg.weight_max)
            quant.bias_shift = -(2.0**quant.cfg.frac_bits) * ((q - ratio) @ moments.mean)
        else:  # the mean error stays in the currents: minimise the second moment instead
            second = moments.covariance + torch.outer(moments.mean, moments.mean)
            q = round_for_currents(ratio, second, weight_max=quant.cfg.weight_max)
        nearest = torch.clamp(torch.round(ratio), -quant.cfg.weight_max, quant.cfg.weight_max)
        quant.weight_offset = (q - nearest).view_as(weight)
        quant.calibrated = True
        quant.refresh()

    return hook


@torch.no_grad()
def calibrate_rounding(
    fq: FakeQuantModel,
    x: torch.Tensor,
    *,
    layers: Collection[str] | None = None,
    bias_correction: bool = True,
    chunk: int = 16,
) -> dict[str, Any]:
    """Choose the ``calibrated`` rounding of the synaptic layers of ``fq`` on the inputs ``x``.

    Parameters
    ----------
    fq:
        The fake-quant model; its layers' roundings are replaced (the others reset to nearest).
    x:
        Integer model inputs (training-split samples, not the test set), one batch.
    layers:
        Names of the layers to calibrate (default: all). The SEW shortcut of a Hardware
        Spikeformer (an ``AvgPool + conv1x1`` whose ``s x s`` taps must stay equal) and the
        head always keep round-to-nearest.
    bias_correction:
        Move the mean current error into the bias and minimise the covariance (default); else
        leave the bias alone and minimise the second moment of the error.
    chunk:
        Samples per step of the input statistics (memory).

    Returns
    -------
    dict
        How the weights were rounded (``fq.rounding``, recorded in reports and exports).
    """
    from .quantize import _Bound, _PooledConv, _QuantAffine

    was_training = fq.training
    fq.eval()
    handles, names = [], []
    for quant in fq.quantizers:
        quant.weight_offset, quant.bias_shift, quant.calibrated = None, None, True
    for module in fq.net.modules():
        if isinstance(module, _Bound) and not isinstance(module, _QuantAffine):
            quant = module._quant
            if isinstance(quant.layer, _PooledConv) or (layers is not None and quant.name not in layers):
                continue
            quant.calibrated = False
            names.append(quant.name)
            handles.append(module.register_forward_pre_hook(_calibrator(quant, chunk, bias_correction)))
    try:
        fq(x)
    finally:
        for handle in handles:
            handle.remove()
        fq.train(was_training)
    missed = [q.name for q in fq.quantizers if not q.calibrated]
    if missed:
        raise RuntimeError(f"calibration did not reach layers {missed}")
    fq.rounding = {
        "method": "calibrated",
        "calibration_samples": int(x.shape[0]),
        "bias_correction": bias_correction,
        "layers": names,
    }
    return fq.rounding
