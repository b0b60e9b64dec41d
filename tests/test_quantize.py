"""Quantization: BN folding, PTQ, the fake-quant emulation, QAT and the end-to-end flow.

The exact promise (docs/numerics.md section 4): the fake-quant model and the integer model
produce identical values at every layer. The accuracy promise: integer top-1 within 1 point
of the float model, on hw-tiny/digits and on a DVS-shaped model trained on synthetic events
with joint and divided attention. Trained models come from brief in-test training (seeded),
shared with the other suites through the conftest fixtures.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Subset

from contract import numerics as nm
from contract.intmodel import compare_traces, quantize_input
from contract.manifest import check_test_vectors, load_export, make_test_vectors, write_export
from golden.checkpoint import load_model
from golden.data import build_dataset
from golden.models import create_model
from golden.neuron import LIFNode, lif_loop
from golden.quantize import (
    FakeQuantModel,
    IntLIF,
    QuantizationError,
    channel_scales,
    fold_batchnorm,
    numerics_for,
    quantize_layer,
    to_int_model,
)
from golden.quantize_run import evaluate_quantization, finetune_qat, main

from trained_models import DVS, train_briefly


@pytest.fixture(autouse=True)
def _few_threads() -> None:
    torch.set_num_threads(1)


def random_bn_stats(model: nn.Module, seed: int) -> nn.Module:
    """Untrained model with BatchNorm statistics that make every layer fire."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) * 2 + 1)
            m.bias.data.copy_(torch.rand(m.num_features, generator=g))
    return model.eval()


@pytest.fixture(scope="session")
def digits_test() -> torch.utils.data.Dataset:
    return build_dataset("digits", None, "test", timesteps=4)


@pytest.fixture(scope="session")
def tiny(tiny_checkpoint: Path) -> tuple[nn.Module, Path]:
    """hw-tiny trained briefly on digits (the suite's shared checkpoint), and its path."""
    return load_model(tiny_checkpoint)[0], tiny_checkpoint


def assert_quantization_holds(
    model: nn.Module, dataset: torch.utils.data.Dataset, *, event: bool, export_to: Path
) -> None:
    fq = FakeQuantModel(model)
    int_model = to_int_model(fq, event=event)
    report = evaluate_quantization(model, fq, int_model, DataLoader(dataset, batch_size=100))
    assert report.samples == len(dataset)
    assert report.fakequant_equals_integer, report.first_mismatch
    assert all(s.fq_mismatches == 0 for s in report.layers)
    assert report.fakequant_top1 == report.integer_top1
    assert abs(report.drop) <= 1.0, report.table()
    # The quantized model still computes something: every LIF layer fires, none saturates.
    for s in report.layers:
        if s.int_rate is not None:
            assert 0.0 < s.int_rate < 0.9, (s.name, s.int_rate)
            assert s.agreement > 0.9, (s.name, s.agreement)
    # The model passes the overflow proof and survives the export round trip bit for bit.
    x, y = next(iter(DataLoader(dataset, batch_size=4)))
    loaded = load_export(write_export(int_model, export_to, vectors=make_test_vectors(int_model, x, y)))
    assert check_test_vectors(loaded) == 4


# ----------------------------------------------------------------------------- folding and scales
def test_fold_batchnorm_equals_eval_batchnorm() -> None:
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(3, 5, 3, bias=False).double(), random_bn_stats(nn.BatchNorm2d(5), 1).double()
    x = torch.rand(2, 3, 6, 6, dtype=torch.float64) * 255
    w, b = fold_batchnorm(conv.weight, bn, in_scale=255.0)
    with torch.no_grad():
        expected = bn(conv(x / 255.0))
        folded = nn.functional.conv2d(x, w) + b.view(1, -1, 1, 1)
    assert torch.allclose(expected, folded, rtol=1e-12, atol=1e-12)


def test_layer_quantization_rules() -> None:
    torch.manual_seed(1)
    cfg = nm.NumericsConfig()
    linear, bn = nn.Linear(16, 6, bias=False), random_bn_stats(nn.BatchNorm1d(6), 2)
    with torch.no_grad():
        linear.weight[3] = 0.0  # a dead channel
    q = quantize_layer(linear.weight, bn, v_threshold=1.0, cfg=cfg)
    w_fold, b_fold = fold_batchnorm(linear.weight, bn)
    assert (q.scale > 0).all()
    assert (q.weight == torch.round(q.weight)).all() and q.weight.abs().max() <= 127
    live = [c for c in range(6) if c != 3]
    assert (q.weight[live].abs().amax(dim=1) == 127).all()  # symmetric per channel: the max maps to Q
    assert torch.allclose(q.weight[live] * q.scale[live, None], w_fold[live], atol=float(q.scale.max()) / 2)
    assert q.scale[3] == 1.0 / 127 and (q.weight[3] == 0).all()
    assert torch.equal(q.bias, torch.round(b_fold * 16 / q.scale))
    assert torch.equal(q.threshold, torch.clamp(torch.round(16 / q.scale), min=1))
    assert torch.equal(channel_scales(w_fold, weight_max=127, v_threshold=1.0), q.scale)


def test_numerics_follow_the_model() -> None:
    model = create_model("hw-tiny", input_bits=5)
    cfg = numerics_for(model, frac_bits=6)
    assert (cfg.leak_shift, cfg.input_bits, cfg.frac_bits) == (1, 5, 6)
    model.blocks[0].mlp.fc1.lif = LIFNode(tau=3.0)
    with pytest.raises(QuantizationError, match=r"blocks\.0\.mlp\.fc1\.lif.*power of two"):
        numerics_for(model)
    model.blocks[0].mlp.fc1.lif = LIFNode(tau=2.0, learnable_tau=True)
    with pytest.raises(QuantizationError, match="fixed power of two"):
        numerics_for(model)
    with pytest.raises(QuantizationError, match="leak_shift and input_bits"):
        FakeQuantModel(create_model("hw-tiny"), nm.NumericsConfig(leak_shift=2))
    with pytest.raises(QuantizationError, match="Hardware Spikeformer"):
        numerics_for(nn.Linear(2, 2))


# ----------------------------------------------------------------------------- the integer LIF emulation
@pytest.mark.parametrize("channel_axes", [0, 2])
def test_int_lif_equals_numerics_lif(channel_axes: int) -> None:
    cfg = nm.NumericsConfig(membrane_bits=12)
    g = torch.Generator().manual_seed(3)
    shape = (6, 3, 4, 5, 5) if channel_axes else (6, 3, 7, 4)
    x = torch.randint(-3000, 3000, shape, generator=g).double()  # beyond +-2047: saturation
    theta = torch.randint(1, 600, (4,), generator=g).double()
    theta[0] = 1.0
    lif = IntLIF(
        name="t", threshold=lambda: theta, channel_axes=channel_axes, gain=1.0, lif=LIFNode(), cfg=cfg
    )
    spikes = lif(x)
    t_np = theta.numpy().astype(np.int64).reshape((-1,) + (1,) * channel_axes)
    ref = nm.lif(x.numpy().astype(np.int64), t_np, leak_shift=1, membrane_bits=12)
    assert (spikes.numpy() == ref).all()
    assert 0 < ref.mean() < 1


def test_int_lif_gradient_equals_float_lif_gradient() -> None:
    """Without flooring (currents multiples of 2^T), the STE LIF is the float LIF in scaled units."""
    cfg = nm.NumericsConfig()
    theta = 64.0
    g = torch.Generator().manual_seed(4)
    x_int = (torch.randint(-8, 24, (4, 50), generator=g) * 16).double().requires_grad_(True)
    lif = IntLIF(
        name="t", threshold=lambda: torch.tensor(theta), channel_axes=0, gain=1.0, lif=LIFNode(), cfg=cfg
    )
    weights = torch.rand(4, 50, generator=g, dtype=torch.float64)
    (lif(x_int) * weights).sum().backward()
    x_float = (x_int.detach() / theta).requires_grad_(True)
    spikes = lif_loop(x_float, tau=2.0, v_threshold=1.0)
    (spikes * weights).sum().backward()
    assert torch.equal(lif(x_int).detach(), spikes.detach())
    assert torch.allclose(x_int.grad * theta, x_float.grad, rtol=1e-10, atol=1e-12)
    assert x_int.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- fake-quant == integer
@pytest.mark.parametrize("attention", ["joint", "divided", "spatial"])
def test_fake_quant_equals_integer_on_every_grouping(attention: str) -> None:
    model = random_bn_stats(create_model("hw-tiny", attention=attention, embed_dim=32), seed=5)
    fq = FakeQuantModel(model)
    int_model = to_int_model(fq)
    x = torch.randint(0, 256, (12, 1, 8, 8)).float()
    fq_logits, fq_trace = fq.trace(x)
    int_logits, int_trace = int_model.run(quantize_input(x, input_max=255), trace=True)
    assert list(fq_trace) == list(int_trace)  # the same values, named the same, in op order
    assert compare_traces(int_trace, fq_trace) is None
    assert (fq_logits == int_logits).all()
    groupings = [op.params["grouping"] for op in int_model.ops if op.kind == "attention"]
    assert (
        groupings
        == {"joint": ["joint"] * 2, "divided": ["temporal", "spatial"] * 2, "spatial": ["spatial"] * 2}[
            attention
        ]
    )
    fires = [int_trace[op.name].mean() for op in int_model.ops if op.kind in ("conv", "linear", "attention")]
    assert sum(f > 0 for f in fires) >= len(fires) - 2  # the comparison is not between silent networks


def test_event_counts_are_clipped_alike() -> None:
    model = random_bn_stats(create_model("hw-tiny", **{**DVS, "img_size": 16}), seed=6)
    fq = FakeQuantModel(model)
    int_model = to_int_model(fq, event=True)
    top = int_model.numerics.input_max
    assert top == 7
    x = torch.randint(0, 2 * top, (4, 4, 2, 16, 16)).float()  # counts up to 13, clipped to 7
    fq_logits, fq_trace = fq.trace(x)
    int_logits, int_trace = int_model.run(quantize_input(x, input_max=top), trace=True)
    assert compare_traces(int_trace, fq_trace) is None
    assert (fq.trace(x.clamp(max=top))[0] == fq_logits).all()
    assert not (fq.trace(x.clamp(max=top - 1))[0] == fq_logits).all()  # the clip point matters


def test_high_precision_fake_quant_tracks_the_float_model(digits_test: torch.utils.data.Dataset) -> None:
    """With 16-bit weights and 12 fractional bits the emulation is the float model up to rounding,
    so the float and integer spikes agree almost everywhere: the structure is the same."""
    model = random_bn_stats(create_model("hw-tiny", attention="divided"), seed=7)
    cfg = numerics_for(model, weight_bits=16, frac_bits=12, membrane_bits=40)
    fq = FakeQuantModel(model, cfg)
    report = evaluate_quantization(model, fq, to_int_model(fq), [next(iter(DataLoader(digits_test, 64)))])
    rates = {s.name: s.agreement for s in report.layers if s.agreement is not None}
    assert len(rates) == 2 + 2 * (2 * 5 + 2)
    assert min(rates.values()) > 0.995, rates


# ----------------------------------------------------------------------------- trained models
@pytest.mark.slow
def test_hw_tiny_digits_integer_matches_float(
    tiny: tuple[nn.Module, Path], digits_test: torch.utils.data.Dataset, tmp_path: Path
) -> None:
    assert len(digits_test) == 359  # the full test split
    assert_quantization_holds(tiny[0], digits_test, event=False, export_to=tmp_path / "export")


@pytest.mark.slow
@pytest.mark.parametrize("attention", ["joint", "divided"])
def test_dvs_synthetic_integer_matches_float(attention: str, tmp_path: Path) -> None:
    kw = dict(timesteps=4, size=32, num_classes=10)
    train = build_dataset("synthetic-events", None, "train", samples_per_class=60, **kw)
    test = build_dataset("synthetic-events", None, "test", samples_per_class=30, **kw)
    model = train_briefly("hw-tiny", train, epochs=8, seed=1, lr=1e-2, attention=attention, **DVS)
    assert_quantization_holds(model, test, event=True, export_to=tmp_path / "export")


@pytest.mark.slow
def test_qat_fine_tuning_keeps_the_integer_model_exact(
    tiny: tuple[nn.Module, Path], digits_test: torch.utils.data.Dataset
) -> None:
    fq = FakeQuantModel(tiny[0])
    before = to_int_model(fq)
    train = Subset(build_dataset("digits", None, "train", timesteps=4), range(96))
    losses = finetune_qat(fq, DataLoader(train, batch_size=32), epochs=1, lr=1e-3, log=lambda _: None)
    assert len(losses) == 1 and np.isfinite(losses[0])
    after = to_int_model(fq)
    changed = sum(
        int((a.tensors["weight"] != b.tensors["weight"]).sum())
        for a, b in zip(before.ops, after.ops, strict=True)
        if "weight" in a.tensors
    )
    assert changed > 0  # straight-through gradients reached the integer weights
    x = torch.stack([digits_test[i][0] for i in range(32)])
    fq_logits, fq_trace = fq.trace(x)
    assert compare_traces(after.run(quantize_input(x, input_max=255), trace=True)[1], fq_trace) is None


@pytest.mark.slow
def test_cli_quantizes_reports_and_exports(
    tiny: tuple[nn.Module, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "quant"
    assert (
        main(
            [
                "--checkpoint",
                str(tiny[1]),
                "--data-root",
                str(tmp_path / "data"),
                "--out",
                str(out),
                "--samples",
                "5",
                "--limit",
                "100",
                "--threads",
                "1",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "float" in printed and "integer" in printed
    assert "fake-quant == integer at every layer: yes" in printed
    report = json.loads((out / "quant_report.json").read_text())
    assert report["samples"] == 100 and report["fakequant_equals_integer"]
    assert {row["layer"] for row in report["layers"]} >= {"tokenizer.0", "blocks.1.mlp.fc2", "head"}
    assert (out / "quant_layers.csv").read_text().startswith("layer,kind,lif")
    assert "tokenizer.0" in (out / "overflow.txt").read_text()
    export = load_export(out / "export")
    assert check_test_vectors(export) == 5
    assert export.model.preset == "hw-tiny" and not export.model.event
    for file in [out / "quant_report.json", out / "export" / "manifest.json"]:
        assert str(tmp_path) not in file.read_text()  # no absolute paths in generated files
