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
import dataclasses
import math
import os
import random
import sys
import time
from collections.abc import Sequence
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
from .firing import FiringStats
from .loaders import build_datasets, epoch_seed, eval_loader, train_loader
from .mixing import Mixer
from .plots import plot_firing_rates, plot_training_curves
from .runlog import USER_ERRORS, print_user_error, setup_logging, write_json, write_metrics
from .train_config import (
    AMP_DTYPES,
    CHECKPOINT_NAME,
    ResumeError,
    TrainConfig,
    build_parser,
    resolve_config,
    resumed_config,
)

__all__ = ["TrainConfig", "ResumeError", "build_parser", "resolve_config", "run", "main"]

BEST_NAME = "best.pt"
PLOT_INTERVAL_S = 60.0


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
    size = getattr(mcfg, "img_size", info.shape[1])
    if channels != info.shape[0] or size != info.shape[1]:
        raise ValueError(
            f"preset {cfg.preset!r} takes {channels}x{size}x{size} inputs but dataset {cfg.data!r} gives "
            f"{'x'.join(map(str, info.shape))}; pick the matching preset or pass --set in_channels=/img_size="
        )


def _data_kwargs_with_timesteps(cfg: TrainConfig, model: nn.Module) -> dict[str, Any]:
    timesteps = int(
        getattr(getattr(model, "cfg", None), "timesteps", cfg.model_overrides.get("timesteps", 1))
    )
    return {**cfg.data_kwargs, "timesteps": timesteps}


# --------------------------------------------------------------------------- the run


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse ``argv``, train, and return the run summary (also written to ``summary.json``)."""
    args = build_parser().parse_args(argv)
    ctx = setup_distributed(args.device)
    try:
        return _train(args, ctx)
    finally:
        cleanup_distributed(ctx)


class _Trainer:
    """Everything one training run holds: model, data, optimizer, schedule; one method per stage."""

    def __init__(self, cfg: TrainConfig, ctx: DistContext, *, data_root: str, workers: int) -> None:
        from .models import create_model

        self.cfg, self.ctx, self.workers = cfg, ctx, workers
        model = create_model(cfg.preset, **cfg.model_overrides)
        _check_model_fits_data(model, cfg)
        self.data_kwargs = _data_kwargs_with_timesteps(cfg, model)
        self.train_ds, test_ds = build_datasets(
            cfg.data,
            data_root,
            timesteps=self.data_kwargs["timesteps"],
            data_kwargs=cfg.data_kwargs,
            augment=cfg.augment,
            train_limit=cfg.train_limit,
            test_limit=cfg.test_limit,
            seed=cfg.seed,
        )
        self.test_loader = eval_loader(test_ds, batch_size=cfg.eval_batch_size, ctx=ctx, workers=workers)
        self.n_params = sum(p.numel() for p in model.parameters())
        self.num_classes = int(model.cfg.num_classes)
        model.to(ctx.device)
        if cfg.sync_bn and ctx.distributed and ctx.device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # same state-dict keys as BatchNorm
        if ctx.distributed:
            model = nn.parallel.DistributedDataParallel(
                model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None
            )
        self.model = model
        # The step count is the same every epoch (the sampler pads ranks to equal length).
        batches = len(self._loader(0))
        self.steps = batches if cfg.max_steps_per_epoch is None else min(batches, cfg.max_steps_per_epoch)
        if self.steps < 1:
            raise ValueError(
                f"{len(self.train_ds)} training samples over {ctx.world_size} process(es) do not fill one "
                f"batch of {cfg.batch_size}; lower --batch-size"
            )
        self.optimizer = build_optimizer(
            model, opt=cfg.opt, lr=cfg.lr, weight_decay=cfg.weight_decay, momentum=cfg.momentum
        )
        schedule = LRSchedule(
            total_steps=cfg.epochs * self.steps,
            warmup_steps=round(cfg.warmup_epochs * self.steps),
            steps_per_epoch=self.steps,
            sched=cfg.sched,
            warmup_start=cfg.warmup_start,
            min_lr_ratio=cfg.min_lr_ratio,
            step_size=cfg.step_size,
            gamma=cfg.gamma,
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule)
        self.amp = Amp(enabled=cfg.amp, dtype=AMP_DTYPES[cfg.amp_dtype])
        self.scaler = torch.amp.GradScaler(ctx.device.type, enabled=self.amp.needs_scaler)
        self.mixer = Mixer(
            num_classes=self.num_classes,
            mixup_alpha=cfg.mixup,
            cutmix_alpha=cfg.cutmix,
            label_smoothing=cfg.label_smoothing,
        )

    def _loader(self, epoch: int) -> Any:
        cfg = self.cfg
        return train_loader(
            self.train_ds,
            batch_size=cfg.batch_size,
            ctx=self.ctx,
            seed=cfg.seed,
            epoch=epoch,
            workers=self.workers,
        )

    def restore(self, state: dict[str, Any]) -> None:
        """Load the training state of a checkpoint (model, optimizer, schedule, scaler, generators)."""
        unwrap_model(self.model).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        for fn in self.scheduler.lr_lambdas:  # a longer --epochs stretches the schedule from here on
            fn.total_steps = self.cfg.epochs * self.steps
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        restore_rng_state(state["rng"])

    def run_epoch(self, epoch: int) -> tuple[dict[str, Any], FiringStats]:
        """Train epoch ``epoch`` (0-based), then evaluate; return the metrics row and firing counts."""
        cfg, ctx = self.cfg, self.ctx
        t0 = time.perf_counter()
        train_metrics = train_one_epoch(
            self.model,
            self._loader(epoch),
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            scaler=self.scaler,
            mixer=self.mixer,
            rng=np.random.default_rng(epoch_seed(cfg.seed, epoch, stream=2 + ctx.rank)),
            ctx=ctx,
            amp=self.amp,
            steps=self.steps,
            clip_grad=cfg.clip_grad,
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
        )
        sync_buffers(self.model, ctx)  # every rank evaluates and saves the same BatchNorm statistics
        # The bare model: DDP's forward would add collectives, and shards may differ in batch count.
        # Float32 even under AMP: the logged accuracy is the one golden.eval reproduces.
        result = evaluate(unwrap_model(self.model), self.test_loader, ctx=ctx, amp=Amp(), desc="test")
        assert result.firing is not None
        row = {
            "epoch": epoch + 1,
            **train_metrics,
            "test_loss": result.loss,
            "test_acc": result.acc,
            "test_samples": result.samples,
            "mean_firing_rate": result.firing.mean_rate(),
            "epoch_time_s": time.perf_counter() - t0,
            "firing_rates": result.firing.rates(),
        }
        return row, result.firing

    def save(self, path: Path, *, epoch: int, history: list[dict[str, Any]], best: dict[str, Any] | None,
             rng: dict[str, Any]) -> None:  # fmt: skip
        save_checkpoint(
            path,
            model=self.model,
            preset=self.cfg.preset,
            model_overrides=self.cfg.model_overrides,
            data=self.cfg.data,
            data_kwargs=self.data_kwargs,
            epoch=epoch,
            metrics=history,
            args=self.cfg.as_dict(),
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            scaler=self.scaler,
            rng=rng,
            best=best,
        )


def _train(args: argparse.Namespace, ctx: DistContext) -> dict[str, Any]:
    out = Path(args.out)
    ckpt_path = out / CHECKPOINT_NAME
    state = load_checkpoint(ckpt_path) if args.resume else None
    cfg = resumed_config(args, state["args"], ckpt_path) if state is not None else resolve_config(args, ctx)
    log = setup_logging("golden.train", main=ctx.is_main, log_file=out / "train.log", append=args.resume)
    if ctx.is_main and state is None and ckpt_path.exists():
        log.warning("%s exists and is overwritten (pass --resume to continue it)", ckpt_path)
    if cfg.world_size != ctx.world_size:
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

    trainer = _Trainer(cfg, ctx, data_root=args.data_root, workers=workers)
    log.info(
        "preset %s (%s parameters) on %s: %d train / %d test samples, device %s x%d, amp %s",
        cfg.preset,
        f"{trainer.n_params:,}",
        cfg.data,
        len(trainer.train_ds),
        len(trainer.test_loader.dataset),
        ctx.device,
        ctx.world_size,
        cfg.amp_dtype if cfg.amp else "off",
    )
    history: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    start = 0
    if state is not None:
        trainer.restore(state)
        start, history = int(state["epoch"]), [dict(r) for r in state["metrics"]]
        best = dict(state["best"]) if state.get("best") else None
        log.info("resumed %s at epoch %d of %d", ckpt_path, start, cfg.epochs)

    header = {"preset": cfg.preset, "data": cfg.data, "parameters": trainer.n_params, "config": cfg.as_dict()}
    files = _RunFiles(out, header, title=f"{cfg.preset} on {cfg.data}")
    stop = cfg.epochs if args.stop_after is None else min(cfg.epochs, args.stop_after)
    for epoch in range(start, stop):
        row, firing = trainer.run_epoch(epoch)
        row["elapsed_s"] = (history[-1]["elapsed_s"] if history else 0.0) + row["epoch_time_s"]
        if args.check_sync:
            row["ranks_in_sync"] = check_in_sync(trainer.model, ctx)
        history.append(row)
        improved = best is None or row["test_acc"] > best["test_acc"]
        if improved:
            best = {"epoch": epoch + 1, "test_acc": row["test_acc"], "test_loss": row["test_loss"]}
        log.info(
            "epoch %3d/%d  train loss %.4f acc %6.2f%%  test loss %.4f acc %6.2f%%  "
            "lr %.2e  firing %.3f  %.1fs",
            epoch + 1,
            cfg.epochs,
            row["train_loss"],
            row["train_acc"],
            row["test_loss"],
            row["test_acc"],
            row["lr"],
            row["mean_firing_rate"],
            row["epoch_time_s"],
        )
        rng = capture_rng_state()
        if ctx.is_main:
            trainer.save(ckpt_path, epoch=epoch + 1, history=history, best=best, rng=rng)
            if improved:
                trainer.save(out / BEST_NAME, epoch=epoch + 1, history=history, best=best, rng=rng)
            files.epoch(history, firing, final=epoch + 1 == stop)

    summary = _summary(cfg, history, best, trainer.n_params)
    if ctx.is_main:
        if history and start >= stop:  # nothing left to train: refresh the plots anyway
            files.plots(history)
        write_json(out / "summary.json", summary)
        log.info(
            "done: final test acc %.2f%%, best %.2f%% (epoch %s), %.1fs training",
            summary["final_test_acc"],
            summary["best_test_acc"],
            summary["best_epoch"],
            summary["train_time_s"],
        )
    return summary


class _RunFiles:
    """Rank 0's per-epoch outputs: tables every epoch, PNGs at most every :data:`PLOT_INTERVAL_S`.

    Drawing the figures takes about a second (more on a busy machine), as long as a whole
    ``hw-tiny`` epoch, so they are refreshed on a timer and always after the last epoch.
    """

    def __init__(self, out: Path, header: dict[str, Any], *, title: str) -> None:
        self.out, self.header, self.title = out, header, title
        self._last_plot = -math.inf

    def epoch(self, history: list[dict[str, Any]], firing: FiringStats, *, final: bool) -> None:
        write_metrics(history, self.out / "metrics.csv", self.out / "metrics.json", header=self.header)
        firing.write_csv(self.out / "firing_rates.csv")
        if final or time.monotonic() - self._last_plot >= PLOT_INTERVAL_S:
            self.plots(history)

    def plots(self, history: list[dict[str, Any]]) -> None:
        plot_training_curves(history, self.out / "curves.png", title=self.title)
        plot_firing_rates(
            history[-1]["firing_rates"],
            self.out / "firing_rates.png",
            title=f"{self.title}: test-split firing rates",
        )
        self._last_plot = time.monotonic()


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
    """Console entry point: returns the process exit status (2 for a bad request)."""
    try:
        run(argv)
    except USER_ERRORS as exc:
        return print_user_error(exc, prog="golden.train")
    except KeyboardInterrupt:
        print("interrupted; the last finished epoch is in the run's checkpoint.pt", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
