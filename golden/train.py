"""Train a golden model preset: ``python -m golden.train --preset hw-tiny --data digits ...``.

Single process (CPU or one GPU) or data parallel under ``torchrun`` (DDP; ``gloo`` on the
CPU, ``nccl`` on CUDA). Per-preset defaults come from :mod:`golden.recipes`; anything on
the command line overrides them. Each epoch writes, from rank 0 only, into ``--out``:

``checkpoint.pt``    the last epoch (atomic write); ``--resume`` continues from it
``best.pt``          the epoch with the best test accuracy so far
``metrics.csv``      one row per epoch (losses, accuracies, lr, times, firing rates)
``metrics.json``     the same plus the resolved configuration
``curves.png``       loss / accuracy / learning-rate curves
``firing_rates.csv``, ``firing_rates.png``   per-LIF-layer firing rates on the test split
``summary.json``     best and final accuracy, time, parameter count (at the end)
``train.log``        the console log

Resuming is bit-identical: the checkpoint carries model, optimizer, scheduler, scaler,
epoch and generator states, and the data order of every epoch depends on
``(seed, epoch)`` only (docs/training.md says what is reproducible across machines).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import os
import random
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from .checkpoint import capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from .distributed import (
    DistContext,
    check_in_sync,
    cleanup_distributed,
    setup_distributed,
    sync_buffers,
    unwrap_model,
)
from .engine import Amp, LRSchedule, build_optimizer, evaluate, train_one_epoch
from .loaders import build_datasets, epoch_seed, eval_loader, train_loader
from .mixing import Mixer
from .plots import plot_firing_rates, plot_training_curves
from .recipes import OPTIMIZERS, SCHEDULES, recipe_for
from .runlog import setup_logging, write_json, write_metrics

__all__ = ["TrainConfig", "ResumeError", "build_parser", "resolve_config", "run", "main"]

CHECKPOINT_NAME = "checkpoint.pt"
BEST_NAME = "best.pt"
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


def _resumed_config(args: argparse.Namespace, stored: Mapping[str, Any], ckpt: Path) -> TrainConfig:
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


# --------------------------------------------------------------------------- set-up helpers


def configure_determinism(deterministic: bool, device: torch.device) -> None:
    """Deterministic kernels where they are cheap; cuDNN autotuning otherwise."""
    if device.type == "cuda":
        # cuBLAS needs this before its first use to be deterministic.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cudnn.deterministic = deterministic
    # warn_only: a kernel without a deterministic version warns instead of stopping the run.
    torch.use_deterministic_algorithms(deterministic, warn_only=True)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _check_model_fits_data(model: nn.Module, cfg: TrainConfig) -> None:
    from .data import dataset_info

    info = dataset_info(cfg.data, **cfg.data_kwargs)
    mcfg = getattr(model, "cfg", None)
    want_classes = getattr(mcfg, "num_classes", info.num_classes)
    if want_classes != info.num_classes:
        raise ValueError(
            f"preset {cfg.preset!r} has {want_classes} classes but dataset {cfg.data!r} "
            f"has {info.num_classes}; "
            f"pass --set num_classes={info.num_classes}"
        )
    channels = getattr(mcfg, "in_channels", info.shape[0])
    if channels != info.shape[0]:
        raise ValueError(
            f"preset {cfg.preset!r} takes {channels} input channels but dataset {cfg.data!r} gives "
            f"{info.shape[0]} (sample shape {info.shape})"
        )


def _data_kwargs_with_timesteps(cfg: TrainConfig, model: nn.Module) -> dict[str, Any]:
    timesteps = int(
        getattr(getattr(model, "cfg", None), "timesteps", cfg.model_overrides.get("timesteps", 1))
    )
    return {**cfg.data_kwargs, "timesteps": timesteps}


def _count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------- the run


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse ``argv``, train, and return the run summary (also written to ``summary.json``)."""
    args = build_parser().parse_args(argv)
    ctx = setup_distributed(args.device)
    try:
        return _train(args, ctx)
    finally:
        cleanup_distributed(ctx)


def _train(args: argparse.Namespace, ctx: DistContext) -> dict[str, Any]:
    from .models import create_model

    out = Path(args.out)
    ckpt_path = out / CHECKPOINT_NAME
    state: dict[str, Any] | None = None
    if args.resume:
        state = load_checkpoint(ckpt_path)
        cfg = _resumed_config(args, state["args"], ckpt_path)
    else:
        cfg = resolve_config(args, ctx)
    log = setup_logging("golden.train", main=ctx.is_main, log_file=out / "train.log", append=args.resume)
    if ctx.is_main and not args.resume and ckpt_path.exists():
        log.warning("%s exists and is overwritten (pass --resume to continue it)", ckpt_path)
    if args.resume and cfg.world_size != ctx.world_size:
        log.warning(
            "resuming a %d-process run on %d processes: batches differ from the original run",
            cfg.world_size,
            ctx.world_size,
        )
        cfg = dataclasses.replace(cfg, world_size=ctx.world_size)
    # One intra-op thread per process on the CPU unless told otherwise: the ops of these models
    # are small, and OpenMP threads spin-wait badly on busy cores (docs/training.md, "Threads").
    if args.threads or ctx.device.type == "cpu":
        torch.set_num_threads(args.threads or 1)
    workers = args.workers if args.workers is not None else (4 if ctx.device.type == "cuda" else 0)

    configure_determinism(cfg.deterministic, ctx.device)
    seed_everything(cfg.seed)
    model = create_model(cfg.preset, **cfg.model_overrides)
    _check_model_fits_data(model, cfg)
    data_kwargs = _data_kwargs_with_timesteps(cfg, model)
    train_ds, test_ds = build_datasets(
        cfg.data,
        args.data_root,
        timesteps=data_kwargs["timesteps"],
        data_kwargs=cfg.data_kwargs,
        augment=cfg.augment,
        train_limit=cfg.train_limit,
        test_limit=cfg.test_limit,
        seed=cfg.seed,
    )
    n_params = _count_parameters(model)
    log.info(
        "preset %s (%s parameters) on %s: %d train / %d test samples, device %s x%d, amp %s",
        cfg.preset,
        f"{n_params:,}",
        cfg.data,
        len(train_ds),
        len(test_ds),
        ctx.device,
        ctx.world_size,
        cfg.amp_dtype if cfg.amp else "off",
    )

    model.to(ctx.device)
    if ctx.distributed:
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None
        )
    first_loader = train_loader(
        train_ds, batch_size=cfg.batch_size, ctx=ctx, seed=cfg.seed, epoch=0, workers=workers
    )
    steps = (
        len(first_loader)
        if cfg.max_steps_per_epoch is None
        else min(len(first_loader), cfg.max_steps_per_epoch)
    )
    if steps < 1:
        raise ValueError(
            f"{len(train_ds)} training samples over {ctx.world_size} process(es) do not fill one batch of "
            f"{cfg.batch_size}; lower --batch-size"
        )
    optimizer = build_optimizer(
        model, opt=cfg.opt, lr=cfg.lr, weight_decay=cfg.weight_decay, momentum=cfg.momentum
    )
    schedule = LRSchedule(
        total_steps=cfg.epochs * steps,
        warmup_steps=round(cfg.warmup_epochs * steps),
        steps_per_epoch=steps,
        sched=cfg.sched,
        warmup_start=cfg.warmup_start,
        min_lr_ratio=cfg.min_lr_ratio,
        step_size=cfg.step_size,
        gamma=cfg.gamma,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    amp = Amp(enabled=cfg.amp, dtype=AMP_DTYPES[cfg.amp_dtype])
    scaler = torch.amp.GradScaler(ctx.device.type, enabled=amp.needs_scaler)
    mixer = Mixer(
        num_classes=int(unwrap_model(model).cfg.num_classes),
        mixup_alpha=cfg.mixup,
        cutmix_alpha=cfg.cutmix,
        label_smoothing=cfg.label_smoothing,
    )

    history: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    start_epoch = 0
    if state is not None:
        unwrap_model(model).load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        for fn in scheduler.lr_lambdas:  # a longer --epochs stretches the schedule from here on
            fn.total_steps = cfg.epochs * steps
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        restore_rng_state(state["rng"])
        start_epoch = int(state["epoch"])
        history = [dict(r) for r in state["metrics"]]
        best = dict(state["best"]) if state.get("best") else None
        log.info("resumed %s at epoch %d of %d", ckpt_path, start_epoch, cfg.epochs)
    test_loader = eval_loader(test_ds, batch_size=cfg.eval_batch_size, ctx=ctx, workers=workers)
    header = {"preset": cfg.preset, "data": cfg.data, "parameters": n_params, "config": cfg.as_dict()}

    stop = cfg.epochs if args.stop_after is None else min(cfg.epochs, args.stop_after)
    for epoch in range(start_epoch, stop):
        t0 = time.perf_counter()
        loader = (
            first_loader
            if epoch == 0
            else train_loader(
                train_ds, batch_size=cfg.batch_size, ctx=ctx, seed=cfg.seed, epoch=epoch, workers=workers
            )
        )
        train_metrics = train_one_epoch(
            model,
            loader,
            optimizer=optimizer,
            scheduler=scheduler,
            scaler=scaler,
            mixer=mixer,
            rng=np.random.default_rng(epoch_seed(cfg.seed, epoch, stream=2 + ctx.rank)),
            ctx=ctx,
            amp=amp,
            steps=steps,
            clip_grad=cfg.clip_grad,
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
        )
        sync_buffers(model, ctx)  # every rank evaluates and saves the same BatchNorm statistics
        # The bare model: DDP's forward would add collectives, and shards may differ in batch count.
        result = evaluate(unwrap_model(model), test_loader, ctx=ctx, amp=amp, desc="test")
        epoch_time = time.perf_counter() - t0
        assert result.firing is not None
        row: dict[str, Any] = {
            "epoch": epoch + 1,
            **train_metrics,
            "test_loss": result.loss,
            "test_acc": result.acc,
            "test_samples": result.samples,
            "mean_firing_rate": result.firing.mean_rate(),
            "epoch_time_s": epoch_time,
            "elapsed_s": (history[-1]["elapsed_s"] if history else 0.0) + epoch_time,
            "firing_rates": result.firing.rates(),
        }
        if args.check_sync:
            row["ranks_in_sync"] = check_in_sync(model, ctx)
        history.append(row)
        improved = best is None or result.acc > best["test_acc"]
        if improved:
            best = {"epoch": epoch + 1, "test_acc": result.acc, "test_loss": result.loss}
        log.info(
            "epoch %3d/%d  train loss %.4f acc %6.2f%%  test loss %.4f acc %6.2f%%  "
            "lr %.2e  firing %.3f  %.1fs",
            epoch + 1,
            cfg.epochs,
            row["train_loss"],
            row["train_acc"],
            result.loss,
            result.acc,
            row["lr"],
            row["mean_firing_rate"],
            epoch_time,
        )
        rng = capture_rng_state()
        if ctx.is_main:
            common = dict(
                model=model,
                preset=cfg.preset,
                model_overrides=cfg.model_overrides,
                data=cfg.data,
                data_kwargs=data_kwargs,
                epoch=epoch + 1,
                metrics=history,
                args=cfg.as_dict(),
                optimizer=optimizer,
                scheduler=scheduler,
                scaler=scaler,
                rng=rng,
                best=best,
            )
            save_checkpoint(ckpt_path, **common)
            if improved:
                save_checkpoint(out / BEST_NAME, **common)
            _write_epoch_files(out, history, header, result.firing, title=f"{cfg.preset} on {cfg.data}")

    summary = _summary(cfg, history, best, n_params)
    if ctx.is_main:
        if history:
            _write_epoch_files(out, history, header, None, title=f"{cfg.preset} on {cfg.data}")
        write_json(out / "summary.json", summary)
        log.info(
            "done: final test acc %.2f%%, best %.2f%% (epoch %s), %.1fs training",
            summary["final_test_acc"],
            summary["best_test_acc"],
            summary["best_epoch"],
            summary["train_time_s"],
        )
    return summary


def _write_epoch_files(
    out: Path, history: list[dict[str, Any]], header: dict[str, Any], firing: Any, *, title: str
) -> None:
    write_metrics(history, out / "metrics.csv", out / "metrics.json", header=header)
    plot_training_curves(history, out / "curves.png", title=title)
    if firing is not None:
        firing.write_csv(out / "firing_rates.csv")
        plot_firing_rates(firing.rates(), out / "firing_rates.png", title=f"{title}: test-split firing rates")


def _summary(
    cfg: TrainConfig, history: list[dict[str, Any]], best: dict[str, Any] | None, n_params: int
) -> dict[str, Any]:
    last = history[-1] if history else {}
    return {
        "preset": cfg.preset,
        "data": cfg.data,
        "parameters": n_params,
        "epochs": len(history),
        "final_test_acc": last.get("test_acc", float("nan")),
        "final_test_loss": last.get("test_loss", float("nan")),
        "best_test_acc": best["test_acc"] if best else float("nan"),
        "best_epoch": best["epoch"] if best else None,
        "train_time_s": last.get("elapsed_s", 0.0),
        "mean_firing_rate": last.get("mean_firing_rate", float("nan")),
        "world_size": cfg.world_size,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point: returns the process exit status."""
    try:
        run(argv)
    except KeyboardInterrupt:
        print("interrupted; the last finished epoch is in the run's checkpoint.pt", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
