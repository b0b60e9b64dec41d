"""From SpikingJelly to the (simulated) FPGA in one command: ``make spikingjelly``.

For each variant (embedded digits upsampled to 32x32 with 1 channel; 2-channel
``synthetic-events`` frames):

1. build a small Spikformer with SpikingJelly's own class
   (``spikingjelly.activation_based.model.spikformer.Spikformer``) and train it on the CPU
   with a plain, seeded PyTorch loop for a fixed number of epochs (the state dict is
   saved as ``<out>/<variant>/sj_state.pt``);
2. convert it (:func:`golden.interop.spikingjelly.convert`), quantize it
   (:class:`golden.quantize.FakeQuantModel` with the ``--rounding`` of its weights, default
   ``calibrated`` on training samples; :func:`golden.quantize.to_int_model`), compare its
   test predictions with the float model's (and round-to-nearest's) and write an export with
   test vectors (:func:`contract.manifest.write_export`);
3. run the test vectors through the Verilator-simulated accelerator with the host driver
   (``python -m host.run --backend sim``).

Then the paper-sized Spikformer-2-256 (128x128 DVS, T=16, SpikingJelly's constructor,
seeded BatchNorm statistics) is compiled for ``pynq-z2`` and the cycle model's figures are
reported (or the compiler's refusal, verbatim).

Writes ``build/spikingjelly/report.json`` and ``report.md`` (the Markdown table).

Usage::

    python scripts/spikingjelly_e2e.py [--epochs N] [--reuse-state] [--samples 32] [--variants digits events]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from spikingjelly.activation_based import functional
from spikingjelly.activation_based.model.spikformer import Spikformer
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from contract.manifest import make_test_vectors, write_export  # noqa: E402
from golden.data import build_dataset  # noqa: E402
from golden.interop.spikingjelly import convert  # noqa: E402
from golden.quantize import FakeQuantModel, to_int_model  # noqa: E402
from golden.quantize_rounding import ROUNDINGS  # noqa: E402

T = 4
#: The largest embedding the ``sim`` configuration holds with 4 heads: the positional-encoding
#: conv's fan-in ``9 D`` must fit its 512-word weight memory (64 -> 576 is refused); 64 tokens
#: (32x32, patch 4) is its ``max_tokens``.
SMALL = dict(img_size_h=32, img_size_w=32, patch_size=4, embed_dims=56, num_heads=4, mlp_ratio=4.0, depths=2)
#: Spikformer-2-256 for 128x128 DVS at T=16 (the paper's DVS128 Gesture model).
PAPER = dict(
    T=16,
    in_channels=2,
    img_size_h=128,
    img_size_w=128,
    patch_size=16,
    num_classes=11,
    embed_dims=256,
    num_heads=16,
    mlp_ratio=4.0,
    depths=2,
)


# --------------------------------------------------------------------------- data
def _stack(dataset: Any) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*(dataset[i] for i in range(len(dataset))), strict=True)
    return torch.stack([torch.as_tensor(x) for x in xs]).float(), torch.as_tensor(ys, dtype=torch.long)


def load_variant(
    name: str,
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor], int]:
    """``(train, test, in_channels)``; inputs are the project's layout ``[B, (T,) C, H, W]``, integers."""
    if name == "digits":
        parts = [_stack(build_dataset("digits", None, split, timesteps=T)) for split in ("train", "test")]
        # 8x8 -> 32x32 by pixel repetition: the pixels stay the 8-bit integers the accelerator reads.
        parts = [(x.repeat_interleave(4, -2).repeat_interleave(4, -1), y) for x, y in parts]
        return parts[0], parts[1], 1
    if name == "events":
        kw = dict(timesteps=T, size=32, num_classes=4)
        train = _stack(build_dataset("synthetic-events", None, "train", samples_per_class=100, **kw))
        test = _stack(build_dataset("synthetic-events", None, "test", samples_per_class=16, **kw))
        return train, test, 2
    raise ValueError(f"unknown variant {name!r}")


def sj_input(x: torch.Tensor) -> torch.Tensor:
    """SpikingJelly's input: images ``[B, C, H, W]`` as they are (it repeats them), events ``[T, B, ...]``."""
    return x if x.dim() == 4 else x.transpose(0, 1).contiguous()


def sj_logits(sj: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Classification logits: SpikingJelly's per-step output averaged over T (state reset first)."""
    functional.reset_net(sj)
    return sj(sj_input(x)).mean(0)


# --------------------------------------------------------------------------- training
#: Minibatch and peak learning rate of the training loop: 32 samples per step keep the CPU's
#: convolutions efficient while still giving ~45 steps per epoch on the 1438 digits.
BATCH, LR = 32, 4e-3
#: Training epochs per variant: the digits figure is what a 300 s budget reached on a quiet
#: machine (about 21 s an epoch, 45 steps); the 400 synthetic-event samples take 13 steps an epoch.
EPOCHS = {"digits": 14, "events": 30}


def train(sj: nn.Module, data: tuple[torch.Tensor, torch.Tensor], epochs: int, seed: int) -> list[float]:
    """AdamW on cross-entropy for ``epochs`` seeded passes over ``data``; mean loss per epoch.

    The learning rate follows one cosine over all steps. Everything is a function of the
    seed and the epoch count (a fixed number of steps, one CPU thread), so the same command
    gives the same model on a quiet or a loaded machine; a wall-clock budget did not.
    """
    x, y = data
    # Some backward passes produce subnormal floats (surrogate gradients of neurons far from
    # threshold: pixels 0..255 reach the first LIF unscaled), on which the CPU is far slower:
    # one step in ten took 7-9 s instead of 0.14 s (60 steps: 39 s, flushed: 13 s). Flushed to
    # zero while training only; the evaluated forward passes run with the default again.
    torch.set_flush_denormal(True)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(sj.parameters(), lr=LR, weight_decay=1e-2)
    sj.train()
    losses: list[float] = []
    per_epoch = math.ceil(len(x) / BATCH)
    total_steps, step = epochs * per_epoch, 0
    bar = tqdm(total=total_steps, desc="train", unit="step", leave=False)
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=g)
        total, count = 0.0, 0
        for idx in order.split(BATCH):
            for group in opt.param_groups:
                group["lr"] = LR * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))
            loss = F.cross_entropy(sj_logits(sj, x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            total, count = total + loss.item() * len(idx), count + len(idx)
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{total / count:.3f}")
        losses.append(total / count)
    bar.close()
    torch.set_flush_denormal(False)
    functional.reset_net(sj)
    return losses


def trained_spikformer(
    name: str, data: tuple[torch.Tensor, torch.Tensor], channels: int, classes: int, args: argparse.Namespace
) -> tuple[nn.Module, list[float]]:
    """SpikingJelly's Spikformer trained for the variant's epochs (or reloaded with ``--reuse-state``).

    The state dict, the epochs and the losses are saved as ``<out>/<variant>/sj_state.pt``
    so that quantization experiments can start from the same model without retraining.
    """
    epochs = args.epochs if args.epochs is not None else EPOCHS[name]
    torch.manual_seed(args.seed)
    sj = Spikformer(T=T, in_channels=channels, num_classes=classes, **SMALL)
    print(f"[{name}] SpikingJelly Spikformer {SMALL}, in_channels {channels}, {classes} classes, T={T}")
    path = args.out / name / "sj_state.pt"
    if args.reuse_state and path.exists():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if (saved["epochs"], saved["seed"]) == (epochs, args.seed):
            sj.load_state_dict(saved["state"])
            print(f"[{name}] reusing {path} ({epochs} epochs, seed {args.seed})")
            return sj, list(saved["losses"])
        print(f"[{name}] {path} holds {saved['epochs']} epochs, seed {saved['seed']}: retraining")
    losses = train(sj, data, epochs, args.seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state": sj.state_dict(), "epochs": epochs, "seed": args.seed, "losses": losses}, path)
    print(
        f"[{name}] trained {epochs} epochs on {len(data[0])} samples, "
        f"losses {losses[0]:.3f} -> {losses[-1]:.3f}; saved {path}"
    )
    return sj, losses


def integer_predictions(int_model: Any, x_int: np.ndarray) -> np.ndarray:
    """Top-1 classes of the integer model, in batches of about 64 samples."""
    return np.concatenate(
        [int_model.run(b)[0].argmax(1) for b in np.array_split(x_int, max(1, len(x_int) // 64))]
    )


@torch.no_grad()
def float_predictions(sj: nn.Module, x: torch.Tensor) -> np.ndarray:
    sj.eval()
    return np.concatenate([sj_logits(sj, batch).argmax(1).numpy() for batch in x.split(64)])


# --------------------------------------------------------------------------- one variant
def run_variant(name: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    (train_x, train_y), (test_x, test_y), channels = load_variant(name)
    classes = int(max(train_y.max(), test_y.max())) + 1
    sj, losses = trained_spikformer(name, (train_x, train_y), channels, classes, args)
    sj.eval()
    float_pred = float_predictions(sj, test_x)

    start = time.time()
    conversion = convert(sj)
    calibration = None
    if args.rounding == "calibrated":  # a seeded subset of the training split, never the test samples
        order = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(args.seed))
        calibration = train_x[order[: args.calibration_samples]]
    fq = FakeQuantModel(conversion.model, rounding=args.rounding, calibration=calibration)
    int_model = to_int_model(fq, event=channels == 2)
    seconds = time.time() - start
    x_int = test_x.numpy().astype(np.int64)
    int_pred = integer_predictions(int_model, x_int)
    # Round-to-nearest as the reference the calibrated rounding is measured against.
    nearest_pred = (
        int_pred
        if args.rounding == "nearest"
        else integer_predictions(to_int_model(FakeQuantModel(conversion.model), event=channels == 2), x_int)
    )
    labels = test_y.numpy()
    float_acc = float((float_pred == labels).mean() * 100)
    int_acc = float((int_pred == labels).mean() * 100)
    same, same_nearest = int((float_pred == int_pred).sum()), int((float_pred == nearest_pred).sum())
    print(
        f"[{name}] converted + quantized ({args.rounding} rounding) in {seconds:.2f} s; test top-1 "
        f"float {float_acc:.2f} %, integer {int_acc:.2f} %; same prediction {same}/{len(labels)} "
        f"(round-to-nearest: {same_nearest}, integer {(nearest_pred == labels).mean() * 100:.2f} %)"
    )

    n = args.samples
    vectors = make_test_vectors(int_model, x_int[:n], labels[:n], traced=2)
    provenance = {
        "source": "spikingjelly Spikformer",
        "variant": name,
        "config": SMALL,
        "T": T,
        "epochs": len(losses),
        "seed": args.seed,
        "rounding": fq.rounding,
    }
    export = write_export(int_model, out / name / "export", vectors=vectors, provenance=provenance)
    report_json = out / name / "host_run.json"
    report_json.unlink(missing_ok=True)  # a failed run must not report an earlier run's figures
    command = [
        sys.executable, "-m", "host.run", "--export", str(export), "--backend", "sim", "--config", "sim",
        "--samples", str(n), "--json", str(report_json),
    ]  # fmt: skip
    if args.jobs:
        command += ["--jobs", str(args.jobs)]
    print(f"[{name}] {' '.join(command[1:])}")
    status = subprocess.run(command, cwd=ROOT, check=False).returncode
    host = json.loads(report_json.read_text()) if status == 0 and report_json.exists() else {}
    subset = slice(0, n)
    return {
        "variant": name,
        "model": {**SMALL, "T": T, "in_channels": channels, "num_classes": classes},
        "surrogates": sorted(set(conversion.surrogates.values())),
        "epochs": len(losses),
        "losses": losses,
        "test_samples": len(labels),
        "float_top1": float_acc,
        "integer_top1": int_acc,
        "float_integer_same_prediction": same,
        "rounding": fq.rounding,
        "integer_top1_nearest": float((nearest_pred == labels).mean() * 100),
        "float_integer_same_prediction_nearest": same_nearest,
        "convert_quantize_seconds": seconds,
        "rtl_samples": n,
        "float_top1_rtl_samples": float((float_pred[subset] == labels[subset]).mean() * 100),
        "integer_top1_rtl_samples": float((int_pred[subset] == labels[subset]).mean() * 100),
        "rtl_top1": host.get("accuracy"),
        "bit_exact": bool(host.get("bit_exact")) and status == 0,
        "bit_exact_samples": n - len(host.get("differing_samples", range(n))) if host else 0,
        "host_run_status": status,
        "cycles_mean": host.get("cycles_mean"),
        "fps_sim_config": host.get("fps"),
    }


# --------------------------------------------------------------------------- paper-sized
def _seeded_statistics(model: nn.Module, seed: int) -> None:
    """BatchNorm statistics and affine parameters from a seed, as golden.workloads sets them."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) * 2 + 1)
            shift = 0.6 if isinstance(m, nn.BatchNorm1d) else 0.0
            m.bias.data.copy_(torch.rand(m.num_features, generator=g) + shift)


def paper_sized(seed: int) -> dict[str, Any]:
    from protocol.compiler import CompileError
    from protocol.config import get_config
    from protocol.perf import plan

    torch.manual_seed(seed)
    sj = Spikformer(**PAPER)
    _seeded_statistics(sj, seed)
    sj.eval()
    start = time.time()
    int_model = to_int_model(FakeQuantModel(convert(sj).model), event=True)
    seconds = time.time() - start
    config = get_config("pynq-z2")
    result: dict[str, Any] = {"model": PAPER, "config": config.name, "convert_quantize_seconds": seconds}
    try:
        perf, stages, resident = plan(int_model, config)
    except CompileError as exc:
        result["refused"] = str(exc)
        print(f"[paper] pynq-z2 refuses Spikformer-2-256: {exc}")
        return result
    result.update(
        cycles=perf.cycles,
        fps=perf.fps,
        clock_mhz=config.clock_mhz,
        ddr_in_bytes=perf.stream_in_bytes,
        ddr_out_bytes=perf.stream_out_bytes,
        segments=perf.segments,
        banded_stages=[f"{' + '.join(s.ops)}: {s.bands} bands" for s in stages],
        resident_amem_words=resident,
    )
    print(f"[paper] Spikformer-2-256, 128x128 DVS, T=16 on pynq-z2:\n{perf.table()}")
    return result


# --------------------------------------------------------------------------- report
def markdown(rows: list[dict[str, Any]], paper: dict[str, Any] | None) -> str:
    lines = [
        "| variant (training) | test samples | SpikingJelly float | project integer | float - integer "
        "| same prediction (round-to-nearest) | RTL samples | float / integer there | RTL (sim) "
        "| bit-exact |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        rtl = "n/a" if r["rtl_top1"] is None else f"{r['rtl_top1']:.2f} %"
        exact = f"{'yes' if r['bit_exact'] else 'NO'}, {r['bit_exact_samples']}/{r['rtl_samples']}"
        lines.append(
            f"| {r['variant']} ({r['epochs']} epochs) | {r['test_samples']} "
            f"| {r['float_top1']:.2f} % | {r['integer_top1']:.2f} % "
            f"| {r['float_top1'] - r['integer_top1']:+.2f} "
            f"| {r['float_integer_same_prediction']}/{r['test_samples']} "
            f"({r['float_integer_same_prediction_nearest']}) | {r['rtl_samples']} "
            f"| {r['float_top1_rtl_samples']:.2f} % / {r['integer_top1_rtl_samples']:.2f} % "
            f"| {rtl} | {exact} |"
        )
    if paper is not None:
        lines.append("")
        if "refused" in paper:
            lines.append(f"Spikformer-2-256 (128x128 DVS, T=16) on pynq-z2: refused: `{paper['refused']}`")
        else:
            lines.append(
                f"Spikformer-2-256 (128x128 DVS, T=16) on pynq-z2: {paper['cycles']} cycles, "
                f"{paper['fps']:.1f} FPS at {paper['clock_mhz']:g} MHz, DDR "
                f"{paper['ddr_in_bytes'] / 1024:.1f} KiB in / {paper['ddr_out_bytes'] / 1024:.1f} KiB out "
                f"per frame, {paper['segments']} segments "
                f"({'; '.join(paper['banded_stages']) or 'no band tiling'})"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "build" / "spikingjelly")
    p.add_argument("--variants", nargs="*", default=["digits", "events"], choices=["digits", "events"])
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help=f"training epochs of every variant (default per variant: {EPOCHS})",
    )
    p.add_argument(
        "--reuse-state",
        action="store_true",
        help="load <out>/<variant>/sj_state.pt instead of training when it holds the same epochs and seed",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: on a shared 2-core CPU a step took 0.62 s with 1 thread "
        "and 2.2 s with 2; the tensors are too small for a thread pool to pay off)",
    )
    p.add_argument(
        "--rounding",
        choices=ROUNDINGS,
        default="calibrated",
        help="weight rounding of the integer model (golden.quantize_rounding; default calibrated); "
        "round-to-nearest is always evaluated too, as the reference",
    )
    p.add_argument(
        "--calibration-samples",
        type=int,
        default=256,
        help="training samples the calibrated rounding is chosen on (default 256)",
    )
    p.add_argument("--samples", type=int, default=32, help="test samples run on the simulated RTL")
    p.add_argument("--jobs", type=int, default=None, help="host.run --jobs (default: one per CPU)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-paper", action="store_true", help="skip the paper-sized pynq-z2 compile")
    args = p.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    args.out.mkdir(parents=True, exist_ok=True)
    rows = [run_variant(name, args, args.out) for name in args.variants]
    paper = None if args.no_paper else paper_sized(args.seed)
    (args.out / "report.json").write_text(json.dumps({"variants": rows, "paper": paper}, indent=2) + "\n")
    table = markdown(rows, paper)
    (args.out / "report.md").write_text(table)
    print(table)
    return 0 if all(r["bit_exact"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
