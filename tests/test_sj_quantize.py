"""The integer side of SpikingJelly's Spikformer: pool-before-LIF, the head, fake-quant == integer.

The references here are straightforward loops written from docs/numerics.md; they do not
call :mod:`contract`. The SpikingJelly models are untrained, with BatchNorm statistics set
so that every layer fires (``_fire`` of tests/test_interop_spikingjelly.py).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import torch
from spikingjelly.activation_based.model.spikformer import Spikformer
from test_export import resign
from test_interop_spikingjelly import _fire

from contract.intmodel import IntModel, IntModelError, Op, assert_traces_equal
from contract.manifest import ExportError, ExportIntegrityError, load_export, write_export
from contract.numerics import NumericsConfig
from golden.interop.spikingjelly import convert
from golden.quantize import FakeQuantModel, numerics_for, to_int_model
from protocol.compiler import compile_model
from protocol.config import ACCEL_CONFIGS

CFG = NumericsConfig(frac_bits=4, membrane_bits=12, leak_shift=1)


# --------------------------------------------------------------------------- loop references
def _ref_conv_pool_lif(
    x: np.ndarray, w: np.ndarray, bias: np.ndarray, theta: np.ndarray, cfg: NumericsConfig, pool: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Conv3x3 (pad 1) -> ``sat((acc << F) + b)`` -> [max over the real taps of a 3/2/1 window] -> LIF."""
    t_steps, c_in, h, wd = x.shape
    o = w.shape[0]
    lo, hi = -(1 << (cfg.membrane_bits - 1)), (1 << (cfg.membrane_bits - 1)) - 1
    cur = np.zeros((t_steps, o, h, wd), dtype=np.int64)
    for t in range(t_steps):
        for oc in range(o):
            for i in range(h):
                for j in range(wd):
                    acc = 0
                    for c in range(c_in):
                        for di in range(3):
                            for dj in range(3):
                                ii, jj = i + di - 1, j + dj - 1
                                if 0 <= ii < h and 0 <= jj < wd:
                                    acc += int(x[t, c, ii, jj]) * int(w[oc, c, di, dj])
                    cur[t, oc, i, j] = min(max(acc * (1 << cfg.frac_bits) + int(bias[oc]), lo), hi)
    if pool:
        ph, pw = (h - 1) // 2 + 1, (wd - 1) // 2 + 1
        pooled = np.zeros((t_steps, o, ph, pw), dtype=np.int64)
        for t in range(t_steps):
            for oc in range(o):
                for i in range(ph):
                    for j in range(pw):
                        taps = [
                            cur[t, oc, ii, jj]
                            for ii in range(2 * i - 1, 2 * i + 2)
                            for jj in range(2 * j - 1, 2 * j + 2)
                            if 0 <= ii < h and 0 <= jj < wd
                        ]
                        pooled[t, oc, i, j] = max(taps)  # padded taps skipped, as -inf would be
        cur = pooled
    spikes = np.zeros_like(cur)
    v = np.zeros_like(cur[0])
    for t in range(t_steps):
        for idx in np.ndindex(v.shape):
            hval = int(v[idx]) + ((int(cur[t][idx]) - int(v[idx])) >> cfg.leak_shift)
            fire = hval >= int(theta[idx[0]])
            spikes[t][idx] = int(fire)
            v[idx] = 0 if fire else hval
    return cur, spikes


def _conv_pool_model(pool: bool, seed: int) -> tuple[IntModel, np.ndarray]:
    rng = np.random.default_rng(seed)
    w = rng.integers(-7, 8, (3, 2, 3, 3))
    w[0] = 0  # a channel whose currents are the bias alone: every window ties
    bias = np.array([-40, -600, -250])  # mostly negative currents
    theta = rng.integers(1, 60, 3)
    kind = "conv_maxpool" if pool else "conv"
    params = dict(stride=1, padding=1)
    if pool:
        params.update(pool_kernel=3, pool_stride=2, pool_padding=1)
    ops = (
        Op("stem", kind, ("input",), params, {"weight": w, "bias": bias, "threshold": theta}),
        Op("tokens", "tokens", ("stem",)),
        Op(
            "head",
            "head",
            ("tokens",),
            {},
            {"weight": np.ones((2, 3), np.int64), "bias": np.zeros(2, np.int64)},
        ),
    )
    return IntModel(CFG, (2, 7, 6), 3, 2, ops), rng.integers(0, 4, (2, 3, 2, 7, 6))


@pytest.mark.parametrize("pool", [True, False])
def test_pool_before_lif_matches_loop_reference(pool: bool) -> None:
    model, x = _conv_pool_model(pool, seed=1)
    _, trace = model.run(x, trace=True)
    op = model.op("stem")
    for b in range(len(x)):
        cur, spikes = _ref_conv_pool_lif(
            x[b], op.tensors["weight"], op.tensors["bias"], op.tensors["threshold"], CFG, pool
        )
        np.testing.assert_array_equal(trace["stem.current"][:, b], cur)
        np.testing.assert_array_equal(trace["stem"][:, b], spikes)
    cur = trace["stem.current"]
    assert (cur < 0).mean() > 0.3, "the test must pool negative currents"
    assert 0 < trace["stem"].mean() < 1


def test_pool_before_lif_fields_are_checked() -> None:
    model, _ = _conv_pool_model(True, seed=2)
    op = model.op("stem")
    bad = Op(op.name, op.kind, op.inputs, {**op.params, "pool_padding": 2}, op.tensors)
    with pytest.raises(IntModelError, match="pool_padding"):
        IntModel(CFG, (2, 7, 6), 3, 2, (bad, *model.ops[1:]))
    missing = Op(op.name, op.kind, op.inputs, {"stride": 1, "padding": 1}, op.tensors)
    with pytest.raises(IntModelError, match="missing"):
        IntModel(CFG, (2, 7, 6), 3, 2, (missing, *model.ops[1:]))


# --------------------------------------------------------------------------- converted models
KW = {
    4: dict(img_size_h=16, img_size_w=16, patch_size=4, embed_dims=32, num_heads=4, mlp_ratio=2.0, depths=2),
    16: dict(
        img_size_h=32, img_size_w=32, patch_size=16, embed_dims=32, num_heads=2, mlp_ratio=2.0, depths=1
    ),
}


def _inputs(kw: dict, event: bool, batch: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    shape = (kw["in_channels"], kw["img_size_h"], kw["img_size_w"])
    if event:
        return torch.randint(0, 4, (batch, kw["T"], *shape), generator=g).float()
    return torch.randint(0, 256, (batch, *shape), generator=g).float()


@lru_cache(maxsize=4)
def _quantized(patch: int, event: bool) -> tuple[torch.nn.Module, FakeQuantModel, IntModel]:
    kw = dict(KW[patch], T=2, in_channels=2 if event else 1)
    torch.manual_seed(0)
    sj = Spikformer(num_classes=5, **kw)
    x = _inputs(kw, event, 4, seed=1)
    _fire(sj, x.transpose(0, 1) if event else x.unsqueeze(0).repeat(kw["T"], 1, 1, 1, 1), seed=2)
    model = convert(sj).model
    fq = FakeQuantModel(model)
    return model, fq, to_int_model(fq, event=event)


@pytest.mark.parametrize("patch", [4, 16])
@pytest.mark.parametrize("event", [False, True], ids=["image", "event"])
def test_fake_quant_equals_integer_at_every_layer(patch: int, event: bool) -> None:
    model, fq, int_model = _quantized(patch, event)
    cfg = model.cfg
    x = _inputs(dict(KW[patch], T=2, in_channels=cfg.in_channels), event, 3, seed=5)
    fq_logits, fq_trace = fq.trace(x)
    logits, trace = int_model.run(x.numpy().astype(np.int64), trace=True)
    assert set(trace) == set(fq_trace)
    assert_traces_equal(trace, fq_trace)
    np.testing.assert_array_equal(logits, fq_logits)
    kinds = {op.name: op.kind for op in int_model.ops}
    pooled = [n for n, k in kinds.items() if k == "conv_maxpool"]
    assert pooled == [f"stem.{i}" for i, p in enumerate(cfg.stem_pools) if p]
    for name, kind in kinds.items():
        if kind in ("conv", "conv_maxpool", "linear", "attention"):
            rate = trace[name].mean()
            assert 0 < rate < 1, f"{name} fires at rate {rate}: the comparison would prove little"
    assert trace["pe.add"].max() == 2
    assert int_model.op("blocks.0.attn.attention").params == {
        "grouping": "spatial",
        "heads": cfg.heads,
        "threshold": 64,  # 0.5 * 2^4 / 0.125, exact
    }


def test_head_is_the_mean_over_tokens_and_steps() -> None:
    model, fq, int_model = _quantized(4, False)
    x = _inputs(dict(KW[4], T=2, in_channels=1), False, 3, seed=7)
    logits, trace = int_model.run(x.numpy().astype(np.int64), trace=True)
    head = int_model.op("head")
    stream = trace[head.inputs[0]]  # [T, B, N, D]
    w, b = head.tensors["weight"], head.tensors["bias"]
    for s in range(len(x)):
        pooled = [
            sum(int(stream[t, s, n, d]) for t in range(stream.shape[0]) for n in range(stream.shape[2]))
            for d in range(stream.shape[3])
        ]
        for c in range(len(b)):
            dot = sum(p * int(wc) for p, wc in zip(pooled, w[c], strict=True))
            assert logits[s, c] == dot * 16 + int(b[c])
    # logit_scale maps L back to the float model's logits; the argmax is the float-scaled one.
    with torch.no_grad():
        scaled = fq(x).numpy()
    np.testing.assert_allclose(logits * head.reference["logit_scale"], scaled, rtol=1e-12, atol=1e-9)
    tokens = model.cfg.timesteps * model.cfg.num_tokens
    bias = model.head.linear.bias.detach().double().numpy()
    alpha = float(model.head.linear.weight.detach().double().abs().max()) / 127
    np.testing.assert_array_equal(b, np.round(bias * tokens * 16 / alpha).astype(np.int64))


def test_input_is_the_float_models_own_integers() -> None:
    model, fq, int_model = _quantized(4, False)
    assert numerics_for(model).input_bits == 8 and int_model.numerics.input_max == 255
    with pytest.raises(ValueError, match="integers"):
        fq(torch.full((1, 1, 16, 16), 0.5))
    with pytest.raises(ValueError, match="integers"):
        int_model.run(np.full((1, 1, 16, 16), 0.5))
    # No scaling: the first conv's integer weights see the pixels the float model sees.
    x = _inputs(dict(KW[4], T=2, in_channels=1), False, 2, seed=11)
    with torch.no_grad():
        float_stem = model.stem[0].lif
        spikes = {}
        handle = float_stem.register_forward_hook(lambda m, a, y: spikes.__setitem__("s", y))
        model(x)
        handle.remove()
    agree = (spikes["s"].numpy() == int_model.run(x.numpy().astype(np.int64), trace=True)[1]["stem.0"]).mean()
    assert agree > 0.95, f"first-layer spikes agree on only {agree:.3f} of the float model's"


def test_export_round_trips_and_rejects_tampering(tmp_path: Path) -> None:
    _, _, int_model = _quantized(16, True)
    out = write_export(int_model, tmp_path / "export")
    loaded = load_export(out).model
    assert [op.kind for op in loaded.ops] == [op.kind for op in int_model.ops]
    x = _inputs(dict(KW[16], T=2, in_channels=2), True, 2, seed=9).numpy().astype(np.int64)
    assert_traces_equal(int_model.run(x, trace=True)[1], loaded.run(x, trace=True)[1])
    manifest_file = out / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    layer = next(entry for entry in manifest["layers"] if entry["kind"] == "conv_maxpool")
    layer["params"]["pool_padding"] = 2
    manifest_file.write_text(json.dumps(manifest))
    with pytest.raises(ExportIntegrityError, match="content_sha256"):
        load_export(out)
    resign(out, manifest)  # a consistent hash: the field check itself must refuse it
    with pytest.raises(ExportError, match="pool_padding"):
        load_export(out)


def test_compiler_emits_pool_before_lif_as_a_pooled_conv() -> None:
    _, _, int_model = _quantized(4, False)
    program = compile_model(int_model, ACCEL_CONFIGS["sim"])
    (index,) = program.op_commands["stem.2"]
    d = program.commands[index].descriptor
    assert (d.pool_kernel, d.pool_stride, d.pool_padding) == (3, 2, 1)
    assert (d.out_h, d.out_w) == int_model.shapes["stem.2"][2:]  # the pooled positions
    (plain,) = program.op_commands["stem.1"]
    assert program.commands[plain].descriptor.pool_kernel == 0
