"""The configuration of a training run: command line, recipe defaults, resume rules.

:class:`TrainConfig` holds every setting that changes the trained weights; it is stored in
the checkpoint (``args``) and is what ``--resume`` continues with. The command line
(:func:`build_parser`) leaves each training option at ``None`` unless given, so
:func:`resolve_config` can tell "not given" (take the preset's recipe) from "given".
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .distributed import DistContext
from .recipes import OPTIMIZERS, SCHEDULES, recipe_for

__all__ = [
    "AMP_DTYPES",
    "CHECKPOINT_NAME",
    "ResumeError",
    "TrainConfig",
    "build_parser",
    "resolve_config",
    "resumed_config",
]

CHECKPOINT_NAME = "checkpoint.pt"
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class ResumeError(ValueError):
    """``--resume`` was asked for, but the run cannot continue as requested."""


@dataclass(frozen=True)
class TrainConfig:
    """Every setting that changes the trained weights (stored in the checkpoint as ``args``).

    Runtime settings that do not change the result (paths, workers, device index,
    progress bars) are not part of it. See :class:`golden.recipes.Recipe` for the meaning
    of the shared fields.
    """

    preset: str
    data: str
    epochs: int
    batch_size: int
    eval_batch_size: int
    lr: float
    opt: str
    momentum: float
    weight_decay: float
    warmup_epochs: float
    warmup_start: float
    sched: str
    step_size: int
    gamma: float
    min_lr_ratio: float
    label_smoothing: float
    mixup: float
    cutmix: float
    augment: bool
    clip_grad: float
    sync_bn: bool
    amp: bool
    amp_dtype: str
    seed: int
    deterministic: bool
    max_steps_per_epoch: int | None
    train_limit: int | None
    test_limit: int | None
    world_size: int
    model_overrides: dict[str, Any] = field(default_factory=dict)
    data_kwargs: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------- command line


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, not {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative number, not {text!r}")
    return value


def _unit_float(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1], not {text!r}")
    return value


def _key_value(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE with KEY a field name, not {text!r}")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw  # a bare word is a string
    return key, value


def build_parser() -> argparse.ArgumentParser:
    """The ``golden.train`` command line; training options default to ``None`` = from the recipe."""
    p = argparse.ArgumentParser(
        prog="python -m golden.train",
        description="Train a Spikeformer preset (float, surrogate gradients). "
        "Options left out take the preset's recipe (golden/recipes.py).",
    )
    p.add_argument("--preset", required=True, help="model preset (golden.models.list_models())")
    p.add_argument("--data", help="dataset name (default: the preset's recipe)")
    p.add_argument("--data-root", default="build/data", help="dataset directory (default: build/data)")
    p.add_argument("--out", required=True, help="run directory for checkpoints, metrics and plots")
    g = p.add_argument_group("schedule and optimizer")
    g.add_argument("--epochs", type=_positive_int)
    g.add_argument("--batch-size", type=_positive_int, help="per process")
    g.add_argument("--eval-batch-size", type=_positive_int)
    g.add_argument("--lr", type=_non_negative_float, help="peak learning rate")
    g.add_argument("--opt", choices=OPTIMIZERS)
    g.add_argument("--momentum", type=_unit_float, help="SGD momentum")
    g.add_argument("--weight-decay", type=_non_negative_float)
    g.add_argument("--warmup-epochs", type=_non_negative_float)
    g.add_argument("--warmup-start", type=_unit_float, help="warm-up starts at this fraction of --lr")
    g.add_argument("--sched", choices=SCHEDULES)
    g.add_argument("--step-size", type=_positive_int, help="epochs per decay of the step schedule")
    g.add_argument("--gamma", type=_non_negative_float, help="decay factor of the step schedule")
    g.add_argument("--min-lr-ratio", type=_unit_float, help="cosine floor as a fraction of --lr")
    g.add_argument("--clip-grad", type=_non_negative_float, help="max gradient norm (0: off)")
    g.add_argument(
        "--sync-bn", action=argparse.BooleanOptionalAction, help="SyncBatchNorm in multi-GPU runs (CUDA only)"
    )
    g = p.add_argument_group("regularisation")
    g.add_argument("--label-smoothing", type=_unit_float)
    g.add_argument("--mixup", type=_non_negative_float, metavar="ALPHA", help="mixup Beta alpha (0: off)")
    g.add_argument("--cutmix", type=_non_negative_float, metavar="ALPHA", help="cutmix Beta alpha (0: off)")
    g.add_argument("--augment", action=argparse.BooleanOptionalAction, help="dataset training augmentation")
    g = p.add_argument_group("model and data")
    g.add_argument("--timesteps", type=_positive_int, help="time steps T (model and event frames)")
    g.add_argument("--attention", help="attention token grouping of hardware presets (joint|divided|spatial)")
    g.add_argument(
        "--set",
        dest="model_set",
        type=_key_value,
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a model config field (repeatable)",
    )
    g.add_argument(
        "--data-opt",
        type=_key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra build_dataset option (repeatable)",
    )
    g.add_argument("--train-limit", type=_positive_int, help="train on a seeded subset of this many samples")
    g.add_argument("--test-limit", type=_positive_int, help="test on a seeded subset of this many samples")
    g.add_argument("--max-steps-per-epoch", type=_positive_int, help="cap optimizer steps per epoch")
    g = p.add_argument_group("runtime")
    g.add_argument("--seed", type=_non_negative_int)
    g.add_argument("--amp", action=argparse.BooleanOptionalAction, help="mixed precision (default: on CUDA)")
    g.add_argument("--amp-dtype", choices=sorted(AMP_DTYPES), help="default bf16 where supported, else fp16")
    g.add_argument(
        "--deterministic", action=argparse.BooleanOptionalAction, help="deterministic kernels (default on)"
    )
    g.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    g.add_argument(
        "--workers", type=_non_negative_int, help="data loader processes (default: 0 on CPU, 4 on CUDA)"
    )
    g.add_argument(
        "--threads",
        type=_positive_int,
        help="torch intra-op threads (default: 1 on CPU, torch's default on CUDA)",
    )
    g.add_argument("--resume", action="store_true", help=f"continue from OUT/{CHECKPOINT_NAME}")
    g.add_argument(
        "--stop-after",
        type=_positive_int,
        metavar="EPOCHS",
        help="stop once this many epochs are done; the schedule still spans --epochs (time-limited jobs: "
        "run again with --resume)",
    )
    g.add_argument(
        "--check-sync",
        action="store_true",
        help="after every epoch, verify that all ranks hold bitwise identical weights",
    )
    return p


_FROM_RECIPE = (
    "epochs",
    "batch_size",
    "lr",
    "opt",
    "momentum",
    "weight_decay",
    "warmup_epochs",
    "warmup_start",
    "sched",
    "step_size",
    "gamma",
    "min_lr_ratio",
    "label_smoothing",
    "mixup",
    "cutmix",
    "augment",
    "clip_grad",
    "sync_bn",
)


def _cli_model_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Model config fields set on the command line (``--timesteps``, ``--attention``, ``--set``)."""
    out: dict[str, Any] = {}
    if args.timesteps is not None:
        out["timesteps"] = args.timesteps
    if args.attention is not None:
        out["attention"] = args.attention
    out.update(dict(args.model_set))
    return out


def resolve_config(args: argparse.Namespace, ctx: DistContext) -> TrainConfig:
    """Fill every training option the command line left out from the preset's recipe."""
    recipe = recipe_for(args.preset)
    values: dict[str, Any] = {
        k: getattr(args, k) if getattr(args, k) is not None else getattr(recipe, k) for k in _FROM_RECIPE
    }
    model_overrides = dict(recipe.model_overrides)
    if recipe.timesteps is not None:
        model_overrides["timesteps"] = recipe.timesteps
    model_overrides.update(_cli_model_overrides(args))
    cuda = ctx.device.type == "cuda"
    amp = cuda if args.amp is None else args.amp
    if amp and not cuda:
        raise ValueError(
            "--amp needs a CUDA device (mixed precision is GPU-only here); drop it or use --device cuda"
        )
    bf16_ok = cuda and torch.cuda.is_bf16_supported()
    amp_dtype = args.amp_dtype or ("bf16" if bf16_ok or not cuda else "fp16")
    return TrainConfig(
        preset=args.preset,
        data=args.data or recipe.data,
        eval_batch_size=args.eval_batch_size or max(values["batch_size"], 64),
        amp=amp,
        amp_dtype=amp_dtype,
        seed=0 if args.seed is None else args.seed,
        deterministic=True if args.deterministic is None else args.deterministic,
        max_steps_per_epoch=args.max_steps_per_epoch,
        train_limit=args.train_limit,
        test_limit=args.test_limit,
        world_size=ctx.world_size,
        model_overrides=model_overrides,
        data_kwargs={**recipe.data_kwargs, **dict(args.data_opt)},
        **values,
    )


def resumed_config(args: argparse.Namespace, stored: Mapping[str, Any], ckpt: Path) -> TrainConfig:
    """The checkpoint's configuration; a conflicting explicit option is an error (``--epochs`` may grow)."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    missing = sorted(names - set(stored))
    if missing:
        raise ResumeError(
            f"{ckpt}: stored training arguments lack {missing}; it was not written by this version"
        )
    cfg = TrainConfig(**{k: stored[k] for k in names})
    explicit = {k: getattr(args, k) for k in names & set(vars(args)) if getattr(args, k) is not None}
    explicit.pop("world_size", None)
    cli_overrides = _cli_model_overrides(args)
    if cli_overrides:
        explicit["model_overrides"] = {**cfg.model_overrides, **cli_overrides}
    if args.data_opt:
        explicit["data_kwargs"] = {**cfg.data_kwargs, **dict(args.data_opt)}
    conflicts = [
        f"--{k.replace('_', '-')} {v!r} (checkpoint: {getattr(cfg, k)!r})"
        for k, v in sorted(explicit.items())
        if k != "epochs" and v != getattr(cfg, k)
    ]
    if conflicts:
        raise ResumeError(f"{ckpt}: cannot resume with changed settings: {'; '.join(conflicts)}")
    if args.epochs is not None:
        cfg = dataclasses.replace(cfg, epochs=args.epochs)
    return cfg
