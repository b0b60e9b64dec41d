"""SpikingJelly's Spikformer -> the project's model: same spikes at every neuron, refusals, CLI.

The SpikingJelly models are untrained, with weights and BatchNorm statistics set so that
every neuron layer fires on part of its inputs (neither never nor always): otherwise
comparing spikes would mostly compare zeros.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn as nn
from spikingjelly.activation_based import functional, neuron, surrogate
from spikingjelly.activation_based.model.maxformer import MaxFormer
from spikingjelly.activation_based.model.qkformer import QKFormer
from spikingjelly.activation_based.model.spike_driven_transformer import SpikeDrivenTransformer
from spikingjelly.activation_based.model.spikformer import Spikformer

from golden.checkpoint import load_model
from golden.eval import run as eval_run
from golden.interop.spikingjelly import ConversionError, build_spikingjelly, convert, main
from golden.models import create_model
from golden.quantize import FakeQuantModel, QuantizationError, numerics_for, to_int_model


def _fire(sj: nn.Module, x_seq: torch.Tensor, seed: int) -> nn.Module:
    """Weights of unit gain and BatchNorm statistics of ``x_seq`` itself, biases near threshold."""
    g = torch.Generator().manual_seed(seed)
    for m in sj.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            fan_in = m.weight[0].numel()
            m.weight.data.copy_(torch.randn(m.weight.shape, generator=g) / fan_in**0.5)
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # one train-mode pass: running statistics = the batch's
    sj.train()
    functional.reset_net(sj)
    with torch.no_grad():
        sj(x_seq)
        for m in sj.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                # Token layers sit higher, so Q, K and V are dense enough for the attention to fire.
                shift = 0.8 if isinstance(m, nn.BatchNorm1d) else 0.2
                m.bias.copy_(torch.rand(m.num_features, generator=g) * 0.8 + shift)
    functional.reset_net(sj)
    return sj.eval()


def _input(kw: dict[str, Any], batch: int, event: bool, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(project input [B, (T,) C, H, W], SpikingJelly input)``."""
    g = torch.Generator().manual_seed(seed)
    shape = (kw["in_channels"], kw["img_size_h"], kw["img_size_w"])
    if event:
        x = torch.randint(0, 4, (batch, kw["T"], *shape), generator=g).float()
        return x, x.transpose(0, 1).contiguous()
    x = torch.rand((batch, *shape), generator=g) * 2 - 0.5
    return x, x


def _spikes(model: nn.Module, names: list[str], run: Any) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    hooks = [
        model.get_submodule(n).register_forward_hook(lambda _m, _i, y, n=n: out.__setitem__(n, y.detach()))
        for n in names
    ]
    try:
        with torch.no_grad():
            out["logits"] = run()
    finally:
        for h in hooks:
            h.remove()
    return out


CASES = {
    "p4-T1-static": dict(
        T=1,
        in_channels=1,
        img_size_h=16,
        img_size_w=16,
        patch_size=4,
        embed_dims=16,
        num_heads=1,
        mlp_ratio=2.0,
        depths=1,
    ),
    "p4-T4-event": dict(
        T=4,
        in_channels=2,
        img_size_h=16,
        img_size_w=16,
        patch_size=4,
        embed_dims=32,
        num_heads=4,
        mlp_ratio=4.0,
        depths=2,
    ),
    "p16-T2-static": dict(
        T=2,
        in_channels=3,
        img_size_h=32,
        img_size_w=32,
        patch_size=16,
        embed_dims=32,
        num_heads=2,
        mlp_ratio=4.0,
        depths=1,
    ),
    "p16-T2-event-wide": dict(
        T=2,
        in_channels=2,
        img_size_h=32,
        img_size_w=48,
        patch_size=16,
        embed_dims=16,
        num_heads=2,
        mlp_ratio=2.0,
        depths=2,
    ),
    "p4-tau4-lif": dict(
        T=3,
        in_channels=3,
        img_size_h=16,
        img_size_w=16,
        patch_size=4,
        embed_dims=16,
        num_heads=2,
        mlp_ratio=2.0,
        depths=1,
        spiking_neuron=neuron.LIFNode,
        tau=4.0,
        surrogate_function=surrogate.ATan(),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_converted_model_spikes_like_spikingjelly(case: str) -> None:
    kw = CASES[case]
    event = "event" in case
    torch.manual_seed(0)
    sj = Spikformer(num_classes=5, **kw)
    x, x_sj = _input(kw, 3, event, seed=1)
    _fire(sj, x_sj if event else x_sj.unsqueeze(0).repeat(kw["T"], 1, 1, 1, 1), seed=2)
    conv = convert(sj)
    model = conv.model
    assert not model.training
    assert len(conv.neurons) == 5 + 5 * kw["depths"]

    x, x_sj = _input(kw, 3, event, seed=3)  # fresh samples: not the ones the statistics came from
    functional.reset_net(sj)
    ref = _spikes(sj, list(conv.neurons), lambda: sj(x_sj))
    got = _spikes(model, list(conv.neurons.values()), lambda: model.forward_steps(x))
    for sj_name, name in conv.neurons.items():
        a, b = ref[sj_name], got[name]
        assert a.shape == b.shape, sj_name
        assert torch.equal(a, b), f"{sj_name} / {name}: {int((a != b).sum())} spikes differ"
        rate = float(a.mean())
        assert 0.0 < rate < 1.0, f"{sj_name} fires at rate {rate}: the comparison would prove little"
    torch.testing.assert_close(got["logits"], ref["logits"], atol=1e-5, rtol=0)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref["logits"].mean(0), atol=1e-5, rtol=0)
        # The project's neurons start from rest at every call, like SpikingJelly after reset_net.
        torch.testing.assert_close(model(x), ref["logits"].mean(0), atol=1e-5, rtol=0)


def test_neuron_settings_and_surrogate_carry_over() -> None:
    conv = convert(Spikformer(**CASES["p4-tau4-lif"]))
    cfg = conv.model.cfg
    # With spiking_neuron given, SpikingJelly applies the keywords everywhere and drops its
    # own defaults: tau 4 everywhere, attention threshold 1.0, detach_reset False.
    assert (cfg.tau, cfg.v_threshold, cfg.attn_threshold) == (4.0, 1.0, 1.0)
    assert (cfg.detach_reset, cfg.attn_detach_reset) == (False, False)
    assert (cfg.surrogate, cfg.surrogate_alpha) == ("atan", 2.0)
    assert set(conv.surrogates.values()) == {"ATan(alpha=2.0, spiking=True)"}
    lif = conv.model.get_submodule("blocks.0.attn.attn_lif")
    assert (lif.tau, lif.v_threshold, lif.detach_reset) == (4.0, 1.0, False)
    default = convert(Spikformer(**CASES["p4-T1-static"])).model
    assert (default.cfg.attn_threshold, default.cfg.tau, default.cfg.detach_reset) == (0.5, 2.0, True)
    # A surrogate the project does not train with is accepted (inference does not use it).
    other = convert(Spikformer(surrogate_function=surrogate.PiecewiseQuadratic(), **CASES["p4-T1-static"]))
    assert other.model.cfg.surrogate == "sigmoid"
    assert "PiecewiseQuadratic(alpha=1.0, spiking=True)" in other.surrogates.values()


def _small(**kw: Any) -> Spikformer:
    return Spikformer(**{**CASES["p4-T1-static"], "depths": 2, **kw})


def _set(path: str, **attrs: Any) -> Any:
    def edit(sj: nn.Module) -> None:
        for k, v in attrs.items():
            setattr(sj.get_submodule(path), k, v)

    return edit


REFUSALS = {
    "plif": (
        lambda: _small(spiking_neuron=neuron.ParametricLIFNode),
        None,
        "patch_embed.stages.0.neuron",
        "ParametricLIFNode",
    ),
    "if": (lambda: _small(spiking_neuron=neuron.IFNode), None, "patch_embed.stages.0.neuron", "IFNode"),
    "soft-reset": (
        _small,
        _set("blocks.1.attn.qkv_lif", v_reset=None),
        "blocks.1.attn.qkv_lif",
        "v_reset=None",
    ),
    "v-reset": (_small, _set("blocks.0.mlp.neuron2", v_reset=-0.5), "blocks.0.mlp.neuron2", "v_reset=-0.5"),
    "tau": (_small, _set("blocks.1.attn.attn_lif", tau=3.0), "blocks.1.attn.attn_lif", "tau=3.0"),
    "decay-input": (
        _small,
        _set("patch_embed.positional_encoding.neuron", decay_input=False),
        "patch_embed.positional_encoding.neuron",
        "decay_input=False",
    ),
    "smooth-surrogate": (
        lambda: _small(surrogate_function=surrogate.Sigmoid(spiking=False)),
        None,
        "patch_embed.stages.0.neuron",
        "spiking=False",
    ),
    "mixed-tau": (lambda: _small(tau=4.0), None, "blocks.0.attn.qkv_lif", "tau=2.0 differs"),
    "layer": (
        _small,
        lambda sj: sj.blocks[1].mlp.fc1.__setitem__(1, nn.Identity()),
        "blocks.1.mlp.fc1.1",
        "Identity",
    ),
    "unknown-module": (_small, lambda sj: sj.add_module("dropout", nn.Dropout()), "dropout", "Dropout"),
    "sdt": (
        lambda: SpikeDrivenTransformer(embed_dims=32, num_heads=2, depths=1, num_classes=10),
        None,
        "blocks.0.attn",
        "membrane shortcuts",
    ),
    "qkformer": (
        lambda: QKFormer(embed_dims=48, num_heads=(1, 2, 2), depths=(1, 1, 1), num_classes=10),
        None,
        "stage1.0.attn",
        "Q-K attention",
    ),
    "maxformer": (
        lambda: MaxFormer(embed_dims=48, depths=(1, 1, 1), num_classes=10),
        None,
        "<model>",
        "MaxFormer",
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refusals_name_the_module_and_the_setting(case: str) -> None:
    build, edit, path, setting = REFUSALS[case]
    sj = build()
    if edit is not None:
        edit(sj)
    with pytest.raises(ConversionError) as info:
        convert(sj)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert setting in message, message
    assert info.value.path == ("" if path == "<model>" else path)


def test_cli_round_trip_and_eval(tmp_path: Path) -> None:
    config = {
        "T": 2,
        "in_channels": 1,
        "img_size_h": 8,
        "img_size_w": 8,
        "patch_size": 4,
        "num_classes": 10,
        "embed_dims": 16,
        "num_heads": 2,
        "mlp_ratio": 2,
        "depths": 1,
        "tau": 2,
        "surrogate_function": {"name": "ATan", "alpha": 2.0},
    }
    sj = build_spikingjelly(config)
    x = torch.randint(0, 256, (6, 1, 8, 8)).float()
    _fire(sj, x.unsqueeze(0).repeat(2, 1, 1, 1, 1), seed=4)
    weights = tmp_path / "sj.pt"
    torch.save(sj.state_dict(), weights)
    cfg_file = tmp_path / "config.json"
    cfg_file.write_text(json.dumps(config))
    out = tmp_path / "conv"
    assert main(["--config", str(cfg_file), "--state-dict", str(weights), "--out", str(out)]) == 0

    model, meta = load_model(out / "checkpoint.pt")
    assert meta["preset"] == "sj-spikformer" and meta["data"] == "digits"
    assert meta["args"]["surrogates"] == ["ATan(alpha=2.0, spiking=True)"]
    assert meta["args"]["spikingjelly_config"] == config
    assert json.loads((out / "conversion.json").read_text())["neurons"]["blocks.0.attn.attn_lif"] == (
        "blocks.0.attn.attn_lif"
    )
    functional.reset_net(sj)
    with torch.no_grad():
        torch.testing.assert_close(model(x), sj(x).mean(0), atol=1e-5, rtol=0)

    summary = eval_run(
        ["--checkpoint", str(out / "checkpoint.pt"), "--out", str(tmp_path / "eval"), "--limit", "16"]
    )
    assert summary["preset"] == "sj-spikformer" and summary["samples"] == 16
    assert len(summary["firing_rates"]) == 10


def test_cli_help_documents_the_json_and_refusals_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for key in (
        "embed_dims",
        "num_heads",
        "mlp_ratio",
        "depths",
        "patch_size",
        "surrogate_function",
        "v_reset",
    ):
        assert key in text
    weights = tmp_path / "sj.pt"
    config = {
        "in_channels": 1,
        "img_size_h": 8,
        "img_size_w": 8,
        "patch_size": 4,
        "embed_dims": 16,
        "num_heads": 2,
        "depths": 1,
        "v_reset": None,
    }
    torch.save(build_spikingjelly(config).state_dict(), weights)
    argv = ["--config", json.dumps(config), "--state-dict", str(weights), "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    assert "patch_embed.stages.0.neuron: soft reset (v_reset=None)" in capsys.readouterr().err


def test_quantize_accepts_a_converted_model() -> None:
    """The integer side is tests/test_sj_quantize.py; here: the family quantizes, with 8-bit input."""
    model = create_model(
        "sj-spikformer", in_channels=1, img_size=8, patch_size=4, embed_dim=16, heads=2, depth=1
    )
    assert numerics_for(model).input_bits == 8
    kinds = [op.kind for op in to_int_model(FakeQuantModel(model)).ops]  # type: ignore[arg-type]
    assert kinds.count("conv_maxpool") == 2 and kinds[-1] == "head"
    with pytest.raises(QuantizationError, match="HwSpikeformer|Hardware Spikeformer"):
        numerics_for(nn.Linear(2, 2))
