"""Argument checks shared by every parameter object, with one message shape.

A bad value fails at construction with ``"<Owner>.<name> must be <requirement>, not <value!r>"``
(``NumericsConfig.frac_bits must be an integer in [0, 16], not -1``), in the manner of
Amaranth's own checks, whichever layer (numerics, PE parameters, accelerator or model
configuration) owns the field.
"""

from __future__ import annotations

import numpy as np

__all__ = ["check_int"]


def check_int(
    owner: str,
    name: str,
    value: object,
    *,
    minimum: int,
    maximum: int | None = None,
    error: type[Exception] = ValueError,
    type_error: type[Exception] = TypeError,
    numpy: bool = True,
) -> int:
    """``value`` as an ``int`` if it is an integer in ``[minimum, maximum]``, else raise.

    Parameters
    ----------
    owner:
        What the field belongs to (a class name), the first part of the message.
    name:
        The field.
    value:
        The value to check; ``bool`` is never an integer here.
    minimum, maximum:
        Inclusive bounds; no upper bound when ``maximum`` is ``None``.
    error:
        Exception raised for an integer out of range (a :class:`ValueError` subclass such
        as a layer's ``ConfigError``).
    type_error:
        Exception raised for a value that is not an integer.
    numpy:
        Whether numpy integers pass. Layers whose fields end up in JSON or hashes turn it
        off, so a numpy scalar cannot slip into a frozen configuration.

    Raises
    ------
    type_error
        ``value`` is not an integer.
    error
        ``value`` lies outside the bounds.
    """
    kinds = (int, np.integer) if numpy else (int,)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise type_error(f"{owner}.{name} must be an integer, not {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"in [{minimum}, {maximum}]" if maximum is not None else f">= {minimum}"
        raise error(f"{owner}.{name} must be an integer {bound}, not {value!r}")
    return int(value)
