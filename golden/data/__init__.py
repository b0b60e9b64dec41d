"""Datasets of the golden model: one entry point, :func:`build_dataset`, for every source.

Every dataset yields ``(x, label)`` pairs with ``label`` a Python ``int`` in
``[0, num_classes)``:

* event datasets (``dvs128-gesture``, ``cifar10-dvs``, ``synthetic-events``) give
  ``x`` as float32 event counts ``[T, 2, H, W]`` (channel 0 = OFF, 1 = ON);
* ``digits`` gives integer-valued float32 pixels ``[1, 8, 8]`` in ``0..255``;
* ``imagenet``, ``cifar10`` and ``cifar100`` give normalized float images
  ``[3, H, W]`` for the reference model only (the hardware presets need integer
  inputs).

Static images are repeated over time by the model (direct encoding), so
``timesteps`` only matters for event datasets.

Each dataset module registers a builder and a :class:`DatasetInfo` here with
:func:`register_dataset`; importing this package imports every module, so
:func:`list_datasets` always sees all of them.
"""

from __future__ import annotations

from .errors import AedatFormatError, DatasetLayoutError
from .registry import (
    DatasetInfo,
    build_dataset,
    dataset_info,
    list_datasets,
    register_dataset,
)

__all__ = [
    "AedatFormatError",
    "DatasetInfo",
    "DatasetLayoutError",
    "build_dataset",
    "dataset_info",
    "list_datasets",
    "register_dataset",
]

# Dataset modules register themselves on import.
from . import cifar10dvs, digits, gesture, static, synthetic_events  # noqa: E402,F401
