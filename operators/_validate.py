"""Argument checks shared by the operators' constructors, the mask and kernel generators and the noise
models (DESIGN: bad input is a ``ValueError`` or ``TypeError`` at construction, naming the argument).

Every message reads ``"<argument>: expected <what>, got <what came>"``, e.g.
``kernel: expected finite values, got NaN``. A wrong *kind* of value (not a tensor, an integer tensor where
floats are needed, a complex number, a bool where a number is needed, a float where an int is needed) is a
``TypeError``; a value of the right kind outside its range (NaN or inf, a negative size, an empty tensor, a
shape that does not fit) is a ``ValueError``.

The checks are cheap: a tensor check is at most one reduction over the tensor (``isfinite(t).all()``); the
reason for a failure is worked out only once a check has failed.
"""
from __future__ import annotations

import math
import operator
from numbers import Integral, Real
from typing import Iterable, Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = ["tensor", "finite", "binary", "number", "integer", "shape", "size2", "flag", "choice", "describe"]

_KINDS = {
    "float": "a real floating tensor",
    "inexact": "a floating or complex tensor",
    "complex": "a complex tensor",
    "real": "a real tensor (bool, integer or floating)",
}


def describe(value) -> str:
    """A short description of ``value`` for an error message."""
    if isinstance(value, Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    if isinstance(value, (bool, np.bool_)):
        return f"bool {bool(value)}"
    if isinstance(value, (int, float, complex, np.number)):
        return repr(value.item() if isinstance(value, np.number) else value)
    return type(value).__name__


def _bad_values(t: Tensor) -> str:
    """Why ``t`` is not all finite (called only after a check failed)."""
    return "NaN" if bool(torch.isnan(t).any()) else "inf"


def finite(t: Tensor, name: str) -> Tensor:
    """``t`` unchanged; ``ValueError`` naming ``name`` if it holds NaN or inf (one reduction)."""
    if (t.is_floating_point() or t.is_complex()) and not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name}: expected finite values, got {_bad_values(t)}")
    return t


def tensor(value, name: str, *, kind: str = "inexact", ndim: int | Iterable[int] | None = None,
           layout: str | None = None, nonempty: bool = True, check_finite: bool = True) -> Tensor:
    """Check a tensor argument and return it.

    :param kind: ``"float"`` (real floating), ``"inexact"`` (floating or complex), ``"complex"`` or
        ``"real"`` (bool, integer or floating, e.g. a 0/1 mask).
    :param ndim: allowed numbers of dimensions; :param layout: how to name them in the message, e.g.
        ``"(K, H, W)"``.
    :param nonempty: reject tensors with a zero-size dimension.
    :param check_finite: reject NaN and inf.
    :raises TypeError: not a tensor, or of the wrong dtype. :raises ValueError: dimensions, empty, NaN/inf.
    """
    if not isinstance(value, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {describe(value)}")
    dtype = value.dtype
    ok = {"float": value.is_floating_point(), "inexact": value.is_floating_point() or value.is_complex(),
          "complex": value.is_complex(), "real": not value.is_complex()}[kind]
    if not ok or dtype in (torch.complex32,) or (value.is_floating_point() and dtype.itemsize == 1):
        raise TypeError(f"{name}: expected {_KINDS[kind]}, got {dtype}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if value.ndim not in allowed:
            dims = " or ".join(str(d) for d in allowed)
            raise ValueError(f"{name}: expected {layout or f'{dims} dimensions'}, got shape {tuple(value.shape)}")
    if nonempty and value.numel() == 0:
        raise ValueError(f"{name}: expected a non-empty tensor, got shape {tuple(value.shape)}")
    return finite(value, name) if check_finite else value


def binary(t: Tensor, name: str, *, observed: bool = True) -> Tensor:
    """``t`` as a floating tensor (bool/int become float32) after checking that every entry is 0 or 1 (so no
    NaN or inf) and, with ``observed``, that at least one entry is 1."""
    t = t if t.is_floating_point() else t.float()
    ones = t == 1
    if not bool((ones | (t == 0)).all()):
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name}: expected finite values, got {_bad_values(t)}")
        raise ValueError(f"{name}: expected a binary mask (0/1 or bool), got other values")
    if observed and not bool(ones.any()):
        raise ValueError(f"{name}: expected at least one observed entry (a 1), got all zeros")
    return t


def _range(low, high, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low:g}"
    return f"{'<' if high_open else '<='} {high:g}"


def number(value, name: str, *, low: float | None = None, high: float | None = None, low_open: bool = False,
           high_open: bool = False, allow_inf: bool = False) -> float:
    """A real number (int, float, numpy scalar or one-element real tensor) as a float, finite unless
    ``allow_inf``, within ``[low, high]`` (ends open as asked).

    :raises TypeError: a bool, a complex number, a string, None, a tensor of several entries.
    :raises ValueError: NaN, inf, or out of range.
    """
    if isinstance(value, Tensor):
        if value.numel() != 1 or value.is_complex() or value.dtype == torch.bool:
            raise TypeError(f"{name}: expected a real number, got {describe(value)}")
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real):
        raise TypeError(f"{name}: expected a real number, got {describe(value)}")
    x = float(value)
    if math.isnan(x) or (math.isinf(x) and not allow_inf):
        raise ValueError(f"{name}: expected a finite number, got {x}")
    if (low is not None and (x < low or (low_open and x == low))) or \
            (high is not None and (x > high or (high_open and x == high))):
        raise ValueError(f"{name}: expected a number {_range(low, high, low_open, high_open)}, got {x:g}")
    return x


def integer(value, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """An integer (int, numpy integer, 0-d integer tensor; not bool, not float) within ``[low, high]``."""
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, Tensor) and value.dtype == torch.bool):
        raise TypeError(f"{name}: expected an int, got {describe(value)}")
    try:
        n = operator.index(value)
    except TypeError:
        raise TypeError(f"{name}: expected an int, got {describe(value)}") from None
    if (low is not None and n < low) or (high is not None and n > high):
        raise ValueError(f"{name}: expected an int {_range(low, high, False, False)}, got {n}")
    return n


def shape(value, name: str, *, ndim: int | Iterable[int] | None = None, layout: str | None = None) -> tuple[int, ...]:
    """A shape: a sequence (tuple, list, ``torch.Size``) of positive ints, of ``ndim`` entries if given."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, torch.Size)):
        raise TypeError(f"{name}: expected a shape {layout or '(a sequence of ints)'}, got {describe(value)}")
    dims = tuple(integer(d, name) for d in value)
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if len(dims) not in allowed:
            raise ValueError(f"{name}: expected {layout or f'{ndim} sizes'}, got {dims}")
    if any(d < 1 for d in dims):
        raise ValueError(f"{name}: expected positive sizes, got {dims}")
    return dims


def size2(value, name: str) -> tuple[int, int]:
    """An int (square) or a pair of ints, each >= 1: ``(H, W)``."""
    if isinstance(value, (Integral, np.integer)) and not isinstance(value, (bool, np.bool_)):
        value = (value, value)
    return shape(value, name, ndim=2, layout="(H, W) or an int")  # type: ignore[return-value]


def flag(value, name: str) -> bool:
    """A bool (not a truthy number or string)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool, got {describe(value)}")
    return bool(value)


def choice(value, name: str, options: Sequence[str]) -> str:
    """One of the strings ``options``."""
    if not isinstance(value, str):
        raise TypeError(f"{name}: expected one of {', '.join(map(repr, options))}, got {describe(value)}")
    if value not in options:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, options))}, got {value!r}")
    return value
