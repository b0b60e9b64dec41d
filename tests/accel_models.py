"""Integer models and inputs for the accelerator's model-level tests.

* :func:`tiny_model`: the suite's briefly trained ``hw-tiny`` digits export (the conftest
  ``tiny_export`` fixture) and digits test inputs.
* :func:`dvs_model`: a DVS-shaped Hardware Spikeformer (2 x 16 x 16 event frames, T = 4,
  two conv stages with spike max-pool, 64 tokens, one block with ``joint`` or ``divided``
  attention), untrained, its BatchNorm statistics calibrated on ``synthetic-events`` frames
  (:func:`golden.workloads.firing_int_model`).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from contract.intmodel import IntModel, quantize_input
from golden.workloads import firing_int_model

__all__ = ["tiny_model", "dvs_model"]


def _dataset(name: str, split: str, count: int, **kwargs: object) -> np.ndarray:
    from golden.data import build_dataset

    root = None  # digits ships with scikit-learn; synthetic events are generated in memory
    ds = build_dataset(name, root, split, timesteps=4, **kwargs)
    return np.stack([np.asarray(ds[i][0]) for i in range(count)])


@lru_cache(maxsize=2)
def tiny_model(export: Path, samples: int) -> tuple[IntModel, np.ndarray]:
    """``(model, inputs [samples, 1, 8, 8])``: the hw-tiny export at ``export`` and digits test inputs."""
    from contract.manifest import load_export

    model = load_export(export).model
    inputs = quantize_input(_dataset("digits", "test", samples), input_max=model.numerics.input_max)
    return model, inputs


@lru_cache(maxsize=2)
def dvs_model(attention: str, samples: int = 2) -> tuple[IntModel, np.ndarray]:
    """``(model, inputs [samples, 4, 2, 16, 16])``; ``attention`` is ``joint`` or ``divided``."""
    overrides = dict(
        in_channels=2,
        img_size=16,
        num_classes=10,
        timesteps=4,
        tokenizer_channels=(16,),
        tokenizer_pools=(True, False),
        embed_dim=32,
        depth=1,
        heads=2,
        mlp_ratio=2,
        attention=attention,
    )
    calibration = _dataset("synthetic-events", "train", 64, size=16)
    model = firing_int_model("hw-tiny", calibration=calibration, **overrides)
    frames = _dataset("synthetic-events", "test", samples, size=16)
    return model, quantize_input(frames, input_max=model.numerics.input_max)
