"""The model registry: presets are registered by name and built with :func:`create_model`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch.nn as nn

__all__ = ["register_model", "create_model", "list_models", "model_entrypoint"]

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register ``fn`` under its name with ``_`` spelled ``-`` (``hw_tiny`` -> ``hw-tiny``)."""
    name = fn.__name__.replace("_", "-")
    if name in _REGISTRY:
        raise ValueError(f"model preset {name!r} is registered twice")
    _REGISTRY[name] = fn
    return fn


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def model_entrypoint(name: str) -> Callable[..., nn.Module]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model preset {name!r}; known presets: {', '.join(list_models())}") from None


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build preset ``name``; keyword ``overrides`` replace fields of its config."""
    return model_entrypoint(name)(**overrides)
