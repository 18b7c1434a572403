"""Checkers of operation attributes: each returns the normalised value or raises ValueError.

Attributes are plain JSON-compatible values (ints, floats, strings, bools, nested tuples), so a
graph saves without pickle and two graphs compare with ``==``.
"""

from __future__ import annotations

import numbers

__all__ = ["ACTIVATIONS", "activation", "boolean", "integer", "number", "pair", "padding2d",
           "paddings", "positive", "shape", "text"]

#: Fused activations of an operation: clamps applied after requantization.
ACTIVATIONS = ("none", "relu", "relu6")


def _int(value, what, minimum=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{what} must be an integer, not {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{what} must be at least {minimum}, not {value}")
    return int(value)


def integer(value, what):
    """Return ``value`` as int."""
    return _int(value, what)


def positive(value, what):
    """Return ``value`` as a positive int."""
    return _int(value, what, 1)


def number(value, what):
    """Return ``value`` as a finite float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or value != value or abs(value) == float("inf"):
        raise ValueError(f"{what} must be a finite number, not {value!r}")
    return float(value)


def boolean(value, what):
    """Return ``value`` as bool (only True or False are accepted)."""
    if not isinstance(value, bool):
        raise ValueError(f"{what} must be True or False, not {value!r}")
    return value


def text(value, what):
    """Return ``value`` as a non-empty string."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, not {value!r}")
    return value


def activation(value, what):
    """Return a fused activation name from :data:`ACTIVATIONS`."""
    if value not in ACTIVATIONS:
        raise ValueError(f"{what} must be one of {ACTIVATIONS}, not {value!r}")
    return value


def pair(value, what):
    """Return ``(h, w)``, two positive ints."""
    try:
        items = tuple(value)
    except TypeError:
        items = ()
    if len(items) != 2:
        raise ValueError(f"{what} must be a pair (h, w), not {value!r}")
    return tuple(positive(v, what) for v in items)


def paddings(value, what, rank=None):
    """Return a tuple of ``(before, after)`` pairs of non-negative ints."""
    try:
        items = tuple(tuple(p) for p in value)
    except TypeError:
        raise ValueError(f"{what} must be a sequence of (before, after) pairs, "
                         f"not {value!r}") from None
    if any(len(p) != 2 for p in items) or (rank is not None and len(items) != rank):
        count = f"{rank} " if rank is not None else ""
        raise ValueError(f"{what} must be {count}(before, after) pairs, not {value!r}")
    return tuple(tuple(_int(v, what, 0) for v in p) for p in items)


def padding2d(value, what):
    """Return ``((top, bottom), (left, right))``."""
    return paddings(value, what, rank=2)


def shape(value, what):
    """Return a tuple of positive ints (a per-sample shape)."""
    try:
        items = tuple(value)
    except TypeError:
        raise ValueError(f"{what} must be a sequence of positive integers, "
                         f"not {value!r}") from None
    return tuple(positive(v, what) for v in items)
