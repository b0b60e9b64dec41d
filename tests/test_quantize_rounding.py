"""Calibrated weight rounding (golden.quantize_rounding, docs/numerics.md section 12.1).

The calibrated integers must lower the layer's current error below round-to-nearest (on the
calibration inputs and on fresh ones from the same distribution), stay integers within one
of ``W'/alpha`` and in ``[-Q, Q]``, and the fake-quant model must still equal the integer model.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from spikingjelly.activation_based.model.spikformer import Spikformer
from test_interop_spikingjelly import _fire
from test_quantize import random_bn_stats

from contract.intmodel import compare_traces, quantize_input
from golden.interop.spikingjelly import convert
from golden.models import create_model
from golden.quantize import FakeQuantModel, QuantizationError, to_int_model
from golden.quantize_rounding import InputMoments, calibrate_rounding, round_for_currents

Q = 127


@pytest.fixture(autouse=True)
def _few_threads() -> None:
    torch.set_num_threads(1)


def _patches(count: int, g: torch.Generator) -> torch.Tensor:
    """3x3 patches of a smooth 8-bit image: neighbouring pixels nearly equal, as in upsampled digits."""
    level = torch.randint(0, 256, (count, 1), generator=g).double()
    noise = torch.randint(-12, 13, (count, 9), generator=g).double()
    return torch.clamp(level + noise, 0, 255)


def _current_error(q: torch.Tensor, r: torch.Tensor, x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Mean squared current error per channel, in units of ``alpha``: ``((q - r) . x + shift)^2``."""
    return (((q - r) @ x.t() + shift.unsqueeze(1)) ** 2).mean(dim=1)


def test_calibrated_rounding_lowers_the_current_error_of_a_pixel_layer() -> None:
    g = torch.Generator().manual_seed(3)
    w = torch.randn(12, 9, generator=g, dtype=torch.float64)
    r = w / w.abs().amax(dim=1, keepdim=True) * Q  # per-channel scale: max |r| = Q
    calibration, fresh = _patches(4000, g), _patches(4000, g)
    moments = InputMoments(9)
    for part in calibration.split(1000):
        moments.add(part)
    q = round_for_currents(r, moments.covariance, weight_max=Q)
    nearest = torch.round(r)

    assert (q == torch.round(q)).all() and q.abs().max() <= Q
    assert ((q == torch.floor(r)) | (q == torch.ceil(r))).all()  # within one of W'/alpha
    assert (q != nearest).any()
    shift = -((q - r) @ moments.mean)  # bias correction, before its 2^F scaling
    none = torch.zeros(len(r), dtype=torch.float64)
    for x in (calibration, fresh):
        before = _current_error(nearest, r, x, none)
        after = _current_error(q, r, x, shift)
        assert (after <= before * 1.05).all()  # no channel gets noticeably worse
        assert after.sum() < 0.2 * before.sum(), (after.sum(), before.sum())
    # The search never ends above round-to-nearest on its own objective, channel by channel.
    cov = moments.covariance
    objective = lambda v: torch.einsum("oi,ij,oj->o", v - r, cov, v - r)  # noqa: E731
    assert (objective(q) <= objective(nearest) + 1e-9).all()


def test_calibrated_rounding_respects_the_weight_range() -> None:
    r = torch.tensor([[127.0, -127.0, 126.6, -126.6, 0.5]], dtype=torch.float64)
    cov = torch.ones(5, 5, dtype=torch.float64)  # only the sum of the errors counts
    q = round_for_currents(r, cov, weight_max=Q)
    assert q.abs().max() <= Q and (q == torch.round(q)).all()
    assert q[0, 0] == 127 and q[0, 1] == -127  # integers stay put: the bound is not crossed
    assert abs(float((q - r).sum())) <= 0.5  # the rounding errors cancel


def _check_calibrated(fq: FakeQuantModel, x: torch.Tensor, *, event: bool, input_max: int) -> None:
    int_model = to_int_model(fq, event=event)
    fq_logits, fq_trace = fq.trace(x)
    int_logits, int_trace = int_model.run(quantize_input(x, input_max=input_max), trace=True)
    assert compare_traces(int_trace, fq_trace) is None
    assert (fq_logits == int_logits).all()
    for op in int_model.ops:
        if "weight" in op.tensors:
            assert np.abs(op.tensors["weight"]).max() <= fq.numerics.weight_max
    moved = 0
    for quant in fq.quantizers:
        if quant.name in fq.rounding["layers"]:
            ratio = quant.ratio()
            weight = quant.params.weight.detach()
            assert ((weight - ratio).abs() < 1).all()  # floor or ceil of W'/alpha
            moved += int((weight != torch.round(ratio)).sum())
    assert moved > 0


def test_calibrated_hw_model_equals_its_integer_model() -> None:
    model = random_bn_stats(create_model("hw-tiny", attention="joint", embed_dim=32), seed=5)
    g = torch.Generator().manual_seed(1)
    calibration = torch.randint(0, 256, (24, 1, 8, 8), generator=g).float()
    fq = FakeQuantModel(model, rounding="calibrated", calibration=calibration)
    assert fq.rounding["method"] == "calibrated" and fq.rounding["calibration_samples"] == 24
    assert "tokenizer.0" in fq.rounding["layers"] and "blocks.1.mlp.fc2" in fq.rounding["layers"]
    x = torch.randint(0, 256, (12, 1, 8, 8), generator=g).float()
    _check_calibrated(fq, x, event=False, input_max=255)
    nearest = FakeQuantModel(model)
    assert nearest.rounding == {"method": "nearest"}
    assert not torch.equal(nearest.quantizers[0].refresh().weight, fq.quantizers[0].params.weight)
    # Only the named layers move; the others are round-to-nearest again.
    assert calibrate_rounding(fq, calibration, layers={"tokenizer.0"})["layers"] == ["tokenizer.0"]
    first, *rest = fq.quantizers
    assert first.weight_offset is not None and all(q.weight_offset is None for q in rest)
    for mine, reference in zip(rest, nearest.quantizers[1:], strict=True):
        assert torch.equal(mine.refresh().weight, reference.refresh().weight)
        assert torch.equal(mine.params.bias, reference.params.bias)
    _check_calibrated(fq, x, event=False, input_max=255)


def test_calibrated_sj_model_equals_its_integer_model() -> None:
    kw = dict(
        img_size_h=16, img_size_w=16, patch_size=4, embed_dims=32, num_heads=4, mlp_ratio=2.0, depths=1, T=2
    )
    torch.manual_seed(0)
    sj = Spikformer(num_classes=5, in_channels=1, **kw)
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (6, 1, 16, 16), generator=g).float()
    _fire(sj, x[:4].unsqueeze(0).repeat(2, 1, 1, 1, 1), seed=2)
    model = convert(sj).model
    fq = FakeQuantModel(model, rounding="calibrated", calibration=x[:4])
    assert fq.rounding["layers"][0] == "stem.0"
    _check_calibrated(fq, x[4:], event=False, input_max=255)


def test_rounding_option_is_checked() -> None:
    model = random_bn_stats(create_model("hw-tiny", embed_dim=32), seed=5)
    with pytest.raises(QuantizationError, match="rounding"):
        FakeQuantModel(model, rounding="stochastic")
    with pytest.raises(QuantizationError, match="calibration"):
        FakeQuantModel(model, rounding="calibrated")
    with pytest.raises(QuantizationError, match="calibration"):
        FakeQuantModel(model, calibration=torch.zeros(1, 1, 8, 8))
