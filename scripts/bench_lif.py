"""Benchmark: training-step time of a model with the fused LIF vs the per-step loop reference.

A training step is forward + cross-entropy + backward (the optimizer update does
not depend on the neuron backend). Both backends run the same model, weights
and input; they alternate step by step, so load drifts on a shared machine hit
both alike, and the median of each is reported. A second measurement times the
LIF layers alone (forward + backward on the input shapes the model feeds them).

Wall time and process CPU time are both reported: on a machine shared with other
jobs the wall time mostly measures the wait for a core, while the CPU time of a
single-threaded run (``--threads 1``) still measures the work done.

Examples::

    python scripts/bench_lif.py                      # hw-gesture, B=2, T=16, frames 2x64x64 (~1 min)
    python scripts/bench_lif.py --img-size 128       # the preset's full 2x128x128 frames (~2-5 min)
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from golden.models import create_model, list_models
from golden.neuron import BACKENDS, LIFNode, set_backend


def _timed(fn: Callable[[], None], device: torch.device) -> tuple[float, float]:
    """``(wall, process CPU)`` seconds taken by ``fn``."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - wall, time.process_time() - cpu


def _compare(steps: int, run: Callable[[str], tuple[float, float]]) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) time per backend; one untimed warm-up each, then alternating timed runs."""
    times: dict[str, list[tuple[float, float]]] = {backend: [] for backend in BACKENDS}
    for backend in times:
        run(backend)
    for _ in range(steps):
        for backend, record in times.items():
            record.append(run(backend))
    return {
        backend: (statistics.median(w for w, _ in record), statistics.median(c for _, c in record))
        for backend, record in times.items()
    }


def _lif_inputs(model: torch.nn.Module, x: torch.Tensor) -> list[tuple[LIFNode, torch.Tensor]]:
    """Every LIF layer with the input it receives in one forward pass."""
    seen: list[tuple[LIFNode, torch.Tensor]] = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: seen.append((m, i[0].detach())))
        for m in model.modules()
        if isinstance(m, LIFNode)
    ]
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    return seen


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="hw-gesture", choices=list_models())
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument(
        "--img-size",
        type=int,
        default=64,
        help="frame size (default 64, a quarter of hw-gesture's pixels; 0 = the preset's)",
    )
    parser.add_argument("--timesteps", type=int, default=None, help="override the preset's time steps")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per backend (after one warm-up)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)

    sizes = (("img_size", args.img_size or None), ("timesteps", args.timesteps))
    model = create_model(args.preset, **{k: v for k, v in sizes if v is not None}).to(device).train()
    cfg = model.cfg
    shape = (args.batch, cfg.timesteps, cfg.in_channels, cfg.img_size, cfg.img_size)
    x = torch.poisson(torch.full(shape, 0.3)).to(device)  # sparse small event counts
    y = torch.randint(0, cfg.num_classes, (args.batch,), device=device)

    def train_step(backend: str) -> tuple[float, float]:
        set_backend(model, backend)
        model.zero_grad(set_to_none=True)
        return _timed(lambda: F.cross_entropy(model(x), y).backward(), device)

    layers = _lif_inputs(model, x)
    grads = [torch.randn_like(inp) for _, inp in layers]

    def lif_layers(backend: str) -> tuple[float, float]:
        def run() -> None:
            for (node, inp), grad in zip(layers, grads, strict=True):
                node.backend = backend
                node(inp.requires_grad_()).backward(grad)

        return _timed(run, device)

    model_times = _compare(args.steps, train_step)
    lif_times = _compare(args.steps, lif_layers)
    elements = sum(inp.numel() for _, inp in layers)
    print(
        f"preset {args.preset}  input [B, T, C, H, W] = {list(shape)}  device {device}  "
        f"threads {torch.get_num_threads()}  median of {args.steps}"
    )
    print(f"{'':34}{'loop':>11}{'fused':>11}{'speed-up':>10}")
    for label, t in (
        ("training step (fwd+bwd)", model_times),
        (f"LIF layers only ({len(layers)}, {elements / 1e6:.1f}M)", lif_times),
    ):
        for clock, i in (("wall", 0), ("cpu", 1)):
            loop, fused = t["loop"][i], t["fused"][i]
            name = f"{label}, {clock}"
            print(f"{name:<34}{loop * 1e3:>8.0f} ms{fused * 1e3:>8.0f} ms{loop / fused:>9.2f}x")


if __name__ == "__main__":
    main()
