"""Constant payloads of the weight-carrying commands (docs/accelerator.md, "Stream protocol").

Pure packing of integer parameters into 64-bit stream words for a configuration; which
op they belong to and whether its accumulators fit is the builder's concern
(:mod:`protocol.compiler.builder`).
"""

from __future__ import annotations

import numpy as np

from protocol.config import STREAM_BITS, AcceleratorConfig
from protocol.program import pack_fields

__all__ = ["head_payload", "synapse_payload"]


def synapse_payload(
    cfg: AcceleratorConfig, taps: np.ndarray, bias: np.ndarray, threshold: np.ndarray
) -> np.ndarray:
    """The ``CONV`` payload: per output-channel group, ``L`` parameter words, then ``fan_in``
    weight-memory words.

    Parameters
    ----------
    cfg:
        The configuration (``lanes``, weight and membrane widths).
    taps:
        ``[out_c, fan_in]`` integer weights, fan-in in the order the synapse reads it.
    bias, threshold:
        ``[out_c]`` integer biases and firing thresholds.
    """
    lanes, out_c = cfg.lanes, taps.shape[0]
    groups = -(-out_c // lanes)
    never = 1 << (cfg.numerics.membrane_bits - 1)  # above every membrane value: never fires
    padded_w = np.zeros((groups * lanes, taps.shape[1]), dtype=np.int64)
    padded_w[:out_c] = taps
    padded_b = np.zeros(groups * lanes, dtype=np.int64)
    padded_b[:out_c] = bias
    padded_t = np.full(groups * lanes, never, dtype=np.int64)
    padded_t[:out_c] = threshold
    params = (padded_b & 0xFFFF_FFFF) | ((padded_t & 0xFFFF_FFFF) << 32)
    parts = []
    for g in range(groups):
        rows = slice(g * lanes, (g + 1) * lanes)
        parts.append(params[rows].astype(np.uint64))
        words = pack_fields(padded_w[rows].T, cfg.numerics.weight_bits)  # [fan_in, WPW]
        parts.append(words.reshape(-1))
    return np.concatenate(parts)


def head_payload(cfg: AcceleratorConfig, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """The ``HEAD`` payload: per class, its bias word, then its weights packed into stream words.

    Parameters
    ----------
    cfg:
        The configuration (weight width).
    weight, bias:
        ``[classes, D]`` integer weights and ``[classes]`` integer biases.
    """
    classes, d = weight.shape
    per = STREAM_BITS // cfg.numerics.weight_bits
    padded = np.zeros((classes, -(-d // per) * per), dtype=np.int64)
    padded[:, :d] = weight
    words = pack_fields(padded, cfg.numerics.weight_bits)  # [classes, D / per]
    return np.concatenate([bias.astype(np.int64).view(np.uint64)[:, None], words], axis=1).reshape(-1)
