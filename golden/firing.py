"""Per-layer firing rates and spike rasters, recorded with forward hooks on every LIF neuron.

Every spiking layer of the golden models is a :class:`golden.neuron.LIFNode` whose output
is a spike tensor in the ``[T, B, ...]`` layout. :class:`FiringRecorder` hooks all of them
(names are the module paths in the model, e.g. ``blocks.0.attn.0.q.lif``) and keeps

* per layer, the number of spikes and the number of neuron-steps seen, so the firing
  rate is ``spikes / (neurons * T * samples)``; the totals are tensors so data-parallel
  ranks can sum them before dividing;
* optionally, for one sample of the first batch, the spike train of a subset of neurons
  per layer (``[T, neurons]``): the raster.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import torch
import torch.nn as nn

__all__ = ["FiringRecorder", "FiringStats", "lif_layers", "pick_layers", "record_raster"]


def lif_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every LIF neuron in ``model``, in registration order."""
    from .neuron import LIFNode  # lazy: the neuron module pulls in the models' dependencies

    return [(name, m) for name, m in model.named_modules() if isinstance(m, LIFNode)]


@dataclass(frozen=True)
class FiringStats:
    """Firing statistics of every LIF layer over the samples seen.

    Attributes
    ----------
    layers:
        Layer names in model order.
    spikes:
        float64 ``[L]``: spikes emitted per layer.
    steps:
        float64 ``[L]``: neuron-time-steps per layer (neurons * T * samples).
    neurons:
        Neurons per layer and sample (features of one time step).
    """

    layers: tuple[str, ...]
    spikes: torch.Tensor
    steps: torch.Tensor
    neurons: tuple[int, ...]

    def rates(self) -> dict[str, float]:
        """Firing rate per layer (spikes per neuron per time step); NaN for unseen layers."""
        rate = self.spikes / self.steps.clamp_min(1.0)
        rate[self.steps == 0] = float("nan")
        return {name: float(r) for name, r in zip(self.layers, rate.tolist(), strict=True)}

    def mean_rate(self) -> float:
        """Overall rate: all spikes over all neuron-steps."""
        total = float(self.steps.sum())
        return float(self.spikes.sum()) / total if total > 0 else float("nan")

    def with_totals(self, totals: torch.Tensor) -> FiringStats:
        """Copy with ``spikes`` and ``steps`` replaced by ``totals`` ``[2, L]`` (e.g. summed over ranks)."""
        return FiringStats(self.layers, totals[0].clone(), totals[1].clone(), self.neurons)

    def totals(self) -> torch.Tensor:
        """``[2, L]`` float64 stack of ``spikes`` and ``steps`` (what ranks all-reduce)."""
        return torch.stack([self.spikes, self.steps])

    def write_csv(self, path: str | os.PathLike[str]) -> Path:
        """Table ``layer, neurons, spikes, neuron_steps, rate`` (one row per layer, model order)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        rates = self.rates()
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["layer", "neurons", "spikes", "neuron_steps", "rate"])
            for i, name in enumerate(self.layers):
                w.writerow(
                    [name, self.neurons[i], int(self.spikes[i]), int(self.steps[i]), f"{rates[name]:.6g}"]
                )
        return path


class FiringRecorder:
    """Context manager that hooks every LIF layer of ``model`` while it is entered.

    Parameters
    ----------
    model:
        Model to observe (a DDP wrapper is fine: hooks sit on the inner modules).
    raster_layers:
        Layers whose spike trains to keep for :attr:`rasters`: ``None`` for none,
        ``"all"`` for every layer, or an iterable of layer names.
    raster_sample:
        Index of the sample (within the first batch seen) whose spikes are kept.
    raster_neurons:
        At most this many neurons per layer are kept, evenly spaced over the layer.

    Attributes
    ----------
    rasters:
        ``{layer: uint8 tensor [T, neurons]}`` filled on the first forward pass.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        raster_layers: Iterable[str] | str | None = None,
        raster_sample: int = 0,
        raster_neurons: int = 128,
    ) -> None:
        if isinstance(raster_sample, bool) or not isinstance(raster_sample, int) or raster_sample < 0:
            raise ValueError(f"raster_sample must be a non-negative integer, not {raster_sample!r}")
        if isinstance(raster_neurons, bool) or not isinstance(raster_neurons, int) or raster_neurons < 1:
            raise ValueError(f"raster_neurons must be a positive integer, not {raster_neurons!r}")
        self._layers = lif_layers(model)
        if not self._layers:
            raise ValueError(f"{type(model).__name__} has no LIFNode layers to record")
        names = [n for n, _ in self._layers]
        if raster_layers is None:
            wanted: set[str] = set()
        elif raster_layers == "all":
            wanted = set(names)
        else:
            wanted = set(raster_layers)
            unknown = sorted(wanted - set(names))
            if unknown:
                raise ValueError(f"unknown LIF layers for the raster: {unknown}; known: {names}")
        self._raster_wanted = wanted
        self._raster_sample = raster_sample
        self._raster_neurons = raster_neurons
        # Spike counts stay on the layers' device until read, so recording adds no syncs.
        self._spikes: torch.Tensor | None = None
        self._steps = [0] * len(names)
        self._neurons = [0] * len(names)
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self.rasters: dict[str, torch.Tensor] = {}

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self._layers)

    def __enter__(self) -> FiringRecorder:
        for index, (name, module) in enumerate(self._layers):
            self._handles.append(module.register_forward_hook(self._make_hook(index, name)))
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def reset(self) -> None:
        """Forget the counts and rasters seen so far."""
        self._spikes = None
        self._steps = [0] * len(self._layers)
        self.rasters.clear()

    def stats(self) -> FiringStats:
        """Counts gathered so far (this process only)."""
        n = len(self._layers)
        spikes = self._spikes.cpu() if self._spikes is not None else torch.zeros(n, dtype=torch.float64)
        steps = torch.tensor(self._steps, dtype=torch.float64)
        return FiringStats(self.layers, spikes, steps, tuple(self._neurons))

    def _make_hook(self, index: int, name: str):  # noqa: ANN202 - torch's hook signature
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            del module, inputs
            spikes = output.detach()
            if spikes.dim() < 2:
                raise ValueError(
                    f"LIF layer {name} returned shape {tuple(spikes.shape)}, expected [T, B, ...]"
                )
            if self._spikes is None:
                self._spikes = torch.zeros(len(self._layers), dtype=torch.float64, device=spikes.device)
            self._spikes[index] += spikes.sum(dtype=torch.float64)
            self._steps[index] += spikes.numel()
            self._neurons[index] = spikes[0, 0].numel()
            if name in self._raster_wanted and name not in self.rasters:
                self._keep_raster(name, spikes)

        return hook

    def _keep_raster(self, name: str, spikes: torch.Tensor) -> None:
        if self._raster_sample >= spikes.shape[1]:
            raise ValueError(
                f"raster_sample {self._raster_sample} is outside the batch of {spikes.shape[1]} "
                f"(layer {name})"
            )
        train = spikes[:, self._raster_sample].reshape(spikes.shape[0], -1)
        n = train.shape[1]
        if n > self._raster_neurons:
            pick = torch.linspace(0, n - 1, self._raster_neurons, device=train.device).round().long()
            train = train[:, pick]
        self.rasters[name] = (train > 0).to(torch.uint8).cpu()


def pick_layers(names: Sequence[str], count: int) -> list[str]:
    """``count`` layer names spread evenly from the first to the last (all if fewer)."""
    if count < 1:
        raise ValueError(f"count must be a positive integer, not {count!r}")
    if len(names) <= count:
        return list(names)
    picks = torch.linspace(0, len(names) - 1, count).round().long().tolist()
    return [names[i] for i in dict.fromkeys(picks)]


@torch.no_grad()
def record_raster(
    model: nn.Module, x: torch.Tensor, *, layers: Iterable[str] | str = "all", max_neurons: int = 128
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Run one sample through ``model`` (eval mode) and keep its spike trains.

    Parameters
    ----------
    model:
        The model; its training mode is restored afterwards.
    x:
        One sample without the batch axis (``[C, H, W]`` or ``[T, C, H, W]``).
    layers:
        Layer names, or ``"all"``.
    max_neurons:
        Neurons kept per layer (evenly spaced).

    Returns
    -------
    logits:
        ``[classes]`` of the sample.
    rasters:
        ``{layer: uint8 [T, neurons]}``.
    """
    was_training = model.training
    model.eval()
    try:
        with FiringRecorder(model, raster_layers=layers, raster_neurons=max_neurons) as rec:
            logits = model(x.unsqueeze(0))
    finally:
        model.train(was_training)
    return logits[0], rec.rasters
