"""Quantization of a Hardware Spikeformer: BN folding, PTQ, the fake-quant model and the integer model.

Rules: docs/numerics.md sections 3-8. The pipeline is

    float model --FakeQuantModel--> fake-quant model (float64) --to_int_model--> IntModel (int64)

:class:`FakeQuantModel` is a copy of the float model in float64 whose ``conv``/``linear``,
``bn`` and LIF modules are replaced by integer emulations: weights are the integers
``Wq``, BatchNorm becomes ``x * 2^F + b_c``, every LIF runs the integer recurrence with
``floor`` in units of ``alpha_c / 2^F``; the attention LIF takes ``O * scale * 2^F / scale``;
the first layer, fed ``x / input_max`` by the float forward, uses ``Wq * input_max`` and
rounds its accumulator (float64 error < 1e-9, far below 0.5).
Every value is an integer held exactly in float64, so the fake-quant model produces the
same spikes and currents as the integer model at every layer while still running the
float model's own ``forward`` code (reshapes, token grouping, residuals). The same
modules, in training mode, carry straight-through-estimator gradients to the float
weights for quantization-aware fine-tuning (:mod:`golden.quantize_run`).

``python -m golden.quantize --checkpoint FILE --data-root DIR --out DIR`` runs the whole
flow (see :func:`golden.quantize_run.main`).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from contract.intmodel import IntModel, Op
from contract.numerics import NumericsConfig

from .models.hw_spikeformer import (
    AvgPoolConvBNLIF,
    ConvBNLIF,
    HwSpikeformer,
    HwSpikeformerConfig,
    LinearBNLIF,
    SewBlock,
    SumPoolHead,
)
from .models.sj_spikformer import SjSpikformer
from .neuron import LIFNode, SurrogateSpike
from .quantize_rounding import ROUNDINGS

__all__ = [
    "QuantizationError",
    "QuantizationWarning",
    "SJ_INPUT_BITS",
    "numerics_for",
    "fold_batchnorm",
    "channel_scales",
    "quantize_layer",
    "LayerQuant",
    "IntLIF",
    "FakeQuantModel",
    "ROUNDINGS",
    "to_int_model",
]


class QuantizationError(ValueError):
    """The float model cannot be quantized under the integer rules (the message names the module)."""


SJ_INPUT_BITS = 8
"""Input width of an ``sj-spikformer``: SpikingJelly does not scale its input, so the integer
input is the float model's own (pixels or event counts 0..255); see docs/numerics.md section 13."""


class QuantizationWarning(UserWarning):
    """A quantized value had to be clamped to its width (a degenerate channel)."""


def _ste_round(x: torch.Tensor) -> torch.Tensor:
    """``round`` (half to even) forward, identity gradient."""
    return x + (torch.round(x) - x).detach()


def _ste_floor(x: torch.Tensor) -> torch.Tensor:
    """``floor`` forward, identity gradient."""
    return x + (torch.floor(x) - x).detach()


# --------------------------------------------------------------------------- numerics of a model
def numerics_for(
    model: nn.Module, *, weight_bits: int = 8, frac_bits: int = 4, membrane_bits: int = 24
) -> NumericsConfig:
    """The :class:`NumericsConfig` of ``model``: ``leak_shift`` from its LIF ``tau``,
    ``input_bits`` from its config; the other widths as given.

    Raises :class:`QuantizationError` if a LIF is learnable-tau, or its ``tau`` is not
    a power of two or differs between layers.
    """
    if isinstance(model, SjSpikformer):
        input_bits = SJ_INPUT_BITS  # the float model's own input: integer pixels / counts 0..255
    elif isinstance(model, HwSpikeformer):
        input_bits = model.cfg.input_bits
    else:
        raise QuantizationError(
            f"only Hardware Spikeformer and sj-spikformer models quantize, not {type(model).__name__}"
        )
    shifts = set()
    for name, module in model.named_modules():
        if isinstance(module, LIFNode):
            tau = module.tau
            k = round(math.log2(tau)) if tau > 0 else -1
            if module.learnable_tau or k < 0 or 2.0**k != tau:
                raise QuantizationError(
                    f"LIF {name!r}: tau {tau!r} is not a fixed power of two; the integer "
                    "LIF shifts by log2(tau)"
                )
            shifts.add(k)
    if len(shifts) != 1:
        raise QuantizationError(
            f"all LIF neurons must share one tau (one leak shift), got shifts {sorted(shifts)}"
        )
    return NumericsConfig(
        weight_bits=weight_bits,
        frac_bits=frac_bits,
        membrane_bits=membrane_bits,
        leak_shift=shifts.pop(),
        input_bits=input_bits,
    )


# --------------------------------------------------------------------------- folding and scales
def fold_batchnorm(
    weight: torch.Tensor, bn: nn.BatchNorm1d | nn.BatchNorm2d, *, in_scale: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold eval-mode BatchNorm into ``weight`` ``[O, ...]`` (docs/numerics.md section 4), in float64.

    Returns ``(W', b')`` with ``bn(W s / in_scale) == W' s + b'`` (per output channel).
    """
    if bn.running_mean is None or bn.running_var is None:
        raise QuantizationError("BatchNorm without running statistics cannot be folded")
    ones = torch.ones_like(bn.running_var, dtype=torch.float64)
    gamma = bn.weight.double() if bn.weight is not None else ones
    beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(gamma)
    g = gamma / torch.sqrt(bn.running_var.double() + bn.eps)
    shape = (-1,) + (1,) * (weight.dim() - 1)
    return weight.double() * g.view(shape) / in_scale, beta - g * bn.running_mean.double()


def channel_scales(w_fold: torch.Tensor, *, weight_max: int, v_threshold: float) -> torch.Tensor:
    """Per-output-channel ``alpha_c = max |W'_c| / Q`` (``V_th / Q`` for an all-zero channel); no gradient."""
    amax = w_fold.detach().abs().flatten(1).amax(dim=1)
    return torch.where(amax > 0, amax / weight_max, torch.full_like(amax, v_threshold / weight_max))


@dataclass
class LayerQuant:
    """Integer parameters of one synaptic layer, as float64 tensors holding integers.

    ``weight`` and ``bias`` carry straight-through gradients in training mode.
    """

    weight: torch.Tensor
    bias: torch.Tensor
    threshold: torch.Tensor
    scale: torch.Tensor


def quantize_layer(
    weight: torch.Tensor,
    bn: nn.BatchNorm1d | nn.BatchNorm2d,
    *,
    v_threshold: float,
    cfg: NumericsConfig,
    in_scale: float = 1.0,
    name: str = "",
    weight_offset: torch.Tensor | None = None,
    bias_shift: torch.Tensor | None = None,
) -> LayerQuant:
    """``Wq``, ``b_c``, ``theta_c`` and ``alpha_c`` of ``weight`` + ``bn`` (docs/numerics.md section 4).

    ``weight_offset`` (integers added to round-to-nearest, then clamped to ``[-Q, Q]``) and
    ``bias_shift`` (added to ``b'_c 2^F / alpha_c`` before its rounding) carry a calibrated
    rounding (:mod:`golden.quantize_rounding`, section 12.1); ``None``: round-to-nearest.
    """
    w_fold, b_fold = fold_batchnorm(weight, bn, in_scale=in_scale)
    alpha = channel_scales(w_fold, weight_max=cfg.weight_max, v_threshold=v_threshold)
    shape = (-1,) + (1,) * (w_fold.dim() - 1)
    w_q = _ste_round(w_fold / alpha.view(shape))
    if weight_offset is not None:
        w_q = w_q + weight_offset
    w_q = torch.clamp(w_q, -cfg.weight_max, cfg.weight_max)
    unit = 2.0**cfg.frac_bits
    bias = b_fold * unit / alpha
    bias = _ste_round(bias + bias_shift if bias_shift is not None else bias)
    theta = torch.round(v_threshold * unit / alpha)
    lo, hi = cfg.membrane_min, cfg.membrane_max
    if bool((bias.detach() < lo).any() or (bias.detach() > hi).any() or (theta > hi).any()):
        warnings.warn(
            f"layer {name!r}: a bias or threshold exceeds membrane_bits={cfg.membrane_bits} and "
            "is clamped (a channel whose folded weights are negligible)",
            QuantizationWarning,
            stacklevel=2,
        )
    return LayerQuant(w_q, torch.clamp(bias, lo, hi), torch.clamp(theta, 1, hi), alpha)


def attention_threshold(v_threshold: float, scale: float, cfg: NumericsConfig) -> int:
    """``theta_a = max(1, round(V_a 2^F / scale))`` (docs/numerics.md section 7)."""
    return min(max(1, round(v_threshold * 2**cfg.frac_bits / scale)), cfg.membrane_max)


# --------------------------------------------------------------------------- fake-quant modules
class _Recorder:
    """Shared trace store of one :class:`FakeQuantModel` (``None`` when not tracing)."""

    def __init__(self) -> None:
        self.store: dict[str, torch.Tensor] | None = None

    def put(self, name: str, value: torch.Tensor) -> None:
        if self.store is not None:
            self.store[name] = value.detach()


class _SynapseQuantizer(nn.Module):
    """Owns one layer's float ``conv``/``linear`` and ``bn``; computes its :class:`LayerQuant` per forward."""

    def __init__(
        self,
        name: str,
        layer: nn.Conv2d | nn.Linear,
        bn: nn.Module,
        lif: LIFNode,
        cfg: NumericsConfig,
        in_scale: float,
    ) -> None:
        super().__init__()
        if getattr(layer, "bias", None) is not None:
            raise QuantizationError(f"layer {name!r}: conv/linear must have no bias (BN supplies it)")
        self.name, self.layer, self.bn, self.cfg, self.in_scale = name, layer, bn, cfg, in_scale
        self.v_threshold = lif.v_threshold
        self.params: LayerQuant | None = None
        # calibrated rounding (golden.quantize_rounding); None: round-to-nearest
        self.weight_offset: torch.Tensor | None = None
        self.bias_shift: torch.Tensor | None = None
        self.calibrated = True

    def ratio(self) -> torch.Tensor:
        """``W' / alpha`` per output channel (the real-valued weights in integer units); no gradient."""
        w_fold, _ = fold_batchnorm(self.layer.weight.detach(), self.bn, in_scale=self.in_scale)
        alpha = channel_scales(w_fold, weight_max=self.cfg.weight_max, v_threshold=self.v_threshold)
        return w_fold / alpha.view((-1,) + (1,) * (w_fold.dim() - 1))

    def refresh(self) -> LayerQuant:
        self.params = quantize_layer(
            self.layer.weight,
            self.bn,
            v_threshold=self.v_threshold,
            cfg=self.cfg,
            in_scale=self.in_scale,
            name=self.name,
            weight_offset=self.weight_offset,
            bias_shift=self.bias_shift,
        )
        return self.params


class _Bound(nn.Module):
    """Base of the replacement modules: holds its quantizer without registering it twice."""

    def __init__(self, quant: _SynapseQuantizer) -> None:
        super().__init__()
        object.__setattr__(self, "_quant", quant)

    @property
    def params(self) -> LayerQuant:
        if self._quant.params is None:
            raise RuntimeError("FakeQuantModel: quantizers must be refreshed before use")
        return self._quant.params


class _PooledConv(nn.Module):
    """The SEW shortcut's ``AvgPool(s) -> conv1x1`` as one conv: kernel ``s``, stride ``s``, taps ``w / s^2``.

    Every tap of a channel holds the same weight, so the per-channel scale and the rounding
    of the folded weights are those of the 1x1 conv divided by ``s^2``: the integer ``s x s``
    conv equals the pool and the conv exactly (docs/numerics.md section 14).
    """

    def __init__(self, shortcut: AvgPoolConvBNLIF) -> None:
        super().__init__()
        self.conv, self.size = shortcut.conv, shortcut.stride
        self.stride, self.padding, self.dilation, self.groups = (self.size,) * 2, (0, 0), (1, 1), 1
        self.bias = None

    @property
    def weight(self) -> torch.Tensor:
        s = self.size
        return self.conv.weight.expand(-1, -1, s, s) / (s * s)


class _QuantConv(_Bound):
    """``conv2d`` with the integer weights ``Wq``.

    The first layer receives ``x / input_max`` from the float model's forward; its weights
    are ``Wq * input_max`` here, so the sum is the integer accumulator up to float64
    rounding (relative 2^-52 per term), which :class:`_QuantAffine` removes by rounding.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self._quant.layer
        weight = self.params.weight * self._quant.in_scale  # in_scale 1.0 leaves it exact
        return F.conv2d(x, weight, None, conv.stride, conv.padding, conv.dilation, conv.groups)


class _QuantLinear(_Bound):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.params.weight)


class _QuantAffine(_Bound):
    """Replaces BatchNorm (channel axis 1): ``acc * 2^F + b_c``, the integer current before saturation."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._quant.in_scale != 1.0:
            x = _ste_round(x)  # the first layer's accumulator: see _QuantConv
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return x * 2.0**self._quant.cfg.frac_bits + self.params.bias.view(shape)


class IntLIF(nn.Module):
    """Integer LIF recurrence (docs/numerics.md section 5) in float64, with surrogate gradients.

    ``x`` (``[T, ...]``) is multiplied by ``gain`` (``2^F / scale`` for the attention LIF, else 1),
    rounded (a no-op for the exact integers it receives), saturated to ``M`` bits, then
    ``h = v + floor((x - v) / 2^k)``, ``s = h >= theta``, ``v = s ? 0 : h``. Forward values
    equal :func:`contract.numerics.lif_trace`; the backward pass uses the float LIF's
    surrogate on ``(h - theta) * V_th / theta`` (the float ``H - V_th``) and the identity for
    the floor (straight-through).

    Parameters
    ----------
    name:
        Integer-model op name (trace key).
    threshold:
        A fixed integer ``theta`` (the attention LIF; kept as a buffer), or a callable
        returning the per-channel ``theta`` of a synaptic layer at call time.
    channel_axes:
        Trailing singleton axes after the channel axis of one time step (2 for
        ``[B, C, H, W]``, 0 for ``[B, N, C]``).
    gain:
        Factor from the input's units to integer current units.
    lif:
        The float LIF it replaces (threshold ``V_th`` and surrogate for the gradient).
    recorder:
        Trace store shared with the owning :class:`FakeQuantModel` (a private one if omitted).
    """

    def __init__(
        self,
        *,
        name: str,
        threshold: int | Callable[[], torch.Tensor],
        channel_axes: int,
        gain: float,
        lif: LIFNode,
        cfg: NumericsConfig,
        recorder: _Recorder | None = None,
    ) -> None:
        super().__init__()
        self.name, self.channel_axes, self.gain, self.cfg = name, channel_axes, gain, cfg
        self.v_threshold, self.surrogate, self.alpha = lif.v_threshold, lif.surrogate, lif.alpha
        if callable(threshold):
            object.__setattr__(self, "_source", threshold)
        else:
            self.register_buffer("fixed_threshold", torch.tensor(float(threshold), dtype=torch.float64))
            object.__setattr__(self, "_source", lambda: self.fixed_threshold)
        object.__setattr__(self, "_recorder", recorder if recorder is not None else _Recorder())

    def threshold(self) -> torch.Tensor:
        """The current ``theta`` (scalar or per channel)."""
        return self._source()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        x = _ste_round(x.double() * self.gain) if self.gain != 1.0 else x.double()
        x = torch.clamp(x, cfg.membrane_min, cfg.membrane_max)
        theta = self.threshold().double()
        theta = theta.view((-1,) + (1,) * self.channel_axes) if theta.dim() else theta
        to_float = self.v_threshold / theta  # maps h - theta back to the float model's H - V_th
        step = 2.0**cfg.leak_shift
        v = torch.zeros_like(x[0])
        spikes = []
        for x_t in x:
            h = v + _ste_floor((x_t - v) / step)
            s = SurrogateSpike.apply((h - theta) * to_float, self.surrogate, self.alpha)
            v = h * (1.0 - s.detach())
            spikes.append(s)
        out = torch.stack(spikes)
        self._recorder.put(self.name + ".current", x)
        self._recorder.put(self.name, out)
        return out


class _QuantHead(nn.Module):
    """Sum-pool head with one per-tensor scale (docs/numerics.md section 8).

    Returns float-scaled logits ``L * alpha_h / (T N 2^F)`` (usable with a float loss);
    the integer logits ``L`` are recorded as ``head``.
    """

    def __init__(self, head: SumPoolHead, *, tokens: int, cfg: NumericsConfig, recorder: _Recorder) -> None:
        super().__init__()
        self.linear, self.tokens, self.cfg = head.linear, tokens, cfg
        object.__setattr__(self, "_recorder", recorder)

    def quantize(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(Wq, b_h, alpha_h)``."""
        w = self.linear.weight.double()
        amax = w.detach().abs().max()
        alpha = amax / self.cfg.weight_max if amax > 0 else torch.ones((), dtype=torch.float64)
        w_q = torch.clamp(_ste_round(w / alpha), -self.cfg.weight_max, self.cfg.weight_max)
        b = self.linear.bias.double() if self.linear.bias is not None else torch.zeros(w.shape[0]).double()
        return w_q, _ste_round(b * (self.tokens * 2.0**self.cfg.frac_bits) / alpha), alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w_q, b_q, alpha = self.quantize()
        pooled = x.double().sum(dim=(0, 2))
        logits = pooled @ w_q.t() * 2.0**self.cfg.frac_bits + b_q
        self._recorder.put("head.pooled", pooled)
        self._recorder.put("head", logits)
        return logits * (alpha.detach() / (self.tokens * 2.0**self.cfg.frac_bits))


# --------------------------------------------------------------------------- the fake-quant model
class FakeQuantModel(nn.Module):
    """Float64 emulation of the integer model around a copy of a :class:`HwSpikeformer` or
    :class:`SjSpikformer` (the latter set up by :func:`golden.interop.quantize.install_sj_fake_quant`).

    Parameters
    ----------
    model:
        Trained float model (not modified: a deep copy is quantized).
    numerics:
        Widths; default :func:`numerics_for` ``(model)``.
    rounding:
        ``"nearest"`` (default): every weight rounded to the nearest integer; ``"calibrated"``:
        the weights and biases of the synaptic layers chosen for their currents on
        ``calibration`` (:func:`golden.quantize_rounding.calibrate_rounding`, docs/numerics.md
        section 12.1). Either way the integer model has the same form.
    calibration:
        Integer model inputs (training-split samples) for ``"calibrated"``.

    Attributes
    ----------
    net:
        The modified copy; its original conv/linear/BN parameters live in ``quantizers``
        (trainable by quantization-aware fine-tuning).
    rounding:
        How the weights were rounded (``{"method": ...}``, recorded in reports and exports).
    """

    def __init__(
        self,
        model: HwSpikeformer | SjSpikformer,
        numerics: NumericsConfig | None = None,
        *,
        rounding: str = "nearest",
        calibration: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        if rounding not in ROUNDINGS:
            raise QuantizationError(f"rounding must be one of {ROUNDINGS}, not {rounding!r}")
        if (rounding == "calibrated") != (calibration is not None):
            raise QuantizationError("calibration inputs are needed for, and only for, rounding='calibrated'")
        self.rounding: dict[str, Any] = {"method": "nearest"}
        cfg = numerics or numerics_for(model)
        expected = numerics_for(
            model, weight_bits=cfg.weight_bits, frac_bits=cfg.frac_bits, membrane_bits=cfg.membrane_bits
        )
        if expected != cfg:
            raise QuantizationError(
                f"numerics {cfg} do not fit the model: leak_shift and input_bits must be "
                f"{expected.leak_shift} and {expected.input_bits}"
            )
        self.numerics = cfg
        self.net = copy.deepcopy(model).double().eval()
        self._recorder = _Recorder()
        self.quantizers = nn.ModuleList()
        self._hook_names: dict[str, str] = {}
        if isinstance(self.net, SjSpikformer):
            from .interop.quantize import install_sj_fake_quant

            install_sj_fake_quant(self)
        else:
            self._install_hw()
        if calibration is not None:
            from .quantize_rounding import calibrate_rounding

            calibrate_rounding(self, calibration)

    def _install_hw(self) -> None:
        """Replace the synapses, neurons and head of a :class:`HwSpikeformer` copy by integer forms."""
        net, cfg = self.net, self.numerics
        for i, stage in enumerate(net.tokenizer):
            # The float model divides its input by input_max: that constant folds into layer 0.
            in_scale = float(net.cfg.input_max) if i == 0 else 1.0
            if isinstance(stage, SewBlock):
                self._replace_sew(f"tokenizer.{i}", stage, in_scale=in_scale)
            else:
                self._replace_synapse(f"tokenizer.{i}", stage, in_scale=in_scale)
        for b, block in enumerate(net.blocks):
            for j, attn in enumerate(block.attn):
                base = f"blocks.{b}.attn.{j}"
                for part in ("q", "k", "v", "proj"):
                    self._replace_synapse(f"{base}.{part}", getattr(attn, part))
                theta = attention_threshold(attn.attn_lif.v_threshold, attn.scale, cfg)
                attn.attn_lif = IntLIF(
                    name=f"{base}.attention",
                    threshold=theta,
                    channel_axes=0,
                    gain=2.0**cfg.frac_bits / attn.scale,
                    lif=attn.attn_lif,
                    cfg=cfg,
                    recorder=self._recorder,
                )
            for part in ("fc1", "fc2"):
                self._replace_synapse(f"blocks.{b}.mlp.{part}", getattr(block.mlp, part))
        net.head = _QuantHead(
            net.head, tokens=net.cfg.timesteps * net.cfg.num_tokens, cfg=cfg, recorder=self._recorder
        )
        self._install_value_hooks()

    def _replace_synapse(self, name: str, layer: ConvBNLIF | LinearBNLIF, *, in_scale: float = 1.0) -> None:
        is_conv = isinstance(layer, ConvBNLIF)
        float_layer = layer.conv if is_conv else layer.linear
        quant = self._new_quantizer(name, float_layer, layer.bn, layer.lif, in_scale=in_scale)
        if is_conv:
            layer.conv = _QuantConv(quant)
        else:
            layer.linear = _QuantLinear(quant)
        layer.bn = _QuantAffine(quant)
        layer.lif = IntLIF(
            name=name,
            threshold=lambda q=quant: q.params.threshold,
            channel_axes=2 if is_conv else 0,
            gain=1.0,
            lif=layer.lif,
            cfg=self.numerics,
            recorder=self._recorder,
        )

    def _replace_sew(self, name: str, block: SewBlock, *, in_scale: float) -> None:
        """The two convs and the shortcut of a SEW block (both readers of the block input)."""
        self._replace_synapse(f"{name}.conv1", block.conv1, in_scale=in_scale)
        self._replace_synapse(f"{name}.conv2", block.conv2)
        shortcut = block.shortcut
        if shortcut is None:
            return
        quant = self._new_quantizer(
            f"{name}.shortcut", _PooledConv(shortcut), shortcut.bn, shortcut.lif, in_scale=in_scale
        )
        shortcut.pool, shortcut.conv, shortcut.bn = None, _QuantConv(quant), _QuantAffine(quant)
        shortcut.lif = IntLIF(
            name=f"{name}.shortcut",
            threshold=lambda q=quant: q.params.threshold,
            channel_axes=2,
            gain=1.0,
            lif=shortcut.lif,
            cfg=self.numerics,
            recorder=self._recorder,
        )

    def _new_quantizer(
        self, name: str, layer: nn.Module, bn: nn.Module, lif: LIFNode, *, in_scale: float = 1.0
    ) -> _SynapseQuantizer:
        """A registered :class:`_SynapseQuantizer` of ``layer`` + ``bn`` (thresholds of ``lif``)."""
        quant = _SynapseQuantizer(name, layer, bn, lif, self.numerics, in_scale)  # type: ignore[arg-type]
        self.quantizers.append(quant)
        return quant

    def _install_value_hooks(self) -> None:
        """Record the non-LIF values (pool, tokens, residual adds) under their integer-model op names."""
        net, rec = self.net, self._recorder

        def after(name: str) -> Callable[..., None]:
            return lambda module, args, out: rec.put(name, out)

        def before(name: str) -> Callable[..., None]:
            return lambda module, args: rec.put(name, args[0])

        for i, stage in enumerate(net.tokenizer):
            if isinstance(stage, SewBlock):
                stage.register_forward_hook(after(f"tokenizer.{i}.add"))
            elif stage.pool is not None:
                stage.pool.register_forward_hook(after(f"tokenizer.{i}.pool"))
        first = net.embed if net.embed is not None else net.blocks[0] if len(net.blocks) else net.head
        first.register_forward_pre_hook(before("tokens"))
        if net.embed is not None:
            net.embed.register_forward_hook(after("embed"))
        for b, block in enumerate(net.blocks):
            stages = [*block.attn, block.mlp]
            for j in range(len(block.attn)):
                stages[j + 1].register_forward_pre_hook(before(f"blocks.{b}.attn.{j}.add"))
            block.register_forward_hook(after(f"blocks.{b}.mlp.add"))

    def refresh(self) -> None:
        """Recompute every layer's integer parameters from the (possibly fine-tuned) float ones."""
        for quant in self.quantizers:
            quant.refresh()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Float-scaled logits of integer-valued input ``x`` (event counts clipped to ``input_max``)."""
        self.refresh()
        x = x.double()
        if bool((x != torch.round(x)).any()) or bool((x < 0).any()):
            raise ValueError("FakeQuantModel input must hold non-negative integers (pixels or event counts)")
        return self.net(torch.clamp(x, 0.0, float(self.numerics.input_max)))

    @torch.no_grad()
    def trace(self, x: torch.Tensor) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Integer logits and the trace of every op, keyed and laid out as :meth:`IntModel.run`."""
        was_training = self.training
        self.eval()
        self._recorder.store = {}
        try:
            self.forward(x)
            store = self._recorder.store
        finally:
            self._recorder.store = None
            self.train(was_training)
        trace = {}
        for name, value in store.items():
            array = value.cpu().numpy()
            rounded = np.round(array)
            if not (rounded == array).all():
                raise AssertionError(f"fake-quant value {name!r} is not an exact integer")
            trace[name] = rounded.astype(np.int64)
        return trace["head"], trace

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.forward(x).argmax(dim=1)


# --------------------------------------------------------------------------- to the integer model
def _ints(t: torch.Tensor, what: str) -> np.ndarray:
    array = t.detach().cpu().double().numpy()
    rounded = np.round(array)
    if not (rounded == array).all():
        raise AssertionError(f"{what} is not integer-valued")
    return rounded.astype(np.int64)


@torch.no_grad()
def to_int_model(fq: FakeQuantModel, *, event: bool = False) -> IntModel:
    """The :class:`IntModel` with exactly the integers ``fq`` computes with.

    ``event`` records whether inputs are event frames ``[B, T, C, H, W]`` (else static images).
    """
    fq.refresh()
    net, cfg = fq.net, fq.numerics
    if isinstance(net, SjSpikformer):
        return _sj_int_model(fq, event=event)
    quants = {q.name: q for q in fq.quantizers}

    def synapse(name: str, kind: str, inputs: tuple[str, ...], **params: int) -> Op:
        p = quants[name].params
        return Op(
            name=name,
            kind=kind,
            inputs=inputs,
            params=params,
            lif=f"{name}.lif",
            tensors={
                "weight": _ints(p.weight, f"{name} weight"),
                "bias": _ints(p.bias, f"{name} bias"),
                "threshold": _ints(p.threshold, f"{name} threshold"),
            },
            reference={"scale": [float(a) for a in p.scale]},
        )

    def conv(name: str, source: str) -> Op:
        layer = quants[name].layer
        if (
            layer.dilation != (1, 1)
            or layer.groups != 1
            or layer.stride[0] != layer.stride[1]
            or layer.padding[0] != layer.padding[1]
        ):
            raise QuantizationError(f"{name}: only square stride/padding, no dilation or groups")
        return synapse(name, "conv", (source,), stride=layer.stride[0], padding=layer.padding[0])

    ops, stream = [], "input"
    for i, stage in enumerate(net.tokenizer):
        if isinstance(stage, SewBlock):
            ops.extend(_sew_ops(f"tokenizer.{i}", stage, stream, conv))
            stream = f"tokenizer.{i}.add"
            continue
        ops.append(conv(f"tokenizer.{i}", stream))
        stream = f"tokenizer.{i}"
        if stage.pool is not None:
            pool = stage.pool
            ops.append(
                Op(
                    name=f"{stream}.pool",
                    kind="maxpool",
                    inputs=(stream,),
                    params={"kernel": pool.kernel, "stride": pool.stride, "padding": pool.padding},
                )
            )
            stream = f"{stream}.pool"
    ops.append(Op(name="tokens", kind="tokens", inputs=(stream,)))
    stream = "tokens"
    if net.embed is not None:
        spikes = _ints(net.embed.spikes(), "embed spikes")
        ops.append(Op(name="embed", kind="add_const", inputs=(stream,), tensors={"spikes": spikes}))
        stream = "embed"
    for b, block in enumerate(net.blocks):
        for j, attn in enumerate(block.attn):
            base = f"blocks.{b}.attn.{j}"
            ops.extend(synapse(f"{base}.{p}", "linear", (stream,)) for p in ("q", "k", "v"))
            theta = int(attn.attn_lif.threshold())
            ops.append(
                Op(
                    name=f"{base}.attention",
                    kind="attention",
                    inputs=tuple(f"{base}.{p}" for p in "qkv"),
                    params={"grouping": attn.grouping, "heads": attn.heads, "threshold": theta},
                    lif=f"{base}.attn_lif",
                    reference={"scale": float(attn.scale)},
                )
            )
            ops.append(synapse(f"{base}.proj", "linear", (f"{base}.attention",)))
            ops.append(Op(name=f"{base}.add", kind="add", inputs=(stream, f"{base}.proj")))
            stream = f"{base}.add"
        ops.append(synapse(f"blocks.{b}.mlp.fc1", "linear", (stream,)))
        ops.append(synapse(f"blocks.{b}.mlp.fc2", "linear", (f"blocks.{b}.mlp.fc1",)))
        ops.append(Op(name=f"blocks.{b}.mlp.add", kind="add", inputs=(stream, f"blocks.{b}.mlp.fc2")))
        stream = f"blocks.{b}.mlp.add"
    w_q, b_q, alpha = net.head.quantize()
    tokens = net.head.tokens
    ops.append(
        Op(
            name="head",
            kind="head",
            inputs=(stream,),
            tensors={"weight": _ints(w_q, "head weight"), "bias": _ints(b_q, "head bias")},
            reference={"logit_scale": float(alpha) / (tokens * 2**cfg.frac_bits)},
        )
    )
    mcfg = net.cfg
    return IntModel(
        numerics=cfg,
        input_shape=(mcfg.in_channels, mcfg.img_size, mcfg.img_size),
        timesteps=mcfg.timesteps,
        num_classes=mcfg.num_classes,
        ops=tuple(ops),
        preset=mcfg.name,
        model_config=_config_dict(mcfg),
        event=event,
    )


def _sew_ops(base: str, block: SewBlock, source: str, conv: Callable[[str, str], Op]) -> list[Op]:
    """The ops of a SEW block reading ``source``: shortcut conv (first, so the block input dies
    after ``conv1``), ``conv1``, ``conv2`` and the ``add`` of ``conv2`` and the shortcut."""
    ops, skip = [], source
    if block.shortcut is not None:
        ops.append(conv(f"{base}.shortcut", source))
        skip = f"{base}.shortcut"
    ops.append(conv(f"{base}.conv1", source))
    ops.append(conv(f"{base}.conv2", f"{base}.conv1"))
    ops.append(Op(name=f"{base}.add", kind="add", inputs=(f"{base}.conv2", skip)))
    return ops


def _sj_int_model(fq: FakeQuantModel, *, event: bool) -> IntModel:
    from .interop.quantize import sj_int_ops

    net, cfg = fq.net, fq.numerics
    w_q, b_q, alpha = net.head.quantize()
    ops = sj_int_ops(fq)
    head = Op(
        name="head",
        kind="head",
        inputs=(ops[-1].name,),
        tensors={"weight": _ints(w_q, "head weight"), "bias": _ints(b_q, "head bias")},
        reference={"logit_scale": float(alpha) / (net.head.tokens * 2**cfg.frac_bits)},
    )
    mcfg = net.cfg
    return IntModel(
        numerics=cfg,
        input_shape=(mcfg.in_channels, mcfg.img_size, mcfg.width),
        timesteps=mcfg.timesteps,
        num_classes=mcfg.num_classes,
        ops=(*ops, head),
        preset=mcfg.name,
        model_config=_config_dict(mcfg),
        event=event,
    )


def _config_dict(cfg: Any) -> dict[str, Any]:
    if isinstance(cfg, HwSpikeformerConfig):  # later fields at their defaults left out
        return cfg.to_dict()
    return dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else {}


if __name__ == "__main__":  # pragma: no cover - the CLI lives in golden.quantize_run
    import sys

    from golden.quantize_run import main

    sys.exit(main())
