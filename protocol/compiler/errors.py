"""The compiler's one error: a model that cannot run on a configuration.

It lives in its own module so every part of the compiler can raise it without
importing the op walker (:mod:`protocol.compiler.builder`).
"""

from __future__ import annotations

__all__ = ["CompileError"]


class CompileError(ValueError):
    """The model cannot run on the configuration; names the op and the limit.

    Parameters
    ----------
    op:
        The model op that does not fit (``""`` for the model as a whole).
    reason:
        What does not fit, and the configuration field that would make it fit.
    """

    def __init__(self, op: str, reason: str) -> None:
        self.op, self.reason = op, reason
        super().__init__(f"op {op!r}: {reason}" if op else reason)
