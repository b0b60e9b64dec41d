"""Model families and their registry: presets are built by name with :func:`create_model`.

Each model family lives in its own module and registers thin entrypoints with
:func:`register_model` (:mod:`golden.models.registry`); importing this package imports
every family, so ``list_models()`` always sees all presets.
"""

from __future__ import annotations

from . import hw_spikeformer, sj_spikformer, spikeformer  # noqa: F401  (families register themselves on import)
from .registry import create_model, list_models, model_entrypoint, register_model

__all__ = ["register_model", "create_model", "list_models", "model_entrypoint"]
