"""Compile an integer model (:class:`contract.intmodel.IntModel`) into an accelerator program.

* :mod:`protocol.compiler.builder` -- :class:`~protocol.compiler.builder.ProgramBuilder` walks the
  model's ops and emits commands; :func:`compile_model` is its entry point;
* :mod:`protocol.compiler.banding` -- band tiling of conv stages that do not fit on chip, driven
  through the builder's public surface (the ``StageBuilder`` protocol);
* :mod:`protocol.compiler.alloc` -- best-fit regions of the activation memory;
* :mod:`protocol.compiler.values` -- where each model value is placed;
* :mod:`protocol.compiler.payloads` -- packing of the ``CONV`` and ``HEAD`` payloads;
* :mod:`protocol.compiler.errors` -- :class:`CompileError`.

Imports go one way: only this ``__init__`` imports ``builder``; ``banding`` uses ``alloc``, ``values``
and ``errors``, never ``builder``.
"""

from protocol.compiler.builder import compile_model
from protocol.compiler.errors import CompileError

__all__ = ["CompileError", "compile_model"]
