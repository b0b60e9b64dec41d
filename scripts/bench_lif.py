"""Benchmark: training-step time of a model with the fused LIF vs the per-step loop reference.

A training step is forward + cross-entropy + backward (no optimizer update, which
does not depend on the neuron backend). Both backends run the same model, the
same weights and the same input; the backends alternate so load drifts on a
shared machine hit both alike, and the median step time of each is reported.

Example::

    python scripts/bench_lif.py --preset hw-gesture --batch 2 --img-size 64 --steps 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from golden.models import create_model, list_models
from golden.neuron import set_backend


def _step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.zero_grad(set_to_none=True)
    start = time.perf_counter()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    if x.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="hw-gesture", choices=list_models())
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--img-size", type=int, default=None, help="override the preset's input size")
    parser.add_argument("--timesteps", type=int, default=None, help="override the preset's time steps")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per backend (after one warm-up)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    overrides = {k: v for k, v in (("img_size", args.img_size), ("timesteps", args.timesteps)) if v is not None}
    model = create_model(args.preset, **overrides).to(args.device).train()
    cfg = model.cfg
    shape = (args.batch, cfg.timesteps, cfg.in_channels, cfg.img_size, cfg.img_size)
    # Event-count-like integer input: sparse small counts.
    x = torch.poisson(torch.full(shape, 0.3)).to(args.device)
    y = torch.randint(0, cfg.num_classes, (args.batch,), device=args.device)

    times: dict[str, list[float]] = {"loop": [], "fused": []}
    for backend in times:  # warm-up (allocator, first-call costs)
        set_backend(model, backend)
        _step(model, x, y)
    for _ in range(args.steps):
        for backend, record in times.items():
            set_backend(model, backend)
            record.append(_step(model, x, y))

    loop, fused = statistics.median(times["loop"]), statistics.median(times["fused"])
    print(f"preset {args.preset}  input {list(shape)}  device {args.device}  "
          f"threads {torch.get_num_threads()}  steps {args.steps}")
    print(f"loop  (per-step autograd) : {loop * 1e3:9.1f} ms / training step")
    print(f"fused (FusedLIF)          : {fused * 1e3:9.1f} ms / training step")
    print(f"speed-up                  : {loop / fused:9.2f}x")


if __name__ == "__main__":
    main()
