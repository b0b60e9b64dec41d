"""PE test vectors cut from an exported, trained integer model (``contract.manifest``).

The export directory of ``make demo`` / ``make export`` (``build/export/hw-tiny-digits``
by default, or ``SIM_EXPORT_DIR``) holds the integer model and the inputs of its test
samples. :func:`extract` runs the model on those inputs with a full trace and writes
one ``.npz`` per PE kind with the operands the PE would see in the real network:

* ``lif.npz``: ``currents [T, neurons]`` (saturated LIF input currents) and
  ``thresholds [neurons]`` of a convolution, an MLP and an attention LIF layer;
* ``synapse.npz``: per layer ``j`` (``layers[j]`` names it) ``values.j [N, I, T]``
  (the first convolution's im2col'd pixels, spike tokens, residual sums), ``weights.j [O, I]``,
  ``bias.j [O]``;
* ``attention.npz``: ``q``, ``k``, ``v`` token groups ``[groups, G, d]`` of the first
  attention layer.

Every extracted operand set is checked against the trace before it is written (the
LIF spikes, synaptic currents and attention currents that the testbenches will
recompute with :mod:`contract.numerics` equal the integer model's), so a testbench
that passes on these vectors reproduces that model's layers bit for bit.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contract import numerics
from contract.files import atomic_path
from contract.intmodel import LIF_KINDS, IntModel, Op, group_tokens
from contract.manifest import load_export
from protocol.params import AttentionParams, LIFArrayParams, PEParams, SynapseArrayParams

__all__ = ["EXPORT_ENV", "DEFAULT_EXPORT", "VectorError", "ExportedVectors", "find_export", "extract"]

#: Environment variable naming an export directory (or the directory holding ``export/``).
EXPORT_ENV = "SIM_EXPORT_DIR"
#: Where ``make demo`` / ``make export`` put the hw-tiny export (``<dir>/export/manifest.json``).
DEFAULT_EXPORT = Path("build/export/hw-tiny-digits")


class VectorError(ValueError):
    """The export cannot provide vectors (no test vectors, or a trace that disagrees)."""


def find_export(path: Path | None = None) -> Path | None:
    """The export directory (holding ``manifest.json``) at ``path``, ``$SIM_EXPORT_DIR`` or the default.

    ``path`` may also be the quantizer's output directory with ``export/`` inside.
    Returns ``None`` when there is none.
    """
    candidates = [path] if path is not None else [Path(p) for p in (os.environ.get(EXPORT_ENV),) if p]
    candidates = candidates or [DEFAULT_EXPORT]
    for candidate in candidates:
        for directory in (Path(candidate), Path(candidate) / "export"):
            if (directory / "manifest.json").is_file():
                return directory
    return None


@dataclass(frozen=True)
class ExportedVectors:
    """Vector files cut from one export, and what a PE needs to take them.

    Attributes
    ----------
    export:
        The export directory.
    model:
        Its integer model.
    files:
        PE kind -> ``.npz`` path.
    summary:
        PE kind -> one line saying where the vectors come from.
    """

    export: Path
    model: IntModel
    files: Mapping[str, Path]
    summary: Mapping[str, str]
    fan_in: int
    group: int
    head_dim: int

    def compatible(self, params: PEParams) -> bool:
        """Whether a PE configuration computes the exported model's numerics on these vectors."""
        cfg, steps = self.model.numerics, self.model.timesteps
        if isinstance(params, LIFArrayParams):
            return (
                params.timesteps == steps
                and params.membrane_bits == cfg.membrane_bits
                and params.leak_shift == cfg.leak_shift
            )
        if isinstance(params, SynapseArrayParams):
            return (
                params.timesteps == steps
                and params.frac_bits == cfg.frac_bits
                and params.membrane_bits == cfg.membrane_bits
                and params.weight_bits >= cfg.weight_bits
                and params.input_bits >= cfg.input_bits
                and params.bias_width >= cfg.membrane_bits
                and params.max_fan_in(cfg.input_max) >= self.fan_in
            )
        if isinstance(params, AttentionParams):
            return (
                params.head_dim == self.head_dim
                and params.max_group >= self.group
                and params.frac_bits == cfg.frac_bits
                and params.membrane_bits == cfg.membrane_bits
            )
        return False


def _save(path: Path, arrays: Mapping[str, np.ndarray]) -> Path:
    # Atomic: parallel pytest workers may extract the same export at once.
    # A handle, not a name: np.savez would append ".npz" to the temporary name.
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
    return path


def _lif_neurons(
    op: Op, trace: Mapping[str, np.ndarray], model: IntModel, limit: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``(currents [T, n], thresholds [n])`` of up to ``limit`` neurons of one LIF layer."""
    currents = trace[f"{op.name}.current"]
    steps, per_step = currents.shape[0], currents.shape[1:]
    if op.kind == "attention":
        theta = np.full(per_step, op.params["threshold"], dtype=np.int64)
    else:
        # Per-channel thresholds: axis 1 of a conv's [B, C, H, W], the last of a linear's [B, N, O].
        raw = op.tensors["threshold"]
        shape = [1] * len(per_step)
        shape[1 if op.kind == "conv" else -1] = raw.shape[0]
        theta = np.broadcast_to(raw.reshape(shape), per_step)
    flat_current = currents.reshape(steps, -1)
    flat_theta = theta.reshape(-1)
    spikes = numerics.lif(
        flat_current,
        flat_theta,
        leak_shift=model.numerics.leak_shift,
        membrane_bits=model.numerics.membrane_bits,
    )
    if not np.array_equal(spikes, trace[op.name].reshape(steps, -1)):
        raise VectorError(f"LIF spikes of {op.name} recomputed from its currents differ from the trace")
    pick = np.sort(rng.choice(flat_theta.size, size=min(limit, flat_theta.size), replace=False))
    return flat_current[:, pick], flat_theta[pick]


def _im2col(x: np.ndarray, op: Op) -> np.ndarray:
    """``[T, B, C, H, W]`` -> ``[B * H' * W', C * kh * kw, T]`` patches (zero padding), weight order."""
    o, c, kh, kw = op.tensors["weight"].shape
    stride, pad = op.params["stride"], op.params["padding"]
    padded = np.pad(x, ((0, 0), (0, 0), (0, 0), (pad, pad), (pad, pad)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (kh, kw), axis=(3, 4))
    windows = windows[:, :, :, ::stride, ::stride]  # [T, B, C, H', W', kh, kw]
    t, b, _, oh, ow = windows.shape[:5]
    return windows.transpose(1, 3, 4, 2, 5, 6, 0).reshape(b * oh * ow, c * kh * kw, t)


def _synapse_layer(
    op: Op,
    values_in: np.ndarray,
    trace: Mapping[str, np.ndarray],
    model: IntModel,
    limit: int,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Dot products ``values [N, I, T]`` of up to ``limit`` output positions of a conv/linear layer."""
    weight = op.tensors["weight"].reshape(op.tensors["weight"].shape[0], -1)
    current = trace[f"{op.name}.current"]
    if op.kind == "conv":
        values = _im2col(values_in, op)
        expected = current.transpose(1, 3, 4, 0, 2).reshape(values.shape[0], current.shape[0], -1)
    else:
        values = values_in.transpose(1, 2, 3, 0).reshape(-1, values_in.shape[-1], values_in.shape[0])
        expected = current.transpose(1, 2, 0, 3).reshape(values.shape[0], current.shape[0], -1)
    cfg = model.numerics
    recomputed = numerics.synaptic_current(
        np.einsum("nit,oi->nto", values, weight),
        op.tensors["bias"],
        frac_bits=cfg.frac_bits,
        membrane_bits=cfg.membrane_bits,
    )
    if not np.array_equal(recomputed, expected):
        raise VectorError(f"synaptic currents of {op.name} recomputed from its inputs differ from the trace")
    pick = np.sort(rng.choice(values.shape[0], size=min(limit, values.shape[0]), replace=False))
    return {"values": values[pick], "weights": weight, "bias": op.tensors["bias"]}


def extract(
    export_dir: Path,
    out: Path,
    *,
    samples: int = 4,
    neurons_per_layer: int = 512,
    dots_per_layer: int = 16,
    groups: int = 16,
    seed: int = 0,
) -> ExportedVectors:
    """Cut per-PE vectors from the export at ``export_dir`` into ``out``.

    Parameters
    ----------
    export_dir:
        Export directory (``manifest.json``) or the quantizer's output directory.
    out:
        Directory for ``lif.npz``, ``synapse.npz`` and ``attention.npz``.
    samples:
        Test samples of the export to run.
    neurons_per_layer, dots_per_layer, groups:
        Caps that keep the cocotb runs short: LIF neurons per LIF layer, output
        positions per synapse layer, attention token groups.
    seed:
        Seed of the (deterministic) subsampling.

    Raises
    ------
    contract.manifest.ExportError
        When the export is invalid.
    VectorError
        When it holds no test vectors or lacks a layer kind.
    """
    found = find_export(Path(export_dir))
    if found is None:
        raise VectorError(f"{export_dir} is not an export directory (no manifest.json)")
    export = load_export(found)
    if export.vectors is None:
        raise VectorError(f"{found} holds no test vectors (export with --samples >= 1)")
    model = export.model
    inputs = export.vectors.inputs[:samples]
    _, trace = model.run(inputs, trace=True)
    # The first layer's operand: [T, B, C, H, W] (a static image repeats over T, as in IntModel.run).
    first = (
        np.broadcast_to(inputs[None], (model.timesteps, *inputs.shape))
        if inputs.ndim == 4
        else inputs.transpose(1, 0, 2, 3, 4)
    )
    values = {"input": first.astype(np.int64), **trace}
    rng = np.random.default_rng(seed)
    out = Path(out)

    lif_ops = [op for op in model.ops if op.kind in LIF_KINDS]
    convs = [op for op in lif_ops if op.kind == "conv"]
    linears = [op for op in lif_ops if op.kind == "linear"]
    attentions = [op for op in lif_ops if op.kind == "attention"]
    if not (convs and linears and attentions):
        raise VectorError(f"{found}: the model needs conv, linear and attention layers for PE vectors")

    # LIF: the first convolution, an MLP layer (the widest linear) and the first attention LIF.
    mlp = max(linears, key=lambda op: op.tensors["weight"].shape[0])
    lif_layers = [convs[0], mlp, attentions[0]]
    parts = [_lif_neurons(op, trace, model, neurons_per_layer, rng) for op in lif_layers]
    files = {
        "lif": _save(
            out / "lif.npz",
            {
                "currents": np.concatenate([c for c, _ in parts], axis=1),
                "thresholds": np.concatenate([t for _, t in parts]),
            },
        )
    }
    summary = {"lif": f"{sum(len(t) for _, t in parts)} neurons of {', '.join(op.name for op in lif_layers)}"}

    # Synapse: multi-bit pixels (first conv), spike tokens (first linear), residual sums (MLP input).
    syn_layers = [convs[0], linears[0], mlp]
    arrays: dict[str, np.ndarray] = {"layers": np.array([op.name for op in syn_layers])}
    fan_in = 0
    for j, op in enumerate(syn_layers):
        layer = _synapse_layer(op, values[op.inputs[0]], trace, model, dots_per_layer, rng)
        arrays.update({f"{key}.{j}": array for key, array in layer.items()})
        fan_in = max(fan_in, layer["weights"].shape[1])
    files["synapse"] = _save(out / "synapse.npz", arrays)
    names = ", ".join(op.name for op in syn_layers)
    summary["synapse"] = f"{dots_per_layer} output positions each of {names}"

    # Attention: token groups of the first attention layer, checked against its currents.
    att = attentions[0]
    grouping, heads = att.params["grouping"], att.params["heads"]
    q, k, v = (group_tokens(trace[name], grouping=grouping, heads=heads) for name in att.inputs)
    expected = group_tokens(trace[f"{att.name}.current"], grouping=grouping, heads=heads)
    cfg = model.numerics
    if not np.array_equal(
        numerics.attention_current(q, k, v, frac_bits=cfg.frac_bits, membrane_bits=cfg.membrane_bits),
        expected,
    ):
        raise VectorError(f"attention currents of {att.name} recomputed from Q, K, V differ from the trace")
    size, dim = q.shape[-2:]
    q, k, v = (t.reshape(-1, size, dim)[:groups] for t in (q, k, v))
    files["attention"] = _save(out / "attention.npz", {"q": q, "k": k, "v": v})
    summary["attention"] = f"{len(q)} {grouping} groups of {size} tokens (head dim {dim}) of {att.name}"
    return ExportedVectors(
        export=found, model=model, files=files, summary=summary, fan_in=fan_in, group=size, head_dim=dim
    )
