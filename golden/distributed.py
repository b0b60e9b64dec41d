"""Process-group plumbing for data-parallel training (torchrun / ``torch.distributed.run``).

A run started by ``torchrun`` sees ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` in its
environment; a plain ``python -m golden.train`` sees none and runs as a world of one.
Everything else in the training code asks a :class:`DistContext` instead of reading the
environment, so the single-process path needs no process group at all.

Backends: ``nccl`` when the ranks train on CUDA devices, ``gloo`` on the CPU.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn

__all__ = [
    "DistContext",
    "DistributedError",
    "resolve_device",
    "setup_distributed",
    "cleanup_distributed",
    "all_reduce_sum",
    "parameter_digest",
    "check_in_sync",
    "sync_buffers",
    "unwrap_model",
]


class DistributedError(RuntimeError):
    """The process group is misconfigured or the ranks disagree."""


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in the data-parallel world.

    Attributes
    ----------
    rank:
        Global rank, 0 for a single process.
    world_size:
        Number of processes; 1 means no process group was created.
    local_rank:
        Rank on this machine; selects the CUDA device.
    device:
        The device this rank trains on.
    backend:
        ``"nccl"``, ``"gloo"`` or ``None`` without a process group.
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str | None

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Only the main rank writes files and draws progress bars."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise DistributedError(f"environment variable {name} must be an integer, not {raw!r}") from None


def resolve_device(spec: str, *, local_rank: int = 0) -> torch.device:
    """Turn ``--device`` (``auto``, ``cpu``, ``cuda`` or ``cuda:N``) into a device.

    ``auto`` picks CUDA when it is present. Under torchrun a bare ``cuda`` means the
    rank's own GPU (``cuda:LOCAL_RANK``).
    """
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"device must be a non-empty string, not {spec!r}")
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', not {spec!r}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {spec!r} was asked for, but CUDA is not available here")
        index = device.index if device.index is not None else local_rank
        if index >= torch.cuda.device_count():
            raise ValueError(f"device {spec!r}: only {torch.cuda.device_count()} CUDA device(s) present")
        device = torch.device("cuda", index)
    elif device.type != "cpu":
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', not {spec!r}")
    return device


def setup_distributed(device_spec: str = "auto") -> DistContext:
    """Join the process group that torchrun describes in the environment (if any)."""
    world_size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    if world_size < 1 or not 0 <= rank < world_size:
        raise DistributedError(f"inconsistent torchrun environment: RANK={rank}, WORLD_SIZE={world_size}")
    device = resolve_device(device_spec, local_rank=local_rank)
    if world_size == 1:
        return DistContext(rank=0, world_size=1, local_rank=0, device=device, backend=None)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistContext(
        rank=rank, world_size=world_size, local_rank=local_rank, device=device, backend=backend
    )


def cleanup_distributed(ctx: DistContext) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum ``values`` over all ranks (a no-op copy for a single process).

    The reduction runs in float64 on the rank's device, as NCCL needs device tensors
    and exact counts must survive the sum.
    """
    out = values.detach().to(device=ctx.device, dtype=torch.float64).clone()
    if ctx.distributed:
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out.cpu()


def unwrap_model(model: nn.Module) -> nn.Module:
    """The bare model under DDP and ``torch.compile`` wrappers."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model


def parameter_digest(model: nn.Module) -> str:
    """SHA-256 over every parameter and buffer, in state-dict order (bitwise)."""
    h = hashlib.sha256()
    for name, tensor in unwrap_model(model).state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def check_in_sync(model: nn.Module, ctx: DistContext) -> bool:
    """True when every rank holds bitwise the same parameters and buffers.

    DDP keeps replicas identical by averaging gradients and broadcasting buffers, so a
    mismatch means a bug (a rank skipped a step, an unsynchronised random op). Raises
    :class:`DistributedError` naming the ranks that differ from rank 0.
    """
    digest = parameter_digest(model)
    if not ctx.distributed:
        return True
    digests: list[str | None] = [None] * ctx.world_size
    dist.all_gather_object(digests, digest)
    bad = [r for r, d in enumerate(digests) if d != digests[0]]
    if bad:
        raise DistributedError(f"model replicas diverged: ranks {bad} differ from rank 0")
    return True


def sync_buffers(model: nn.Module, ctx: DistContext) -> None:
    """Average floating-point buffers (BatchNorm running statistics) over ranks; copy the rest from rank 0.

    DDP broadcasts rank 0's buffers at the start of every forward pass, but the last
    training step leaves each rank with running statistics updated from its own batch.
    Averaging them before evaluation and checkpointing gives every rank the same model
    and uses the statistics of all ranks' data, not only rank 0's.
    """
    if not ctx.distributed:
        return
    for buf in unwrap_model(model).buffers():
        if buf.is_floating_point():
            dist.all_reduce(buf, op=dist.ReduceOp.SUM)
            buf.div_(ctx.world_size)
        else:
            dist.broadcast(buf, src=0)
