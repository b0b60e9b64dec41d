"""Training checkpoints: atomic save, validated load, and model rebuild from a file.

A checkpoint is one ``torch.save`` file holding only tensors and plain Python values
(no pickled classes), so it loads with ``weights_only=True``: opening a checkpoint
from someone else cannot run code. Its keys:

``format``          int, :data:`CHECKPOINT_FORMAT`
``preset``          model preset name (``golden.models.create_model``)
``model_overrides`` dict of config fields that differ from the preset
``model_cfg``       the full model config (``dataclasses.asdict``), for reading only
``data``            dataset name (``golden.data.build_dataset``)
``data_kwargs``     keyword options of ``build_dataset`` (``timesteps`` included)
``epoch``           number of completed epochs
``metrics``         list of per-epoch metric dicts (the history up to ``epoch``)
``args``            resolved training hyperparameters
``model``           model ``state_dict``
``optimizer``, ``scheduler``, ``scaler``   their ``state_dict`` (or ``None``)
``rng``             python / numpy / torch (/ cuda) generator states
``best``            dict describing the best epoch so far (or ``None``)
``versions``        torch / python versions that wrote the file
"""

from __future__ import annotations

import dataclasses
import os
import platform
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from contract.files import atomic_path

from .distributed import unwrap_model

__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "load_model",
    "capture_rng_state",
    "restore_rng_state",
]

CHECKPOINT_FORMAT = 1
_REQUIRED = (
    "format",
    "preset",
    "model_overrides",
    "data",
    "data_kwargs",
    "epoch",
    "metrics",
    "args",
    "model",
)
_META = ("preset", "model_overrides", "model_cfg", "data", "data_kwargs", "epoch", "metrics", "args", "best")

PathLike = str | os.PathLike[str]


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, corrupt or does not fit its model.

    Attributes
    ----------
    path:
        The offending file, as given.
    """

    def __init__(self, path: PathLike, problem: str) -> None:
        self.path = os.fspath(path)
        super().__init__(f"checkpoint {self.path}: {problem}")


# --------------------------------------------------------------------------- RNG state


def capture_rng_state() -> dict[str, Any]:
    """Every global generator's state as tensors and plain values (``weights_only``-safe)."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": {"version": version, "state": list(internal), "gauss": gauss},
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    npst = state["numpy"]
    np.random.set_state(
        (
            npst["kind"],
            npst["keys"].numpy().astype(np.uint32),
            npst["pos"],
            npst["has_gauss"],
            npst["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or []
    # A checkpoint from a GPU run may be resumed on a machine with fewer (or no) GPUs:
    # restore what fits, since the data order does not depend on these states.
    if cuda and torch.cuda.is_available():
        for index, s in enumerate(cuda[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(s, index)


# --------------------------------------------------------------------------- save


def _plain(value: Any, where: str) -> Any:
    """Check that ``value`` is made of tensors and plain values, so ``weights_only`` loads it."""
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    raise TypeError(f"checkpoint field {where} holds a {type(value).__name__}; only plain values are stored")


def save_checkpoint(
    path: PathLike,
    *,
    model: nn.Module,
    preset: str,
    model_overrides: Mapping[str, Any],
    data: str,
    data_kwargs: Mapping[str, Any],
    epoch: int,
    metrics: list[Mapping[str, Any]],
    args: Mapping[str, Any],
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    scaler: Any | None = None,
    rng: Mapping[str, Any] | None = None,
    best: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically (temporary file in the same folder, then rename).

    A crash while writing leaves the previous checkpoint intact. ``model`` may be wrapped
    in DDP or ``torch.compile``; the bare model's weights are stored.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    bare = unwrap_model(model)
    cfg = getattr(bare, "cfg", None)
    state = {
        "format": CHECKPOINT_FORMAT,
        "preset": preset,
        "model_overrides": _plain(dict(model_overrides), "model_overrides"),
        "model_cfg": _plain(dataclasses.asdict(cfg), "model_cfg") if dataclasses.is_dataclass(cfg) else None,
        "data": data,
        "data_kwargs": _plain(dict(data_kwargs), "data_kwargs"),
        "epoch": int(epoch),
        "metrics": _plain(list(metrics), "metrics"),
        "args": _plain(dict(args), "args"),
        "model": {k: v.detach().cpu() for k, v in bare.state_dict().items()},
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": _plain(scheduler.state_dict(), "scheduler") if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "rng": dict(rng) if rng is not None else None,
        "best": _plain(dict(best), "best") if best is not None else None,
        "versions": {"torch": str(torch.__version__), "python": platform.python_version()},
    }
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())  # on disk before the rename: a crash must not leave an empty checkpoint
    return path


# --------------------------------------------------------------------------- load


def _reason(exc: BaseException) -> str:
    """The informative line of a ``torch.load`` failure (its messages run over many lines)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for line in lines:
        if line.startswith("WeightsUnpickler error"):
            return line
    return lines[0] if lines else type(exc).__name__


def load_checkpoint(path: PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and validate a checkpoint file; raise :class:`CheckpointError` if it is not one.

    Parameters
    ----------
    path:
        File written by :func:`save_checkpoint`.
    map_location:
        Where tensors are loaded (as for ``torch.load``).
    """
    p = Path(path)
    if not p.exists():
        raise CheckpointError(path, "no such file")
    if not p.is_file():
        raise CheckpointError(path, "not a regular file")
    if p.stat().st_size == 0:
        raise CheckpointError(path, "file is empty")
    try:
        state = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch.load fails in many ways on a bad file: all mean 'corrupt'
        raise CheckpointError(
            path, f"corrupt or not a checkpoint written by golden.train ({_reason(exc)})"
        ) from exc
    if not isinstance(state, dict):
        raise CheckpointError(path, f"holds a {type(state).__name__}, not a checkpoint dictionary")
    missing = [k for k in _REQUIRED if k not in state]
    if missing:
        raise CheckpointError(path, f"not a golden.train checkpoint: missing keys {missing}")
    if state["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(
            path, f"checkpoint format {state['format']!r} is not supported (expected {CHECKPOINT_FORMAT})"
        )
    return state


def load_model(path: PathLike, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the checkpoint's model preset with its overrides and load its weights.

    Parameters
    ----------
    path:
        Checkpoint file.
    map_location:
        Device for the weights; the model is moved there too.

    Returns
    -------
    model:
        The model, in eval mode.
    meta:
        ``preset``, ``model_overrides``, ``model_cfg``, ``data``, ``data_kwargs``,
        ``epoch``, ``metrics``, ``args``, ``best``.
    """
    from .models import create_model  # the registry imports every family: keep it lazy

    state = load_checkpoint(path, map_location=map_location)
    try:
        model = create_model(state["preset"], **state["model_overrides"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(path, f"cannot rebuild model preset {state['preset']!r}: {exc}") from exc
    try:
        model.load_state_dict(state["model"], strict=True)
    except RuntimeError as exc:
        raise CheckpointError(path, f"weights do not fit preset {state['preset']!r}: {exc}") from exc
    model.to(map_location).eval()
    meta = {k: state.get(k) for k in _META}
    return model, meta
