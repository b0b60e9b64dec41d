"""Helpers shared by the model families: checked configs, input layout, parameter counts.

Every family describes a preset as a frozen dataclass; :func:`apply_overrides`
builds a variant from keyword overrides (``create_model("hw-tiny", depth=1)``)
and the dataclass's ``__post_init__`` checks each field with the helpers below,
so a bad value fails at construction with a message naming the preset and field.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import torch
import torch.nn as nn

from contract.checks import check_int as contract_check_int

__all__ = [
    "ConfigError",
    "count_parameters",
    "prepare_input",
    "apply_overrides",
    "check_int",
    "check_float",
    "check_choice",
    "check_int_tuple",
    "check_bool_tuple",
]

C = TypeVar("C")


class ConfigError(ValueError):
    """A model configuration field has a wrong type or value."""


def owner(cfg: Any) -> str:
    name = getattr(cfg, "name", None)
    return f"{type(cfg).__name__}({name!r})" if name is not None else type(cfg).__name__


def where(cfg: Any, field: str) -> str:
    # The subject of contract.checks' message shape: "<Owner>.<field> must be ..., not <value>".
    return f"{owner(cfg)}.{field}"


def check_int(cfg: Any, field: str, *, minimum: int = 1) -> int:
    """``cfg.field`` if it is a Python ``int >= minimum``, else :class:`ConfigError`."""
    return contract_check_int(
        owner(cfg),
        field,
        getattr(cfg, field),
        minimum=minimum,
        error=ConfigError,
        type_error=ConfigError,
        numpy=False,
    )


def check_float(cfg: Any, field: str, *, minimum: float = 0.0, inclusive: bool = False) -> float:
    value = getattr(cfg, field)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where(cfg, field)} must be a number, not {value!r}")
    if value < minimum or (value == minimum and not inclusive):
        bound = ">=" if inclusive else ">"
        raise ConfigError(f"{where(cfg, field)} must be {bound} {minimum}, not {value!r}")
    return float(value)


def check_choice(cfg: Any, field: str, choices: Iterable[str]) -> str:
    value = getattr(cfg, field)
    choices = tuple(choices)
    if value not in choices:
        raise ConfigError(f"{where(cfg, field)} must be one of {choices}, not {value!r}")
    return value


def _as_tuple(cfg: Any, field: str) -> tuple[Any, ...]:
    value = getattr(cfg, field)
    if not isinstance(value, (tuple, list)):
        raise ConfigError(f"{where(cfg, field)} must be a tuple, not {value!r}")
    value = tuple(value)
    object.__setattr__(cfg, field, value)  # lists (JSON, CLI) become the frozen tuple form
    return value


def check_int_tuple(cfg: Any, field: str, *, length: int | None = None, minimum: int = 1) -> tuple[int, ...]:
    value = _as_tuple(cfg, field)
    if length is not None and len(value) != length:
        raise ConfigError(f"{where(cfg, field)} must have {length} entries, not {len(value)}: {value!r}")
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int) or item < minimum:
            raise ConfigError(f"{where(cfg, field)} entries must be integers >= {minimum}, not {value!r}")
    return value


def check_bool_tuple(cfg: Any, field: str, *, length: int) -> tuple[bool, ...]:
    value = _as_tuple(cfg, field)
    if len(value) != length or not all(isinstance(item, bool) for item in value):
        raise ConfigError(f"{where(cfg, field)} must be {length} booleans, not {value!r}")
    return value


def apply_overrides(cfg: C, overrides: Mapping[str, Any]) -> C:
    """``cfg`` with ``overrides`` replacing fields; unknown names raise :class:`ConfigError`."""
    names = {f.name for f in dataclasses.fields(cfg)}  # type: ignore[arg-type]
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ConfigError(f"{owner(cfg)} has no field(s) {unknown}; known fields: {', '.join(sorted(names))}")
    return dataclasses.replace(cfg, **overrides)  # type: ignore[type-var]


def prepare_input(
    x: torch.Tensor, *, timesteps: int, in_channels: int, img_size: int, model: str
) -> torch.Tensor:
    """Check ``[B, T, C, H, W]`` / ``[B, C, H, W]`` input and return it as ``[T, B, C, H, W]``.

    A static image is repeated ``timesteps`` times (direct encoding).
    """
    if x.dim() == 4:
        x = x.unsqueeze(1).expand(-1, timesteps, -1, -1, -1)
    if x.dim() != 5:
        raise ValueError(
            f"{model}: input must be [B, T, C, H, W] or [B, C, H, W], got shape {tuple(x.shape)}"
        )
    expected = (timesteps, in_channels, img_size, img_size)
    if tuple(x.shape[1:]) != expected:
        raise ValueError(
            f"{model}: input [B, T, C, H, W] must have T, C, H, W = {expected}, got shape {tuple(x.shape)}"
        )
    return x.transpose(0, 1)


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameter elements of ``model`` (buffers such as BN statistics excluded)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
