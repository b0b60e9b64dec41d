"""SpikingJelly's Spikformer -> the project's :class:`~golden.models.sj_spikformer.SjSpikformer`.

:func:`from_spikingjelly` takes a ``spikingjelly.activation_based.model.spikformer.Spikformer``
(SpikingJelly 2.0) and returns the project model with the same weights, whose float
forward gives the same spikes at every neuron and the same logits (the mean over ``T``
of SpikingJelly's per-step output) on the same input.

What the project cannot compute exactly is refused, never approximated: a
:class:`ConversionError` names the module path and the setting. Refused are every
neuron but ``LIFNode`` (PLIF, IF, ...), soft reset (``v_reset=None``), ``v_reset != 0``,
``decay_input=False``, ``tau`` that is not a power of two >= 2, a surrogate in its
non-spiking mode (its forward is then smooth), reduced neuron precision, neurons with
different ``tau``, Spike-driven Transformer (membrane shortcuts), QKFormer (Q-K
attention), MaxFormer, and any module or layer setting the Spikformer does not have.
The surrogate gradient does not change the forward pass: any is accepted; Sigmoid and
ATan carry over, others train as the project's sigmoid, and :attr:`Conversion.surrogates`
records what SpikingJelly used.

SpikingJelly's neurons keep their membrane between calls (``functional.reset_net``
clears it); the project's start from rest at every call, as after a reset.

Command line (writes a checkpoint that ``golden.eval`` loads)::

    python -m golden.interop.spikingjelly --config CONFIG.json --state-dict WEIGHTS.pt --out DIR
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..models.sj_spikformer import PATCH_POOLS, SjSpikformer, SjSpikformerConfig

__all__ = ["ConversionError", "Conversion", "convert", "from_spikingjelly", "build_spikingjelly", "main"]

PRESET = "sj-spikformer"
_TRAINING_SURROGATES = {"Sigmoid": "sigmoid", "ATan": "atan"}


class ConversionError(ValueError):
    """A module or setting the project cannot compute exactly.

    Attributes
    ----------
    path:
        Module path inside the SpikingJelly model (``""`` for the model itself).
    """

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        super().__init__(f"{path or '<model>'}: {problem}")


@dataclass(frozen=True)
class Conversion:
    """Result of :func:`convert`.

    Attributes
    ----------
    model:
        The project model (eval mode).
    overrides:
        Config fields that differ from the ``sj-spikformer`` preset (``create_model`` rebuilds it).
    surrogates:
        SpikingJelly neuron path -> its surrogate function, e.g. ``"Sigmoid(alpha=4.0, spiking=True)"``.
    neurons:
        SpikingJelly neuron path -> the project's LIF path.
    """

    model: SjSpikformer
    overrides: dict[str, Any]
    surrogates: dict[str, str]
    neurons: dict[str, str]


# --------------------------------------------------------------------------- refusals by kind
def _known_unsupported() -> list[tuple[type, str]]:
    """Classes of SpikingJelly models that are not Spikformer, and why they are refused."""
    from spikingjelly.activation_based.layer import attention
    from spikingjelly.activation_based.model import maxformer, qkformer, spike_driven_transformer

    shortcuts = (
        "Spike-driven Transformer: its membrane shortcuts add currents (BN outputs) before the "
        "neurons, which the project does not compute"
    )
    return [
        (attention.SpikeDrivenSelfAttention, shortcuts),
        (spike_driven_transformer.SpikeDrivenTransformer, shortcuts),
        (
            attention.QKAttention,
            "QKFormer's Q-K attention (token/channel masks) is not computed by the project",
        ),
        (qkformer.QKFormer, "QKFormer (Q-K attention) is not computed by the project"),
        (maxformer.MaxFormer, "MaxFormer is not computed by the project"),
    ]


def _refuse_other_models(sj: nn.Module) -> None:
    from spikingjelly.activation_based.model.spikformer import Spikformer

    kinds = _known_unsupported()
    # Submodules first: their path says where the unsupported computation sits.
    for path, module in [*list(sj.named_modules())[1:], ("", sj)]:
        for cls, why in kinds:
            if isinstance(module, cls):
                raise ConversionError(path, f"{type(module).__name__}: {why}")
    if type(sj) is not Spikformer:
        raise ConversionError(
            "", f"{type(sj).__name__} is not SpikingJelly's Spikformer (model.spikformer.Spikformer)"
        )


# --------------------------------------------------------------------------- the structural walk
class _Walk:
    """Checks every module of a Spikformer and collects weights, neuron settings and paths."""

    def __init__(self, sj: nn.Module) -> None:
        self.sj = sj
        self.seen: set[str] = {""}
        self.weights: dict[str, torch.Tensor] = {}
        self.neurons: dict[str, str] = {}
        self.settings: dict[str, dict[str, Any]] = {}
        self.surrogates: dict[str, str] = {}

    def module(self, path: str, expected: type | tuple[type, ...]) -> Any:
        module = self.sj.get_submodule(path)
        kinds = expected if isinstance(expected, tuple) else (expected,)
        if type(module) not in kinds:
            names = " or ".join(k.__name__ for k in kinds)
            raise ConversionError(path, f"{type(module).__name__} where the Spikformer has {names}")
        self.seen.add(path)
        return module

    def children(self, path: str, count: int) -> None:
        got = len(list(self.sj.get_submodule(path).children()))
        if got != count:
            raise ConversionError(path, f"has {got} submodules where the Spikformer has {count}")

    def copy(self, path: str, target: str) -> None:
        for name, value in self.sj.get_submodule(path).state_dict().items():
            self.weights[f"{target}.{name}"] = value.detach().clone()

    def conv(self, path: str, target: str, kind: type, cin: int, cout: int, kernel: int) -> None:
        conv = self.module(path, kind)
        pad = kernel // 2
        want = {
            "in_channels": cin,
            "out_channels": cout,
            "kernel_size": (kernel,) * (2 if kind is nn.Conv2d else 1),
            "stride": (1,) * (2 if kind is nn.Conv2d else 1),
            "padding": (pad,) * (2 if kind is nn.Conv2d else 1),
            "dilation": (1,) * (2 if kind is nn.Conv2d else 1),
            "groups": 1,
            "padding_mode": "zeros",
        }
        for name, value in want.items():
            if getattr(conv, name) != value:
                raise ConversionError(path, f"{name}={getattr(conv, name)!r}; the Spikformer has {value!r}")
        if conv.bias is not None:
            raise ConversionError(path, "has a bias; the Spikformer's convolutions have none")
        self.copy(path, target)

    def norm(self, path: str, target: str, kind: type, channels: int) -> None:
        bn = self.module(path, kind)
        if bn.num_features != channels or not bn.affine or not bn.track_running_stats:
            raise ConversionError(
                path,
                f"num_features={bn.num_features}, affine={bn.affine}, track_running_stats="
                f"{bn.track_running_stats}; expected {channels}, True, True",
            )
        if bn.eps != 1e-5:
            raise ConversionError(path, f"eps={bn.eps!r}; the project's BatchNorm uses 1e-05")
        self.copy(path, target)

    def neuron(self, path: str, target: str) -> None:
        from spikingjelly.activation_based.neuron import LIFNode

        node = self.sj.get_submodule(path)
        if type(node) is not LIFNode:
            raise ConversionError(
                path,
                f"{type(node).__name__}: only LIFNode is computed by the project "
                "(decay_input, hard reset to 0, tau a power of two)",
            )
        self.seen.update(f"{path}.{name}" if name else path for name, _ in node.named_modules())
        if node.step_mode != "m":
            raise ConversionError(path, f"step_mode={node.step_mode!r}; the Spikformer runs multi-step ('m')")
        if node.v_reset is None:
            raise ConversionError(path, "soft reset (v_reset=None); the project resets to 0 (v_reset=0.0)")
        if node.v_reset != 0.0:
            raise ConversionError(path, f"v_reset={node.v_reset!r}; the project resets to 0 (v_reset=0.0)")
        if not node.decay_input:
            raise ConversionError(path, "decay_input=False; the project's LIF decays its input (True)")
        tau = float(node.tau)
        if not (tau >= 2 and math.log2(tau) == round(math.log2(tau))):
            raise ConversionError(path, f"tau={node.tau!r}; the project needs a power of two >= 2")
        if not node.v_threshold > 0:
            raise ConversionError(path, f"v_threshold={node.v_threshold!r}; it must be positive")
        if getattr(node, "_neuron_precision", None) is not None:
            raise ConversionError(path, f"neuron precision {node._neuron_precision!r}; only float32 is exact")
        fn = node.surrogate_function
        if not getattr(fn, "spiking", True):
            raise ConversionError(
                path, f"surrogate {type(fn).__name__} with spiking=False fires smoothly, not in spikes"
            )
        self.surrogates[path] = repr(fn)
        self.neurons[path] = target
        self.settings[path] = {
            "tau": tau,
            "v_threshold": float(node.v_threshold),
            "detach_reset": bool(node.detach_reset),
            "surrogate": fn,
        }


def _agree(walk: _Walk, paths: Sequence[str], setting: str) -> Any:
    """The value of ``setting`` shared by the neurons ``paths`` (refused where one differs)."""
    first = paths[0]
    value = walk.settings[first][setting]
    for path in paths[1:]:
        if walk.settings[path][setting] != value:
            raise ConversionError(
                path,
                f"{setting}={walk.settings[path][setting]!r} differs from {setting}={value!r} of {first}; "
                "the project's model has one value for these neurons",
            )
    return value


def _training_surrogate(walk: _Walk) -> tuple[str, float | None]:
    """The project surrogate that trains like SpikingJelly's, or its default where none does."""
    functions = [s["surrogate"] for s in walk.settings.values()]
    kinds = {(type(f).__name__, float(getattr(f, "alpha", math.nan))) for f in functions}
    if len(kinds) == 1:
        (name, alpha) = kinds.pop()
        if (
            name in _TRAINING_SURROGATES
            and alpha > 0
            and type(functions[0]).__module__.startswith("spikingjelly")
        ):
            return _TRAINING_SURROGATES[name], alpha
    return "sigmoid", None


def convert(sj: nn.Module) -> Conversion:
    """Convert SpikingJelly's Spikformer ``sj`` (see the module docstring); ``sj`` is not modified."""
    from spikingjelly.activation_based import layer
    from spikingjelly.activation_based.layer.attention import SpikingSelfAttention
    from spikingjelly.activation_based.model import spikformer as sjf

    _refuse_other_models(sj)
    walk = _Walk(sj)
    stem = walk.module("patch_embed", sjf.SpikformerPatchStem)
    if stem.patch_size not in PATCH_POOLS:
        raise ConversionError("patch_embed", f"patch_size={stem.patch_size!r}; 4 or 16 are supported")
    dim = int(stem.embed_dims)
    walk.module("patch_embed.stages", nn.Sequential)
    walk.children("patch_embed.stages", 4)
    first_conv = sj.get_submodule("patch_embed.stages.0.conv_bn.block.0")
    in_channels = int(getattr(first_conv, "in_channels", 0))
    widths = (in_channels, dim // 8, dim // 4, dim // 2, dim)
    stages = [
        (f"patch_embed.stages.{i}", f"stem.{i}", widths[i], widths[i + 1], p)
        for i, p in enumerate(PATCH_POOLS[stem.patch_size])
    ]
    stages.append(("patch_embed.positional_encoding", "pe", dim, dim, False))
    for path, target, cin, cout, pool in stages:
        walk.module(path, sjf.SpikformerConv2dBNLIF)
        walk.module(f"{path}.conv_bn", sjf.SpikformerConv2dBN)
        walk.module(f"{path}.conv_bn.block", layer.SeqToANNContainer)
        walk.children(f"{path}.conv_bn.block", 3 if pool else 2)
        walk.conv(f"{path}.conv_bn.block.0", f"{target}.conv", nn.Conv2d, cin, cout, 3)
        walk.norm(f"{path}.conv_bn.block.1", f"{target}.bn", nn.BatchNorm2d, cout)
        if pool:
            mp = walk.module(f"{path}.conv_bn.block.2", nn.MaxPool2d)
            got = (mp.kernel_size, mp.stride, mp.padding, mp.dilation, mp.ceil_mode, mp.return_indices)
            if got != (3, 2, 1, 1, False, False):
                raise ConversionError(
                    f"{path}.conv_bn.block.2",
                    f"(kernel, stride, padding, dilation, ceil_mode, return_indices)={got}; "
                    "the Spikformer pools with (3, 2, 1, 1, False, False)",
                )
        walk.neuron(f"{path}.neuron", f"{target}.lif")

    walk.module("blocks", nn.ModuleList)
    depth = len(sj.blocks)
    heads = int(sj.num_heads)
    hidden = int(sj.blocks[0].mlp.fc1[0].out_channels) if depth else dim * 4
    attention_paths: list[str] = []
    for b in range(depth):
        base, target = f"blocks.{b}", f"blocks.{b}"
        walk.module(base, sjf.SpikformerBlock)
        walk.children(base, 2)
        attn = walk.module(f"{base}.attn", SpikingSelfAttention)
        walk.children(f"{base}.attn", 5)
        if attn.num_heads != heads or attn.dim != dim or attn.scale != 0.125:
            raise ConversionError(
                f"{base}.attn",
                f"(dim, num_heads, scale)=({attn.dim}, {attn.num_heads}, {attn.scale}); "
                f"the model has ({dim}, {heads}, 0.125)",
            )
        for part, cout, lif, to in (("qkv", 3 * dim, "qkv_lif", "qkv"), ("proj", dim, "proj_lif", "proj")):
            walk.module(f"{base}.attn.{part}_conv_bn", layer.SeqToANNContainer)
            walk.children(f"{base}.attn.{part}_conv_bn", 2)
            walk.conv(f"{base}.attn.{part}_conv_bn.0", f"{target}.attn.{to}.conv", nn.Conv1d, dim, cout, 1)
            walk.norm(f"{base}.attn.{part}_conv_bn.1", f"{target}.attn.{to}.bn", nn.BatchNorm1d, cout)
            walk.neuron(f"{base}.attn.{lif}", f"{target}.attn.{to}.lif")
            attention_paths.append(f"{base}.attn.{lif}")
        walk.neuron(f"{base}.attn.attn_lif", f"{target}.attn.attn_lif")
        walk.module(f"{base}.mlp", sjf.SpikformerMLP)
        walk.children(f"{base}.mlp", 4)
        for i, (cin, cout) in enumerate(((dim, hidden), (hidden, dim)), start=1):
            walk.module(f"{base}.mlp.fc{i}", layer.SeqToANNContainer)
            walk.children(f"{base}.mlp.fc{i}", 2)
            walk.conv(f"{base}.mlp.fc{i}.0", f"{target}.mlp.fc{i}.conv", nn.Conv1d, cin, cout, 1)
            walk.norm(f"{base}.mlp.fc{i}.1", f"{target}.mlp.fc{i}.bn", nn.BatchNorm1d, cout)
            walk.neuron(f"{base}.mlp.neuron{i}", f"{target}.mlp.fc{i}.lif")

    head = walk.module("head", layer.Linear)
    if head.step_mode != "m" or head.in_features != dim or head.bias is None:
        raise ConversionError(
            "head",
            f"step_mode={head.step_mode!r}, in_features={head.in_features}, bias={head.bias is not None}; "
            f"expected 'm', {dim}, True",
        )
    walk.copy("head", "head.linear")
    unknown = [p for p, _ in sj.named_modules() if p not in walk.seen]
    if unknown:
        module = sj.get_submodule(unknown[0])
        raise ConversionError(unknown[0], f"{type(module).__name__} is not part of SpikingJelly's Spikformer")

    all_neurons = list(walk.neurons)
    attn_lifs = [p for p in all_neurons if p.endswith(".attn_lif")]
    others = [p for p in all_neurons if p not in attn_lifs]
    stem_mlp = [p for p in others if p not in attention_paths]
    surrogate, alpha = _training_surrogate(walk)
    height, width = (int(v) for v in stem.image_size)
    cfg = SjSpikformerConfig(
        in_channels=in_channels,
        img_size=height,
        img_width=None if width == height else width,
        num_classes=int(head.out_features),
        timesteps=int(sj.T),
        patch_size=int(stem.patch_size),
        embed_dim=dim,
        heads=heads,
        depth=depth,
        mlp_hidden=hidden,
        tau=_agree(walk, all_neurons, "tau"),
        v_threshold=_agree(walk, others, "v_threshold"),
        attn_threshold=_agree(walk, attn_lifs, "v_threshold") if attn_lifs else 0.5,
        detach_reset=_agree(walk, stem_mlp, "detach_reset"),
        attn_detach_reset=_agree(walk, attention_paths + attn_lifs, "detach_reset") if depth else True,
        surrogate=surrogate,
        surrogate_alpha=alpha,
    )
    model = SjSpikformer(cfg)
    model.load_state_dict(walk.weights, strict=True)
    default = SjSpikformerConfig()
    overrides = {
        f.name: getattr(cfg, f.name) for f in fields(cfg) if getattr(cfg, f.name) != getattr(default, f.name)
    }
    return Conversion(
        model=model.eval(), overrides=overrides, surrogates=walk.surrogates, neurons=walk.neurons
    )


def from_spikingjelly(module: nn.Module) -> SjSpikformer:
    """The project model (eval mode) that computes what SpikingJelly's Spikformer ``module`` computes.

    Raises
    ------
    ConversionError
        ``module`` holds a module or setting the project cannot compute exactly.
    """
    return convert(module).model


# --------------------------------------------------------------------------- command line
_CONFIG_HELP = """\
CONFIG is a JSON object (inline, or a file holding it) of the arguments of SpikingJelly's
spikformer constructor, e.g.
  {"T": 4, "in_channels": 1, "img_size_h": 32, "img_size_w": 32, "patch_size": 4,
   "num_classes": 10, "embed_dims": 64, "num_heads": 4, "mlp_ratio": 4.0, "depths": 2}
Keys: "model" (optional): "Spikformer" (default), "spikformer_ti", "spikformer_s" or
"spikformer_cifar10"; T, in_channels, img_size_h, img_size_w, patch_size (4 or 16),
num_classes, embed_dims, num_heads, mlp_ratio, depths as Spikformer takes them; neuron
keywords passed on to every neuron (tau, v_threshold, v_reset, decay_input,
detach_reset); "spiking_neuron": a class name in spikingjelly.activation_based.neuron;
"surrogate_function": {"name": "Sigmoid", "alpha": 4.0} (a class in
spikingjelly.activation_based.surrogate and its arguments).
"""


def build_spikingjelly(config: Mapping[str, Any]) -> nn.Module:
    """Build the SpikingJelly model that ``config`` (the CLI's JSON, see ``--help``) describes."""
    from spikingjelly.activation_based import neuron, surrogate
    from spikingjelly.activation_based.model import spikformer as sjf

    kwargs = dict(config)
    builders: dict[str, Callable[..., nn.Module]] = {
        "Spikformer": sjf.Spikformer,
        "spikformer_ti": sjf.spikformer_ti,
        "spikformer_s": sjf.spikformer_s,
        "spikformer_cifar10": sjf.spikformer_cifar10,
    }
    name = kwargs.pop("model", "Spikformer")
    if name not in builders:
        raise ValueError(f"config 'model' must be one of {sorted(builders)}, not {name!r}")
    if "spiking_neuron" in kwargs:
        kwargs["spiking_neuron"] = getattr(neuron, str(kwargs["spiking_neuron"]))
    if "surrogate_function" in kwargs:
        spec = dict(kwargs["surrogate_function"])
        kwargs["surrogate_function"] = getattr(surrogate, str(spec.pop("name")))(**spec)
    for key in ("tau", "v_threshold", "v_reset"):  # SpikingJelly asserts floats; JSON may give ints
        if isinstance(kwargs.get(key), int) and not isinstance(kwargs.get(key), bool):
            kwargs[key] = float(kwargs[key])
    return builders[name](**kwargs)


def _default_data(cfg: SjSpikformerConfig) -> tuple[str, dict[str, Any]]:
    if cfg.in_channels == 1:
        return "digits", {}
    if cfg.in_channels == 2 and cfg.img_width is None:
        return "synthetic-events", {"size": cfg.img_size}
    raise ValueError("pass --data: no embedded dataset has this model's input shape")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m golden.interop.spikingjelly",
        description="Convert a SpikingJelly Spikformer into a checkpoint that golden.eval loads.",
        epilog=_CONFIG_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--config", required=True, help="JSON object or JSON file: SpikingJelly's constructor arguments"
    )
    p.add_argument("--state-dict", required=True, help="torch.save'd state_dict of the SpikingJelly model")
    p.add_argument("--out", required=True, help="directory for checkpoint.pt and conversion.json")
    p.add_argument(
        "--data",
        help="dataset golden.eval evaluates on (default: digits for 1 channel, synthetic-events for 2)",
    )
    p.add_argument("--data-kwargs", default="{}", help="JSON object of build_dataset options")
    return p


def _load_config(text: str) -> dict[str, Any]:
    raw = text if text.lstrip().startswith("{") else Path(text).read_text()
    config = json.loads(raw)
    if not isinstance(config, dict):
        raise ValueError(f"--config must hold a JSON object, not {type(config).__name__}")
    return config


def _load_state_dict(path: str) -> dict[str, torch.Tensor]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):  # training scripts often wrap the weights
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state_dict")
    return state


def run(argv: Sequence[str] | None = None) -> Path:
    """Convert as the command line says; return the checkpoint path."""
    from importlib.metadata import version

    from ..checkpoint import save_checkpoint

    args = build_parser().parse_args(argv)
    config = _load_config(args.config)
    sj = build_spikingjelly(config)
    sj.load_state_dict(_load_state_dict(args.state_dict), strict=True)
    result = convert(sj.eval())
    cfg = result.model.cfg
    data, data_kwargs = (args.data, {}) if args.data else _default_data(cfg)
    data_kwargs = {"timesteps": cfg.timesteps, **data_kwargs, **json.loads(args.data_kwargs)}
    surrogates = sorted(set(result.surrogates.values()))
    meta = {
        "source": "spikingjelly",
        "spikingjelly_version": version("spikingjelly"),
        "spikingjelly_config": config,
        "surrogates": surrogates,
        "training_surrogate": cfg.surrogate,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = save_checkpoint(
        out / "checkpoint.pt",
        model=result.model,
        preset=PRESET,
        model_overrides=result.overrides,
        data=data,
        data_kwargs=data_kwargs,
        epoch=0,
        metrics=[],
        args=meta,
    )
    summary = {**meta, "preset": PRESET, "model_cfg": asdict(cfg), "neurons": result.neurons}
    (out / "conversion.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"{PRESET}: {cfg.depth} blocks, D={cfg.embed_dim}, {cfg.heads} heads, "
        f"surrogate {surrogates} -> {path}"
    )
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point: 2 for a refused model or a bad request."""
    try:
        run(argv)
    except (ConversionError, ValueError, OSError) as exc:
        print(f"golden.interop.spikingjelly: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
