"""The integer input of the model (docs/numerics.md section 3): pixels or event counts."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["quantize_input"]


def quantize_input(x: Any, *, input_max: int, strict: bool = False) -> np.ndarray:
    """Integer input of the model (docs/numerics.md section 3) as ``int64``.

    Float arrays / tensors must hold integers; values above ``input_max`` (event counts)
    are clipped to it unless ``strict``, which rejects them (the integer model's own
    entry check). Negative values are always an error.
    """
    if hasattr(x, "detach"):  # a torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.dtype.kind == "f":
        if not np.isfinite(x).all() or (x != np.round(x)).any():
            raise ValueError("input must hold integers (pixels or event counts), found fractional values")
        x = x.astype(np.int64)
    elif x.dtype.kind not in "iub":
        raise TypeError(f"input must be an integer or integer-valued float array, not {x.dtype}")
    x = x.astype(np.int64, copy=False)
    if x.size and x.min() < 0:
        raise ValueError(f"input must be non-negative, found {x.min()}")
    if x.size and x.max() > input_max:
        if strict:
            raise ValueError(
                f"input values must be <= input_max = {input_max}, found {x.max()}; "
                "clip event counts with quantize_input first"
            )
        x = np.minimum(x, input_max)
    return x
