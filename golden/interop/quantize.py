"""The integer side of SpikingJelly's Spikformer (the ``sj-spikformer`` family): docs/numerics.md section 13.

:class:`golden.quantize.FakeQuantModel` calls :func:`install_sj_fake_quant` for a
:class:`~golden.models.sj_spikformer.SjSpikformer`, and :func:`golden.quantize.to_int_model`
calls :func:`sj_int_ops`. The fake-quant copy keeps the family's own forward (channel-major
tokens ``[T, B, D, N]``, the fused ``qkv``, SpikingJelly's ``((V K^T) Q) * 0.125``); its
traces are recorded in the integer model's layouts (tokens ``[T, B, N, D]``, ``q``/``k``/``v``
split), so both compare value by value:

* stem stage ``i`` -> ``stem.{i}`` (``conv_maxpool`` when it pools its currents, else ``conv``);
* ``pe`` (``conv``) and ``pe.add`` (``add`` of the stem's and ``pe`` 's spikes, values 0..2);
* ``tokens``; per block ``blocks.{b}.attn.{q,k,v}`` (the fused ``qkv`` rows, ``linear``),
  ``blocks.{b}.attn.attention`` (``spatial``), ``.proj``, ``.add``, ``blocks.{b}.mlp.{fc1,fc2,add}``;
* ``head``: the sum-pool head (section 8) with ``b_h = round(b T N 2^F / alpha_h)``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from contract.intmodel import Op

from ..models.sj_spikformer import POOL, SjSpikformer, StemStage, TokenConvBNLIF
from ..quantize import (
    FakeQuantModel,
    IntLIF,
    QuantizationError,
    _Bound,
    _ints,
    _QuantAffine,
    _QuantConv,
    _QuantHead,
    attention_threshold,
)

__all__ = ["SjQuantHead", "install_sj_fake_quant", "sj_float_spikes", "sj_int_ops"]


class _TokenRecorder:
    """Records channel-major ``[T, B, C..., N]`` values as ``[T, B, N, C]``, optionally split in channels.

    ``source`` is the name the LIF records under; ``parts`` the names its equal channel
    chunks are recorded under (the fused ``qkv`` -> ``q``, ``k``, ``v``).
    """

    def __init__(self, base: Any, source: str, parts: tuple[str, ...] = ()) -> None:
        self.base, self.source, self.parts = base, source, parts or (source,)

    @property
    def store(self) -> dict[str, torch.Tensor] | None:
        return self.base.store

    def put(self, name: str, value: torch.Tensor) -> None:
        if self.base.store is None:
            return
        suffix = name[len(self.source) :]
        tokens = value.flatten(2, -2).transpose(-1, -2)
        for part, chunk in zip(self.parts, tokens.chunk(len(self.parts), dim=-1), strict=True):
            self.base.put(part + suffix, chunk.contiguous())


class _QuantConv1d(_Bound):
    """``Conv1d(k=1)`` with the integer weights ``Wq`` of its quantizer."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv1d(x, self.params.weight)


def _check_conv(name: str, conv: nn.Conv2d) -> None:
    if conv.dilation != (1, 1) or conv.groups != 1 or conv.stride != (1, 1) or conv.padding != (1, 1):
        raise QuantizationError(f"{name}: the stem conv must be 3x3, stride 1, padding 1, no dilation/groups")


def install_sj_fake_quant(fq: FakeQuantModel) -> None:
    """Replace the synapses, neurons and head of ``fq.net`` (an :class:`SjSpikformer`) by integer forms."""
    net: SjSpikformer = fq.net
    cfg, rec = fq.numerics, fq._recorder

    def int_lif(name: str, quant: Any, lif: Any, channel_axes: int, recorder: Any) -> IntLIF:
        return IntLIF(
            name=name,
            threshold=lambda q=quant: q.params.threshold,
            channel_axes=channel_axes,
            gain=1.0,
            lif=lif,
            cfg=cfg,
            recorder=recorder,
        )

    def stage(name: str, module: StemStage) -> None:
        _check_conv(name, module.conv)
        quant = fq._new_quantizer(name, module.conv, module.bn, module.lif)
        module.conv, module.bn = _QuantConv(quant), _QuantAffine(quant)
        module.lif = int_lif(name, quant, module.lif, 2, rec)

    def token_layer(name: str, module: TokenConvBNLIF, parts: tuple[str, ...] = ()) -> None:
        quant = fq._new_quantizer(name, module.conv, module.bn, module.lif)
        module.conv, module.bn = _QuantConv1d(quant), _QuantAffine(quant)
        module.lif = int_lif(name, quant, module.lif, 1, _TokenRecorder(rec, name, parts))

    for i, module in enumerate(net.stem):
        stage(f"stem.{i}", module)
    stage("pe", net.pe)
    for b, block in enumerate(net.blocks):
        base, attn = f"blocks.{b}.attn", block.attn
        token_layer(f"{base}.qkv", attn.qkv, tuple(f"{base}.{p}" for p in "qkv"))
        attn.attn_lif = IntLIF(
            name=f"{base}.attention",
            threshold=attention_threshold(attn.attn_lif.v_threshold, attn.scale, cfg),
            channel_axes=0,
            gain=2.0**cfg.frac_bits / attn.scale,
            lif=attn.attn_lif,
            cfg=cfg,
            recorder=_TokenRecorder(rec, f"{base}.attention"),  # type: ignore[arg-type]
        )
        token_layer(f"{base}.proj", attn.proj)
        token_layer(f"blocks.{b}.mlp.fc1", block.mlp.fc1)
        token_layer(f"blocks.{b}.mlp.fc2", block.mlp.fc2)
    net.head = SjQuantHead(net.head, tokens=net.cfg.timesteps * net.cfg.num_tokens, cfg=cfg, recorder=rec)

    tokens = _TokenRecorder(rec, "")

    def before_tokens(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        x = args[0]
        rec.put("pe.add", x.view(*x.shape[:3], *net.cfg.token_grid))
        tokens.put("tokens", x)

    (net.blocks[0] if len(net.blocks) else net.head).register_forward_pre_hook(before_tokens)
    for b, block in enumerate(net.blocks):
        block.mlp.register_forward_pre_hook(
            lambda m, args, b=b: tokens.put(f"blocks.{b}.attn.add", args[0])  # type: ignore[misc]
        )
        block.register_forward_hook(
            lambda m, args, out, b=b: tokens.put(f"blocks.{b}.mlp.add", out)  # type: ignore[misc]
        )


class SjQuantHead(_QuantHead):
    """The sum-pool head on channel-major tokens; returns ``[1, B, classes]`` for the family's mean over T.

    ``mean_T (W mean_N x_t + b) = W (sum_{T,N} x) / (T N) + b``: the per-step Linear
    averaged over ``T`` is the sum-pool head of docs/numerics.md section 8.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(-1, -2)).unsqueeze(0)


def sj_int_ops(fq: FakeQuantModel) -> list[Op]:
    """The ops of the integer model of ``fq`` (an ``sj-spikformer`` fake-quant model), head excluded."""
    net: SjSpikformer = fq.net
    quants = {q.name: q for q in fq.quantizers}

    def synapse(name: str, kind: str, source: str, inputs: tuple[str, ...], part: slice, **params: Any) -> Op:
        p = quants[source].params
        weight = p.weight[part]
        if weight.dim() == 3:  # Conv1d(k=1) -> linear [O, I]
            weight = weight.squeeze(-1)
        return Op(
            name=name,
            kind=kind,
            inputs=inputs,
            params=params,
            lif=f"{source}.lif",
            tensors={
                "weight": _ints(weight, f"{name} weight"),
                "bias": _ints(p.bias[part], f"{name} bias"),
                "threshold": _ints(p.threshold[part], f"{name} threshold"),
            },
            reference={"scale": [float(a) for a in p.scale[part]]},
        )

    whole = slice(None)
    kernel, stride, padding = POOL
    ops, stream = [], "input"
    for i, module in enumerate(net.stem):
        name = f"stem.{i}"
        if module.pool:
            pool = {"pool_kernel": kernel, "pool_stride": stride, "pool_padding": padding}
            ops.append(synapse(name, "conv_maxpool", name, (stream,), whole, stride=1, padding=1, **pool))
        else:
            ops.append(synapse(name, "conv", name, (stream,), whole, stride=1, padding=1))
        stream = name
    ops.append(synapse("pe", "conv", "pe", (stream,), whole, stride=1, padding=1))
    ops.append(Op(name="pe.add", kind="add", inputs=(stream, "pe")))
    ops.append(Op(name="tokens", kind="tokens", inputs=("pe.add",)))
    stream, dim = "tokens", net.cfg.embed_dim
    for b, block in enumerate(net.blocks):
        base, attn = f"blocks.{b}.attn", block.attn
        for j, part in enumerate("qkv"):
            ops.append(
                synapse(f"{base}.{part}", "linear", f"{base}.qkv", (stream,), slice(j * dim, (j + 1) * dim))
            )
        ops.append(
            Op(
                name=f"{base}.attention",
                kind="attention",
                inputs=tuple(f"{base}.{p}" for p in "qkv"),
                params={
                    "grouping": "spatial",
                    "heads": attn.heads,
                    "threshold": int(attn.attn_lif.threshold()),
                },
                lif=f"{base}.attn_lif",
                reference={"scale": float(attn.scale), "order": "((V K^T) Q)"},
            )
        )
        ops.append(synapse(f"{base}.proj", "linear", f"{base}.proj", (f"{base}.attention",), whole))
        ops.append(Op(name=f"{base}.add", kind="add", inputs=(stream, f"{base}.proj")))
        stream = f"{base}.add"
        mlp = f"blocks.{b}.mlp"
        ops.append(synapse(f"{mlp}.fc1", "linear", f"{mlp}.fc1", (stream,), whole))
        ops.append(synapse(f"{mlp}.fc2", "linear", f"{mlp}.fc2", (f"{mlp}.fc1",), whole))
        ops.append(Op(name=f"{mlp}.add", kind="add", inputs=(stream, f"{mlp}.fc2")))
        stream = f"{mlp}.add"
    return ops


def sj_float_spikes(op: Op, spikes: torch.Tensor, dim: int) -> torch.Tensor:
    """Spikes of the float LIF ``op.lif`` in the layout of the integer op ``op`` (tokens last, qkv split)."""
    if spikes.dim() == 5 and op.kind in ("conv", "conv_maxpool"):
        return spikes
    tokens = spikes.flatten(2, -2).transpose(-1, -2)
    if op.lif is not None and op.lif.endswith(".qkv.lif"):
        part = "qkv".index(op.name.rsplit(".", 1)[1])
        tokens = tokens[..., part * dim : (part + 1) * dim]
    return tokens
