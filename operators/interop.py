"""deepinv interoperability: any ``deepinv.physics`` as one of our operators, and back.

deepinv physics hold their tensors as module buffers on one device and in one precision; the wrapper
keeps copies moved to the input's device and precision (memoised per device/dtype, never mutating the
user's physics), so the result is on the input's device as for our own operators. deepinv's complex
data are real tensors with a channel of size 2; the wrapper passes tensors through unchanged.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import Tensor

from .linear import LinearOperator, Operator, _Base, complex_dtype, real_dtype

__all__ = ["from_deepinv", "to_deepinv"]


class _PhysicsCopies:
    """The wrapped physics, copied once per (device, real dtype) of the inputs it meets."""

    def __init__(self, physics):
        self.physics = physics
        self.copies: dict = {}
        tensors = list(physics.parameters()) + list(physics.buffers()) if isinstance(physics, torch.nn.Module) else []
        floats = [t for t in tensors if t.is_floating_point()]
        self.home = (tensors[0].device if tensors else torch.device("cpu"),
                     floats[0].dtype if floats else torch.float32)

    def on(self, x: Tensor):
        key = (x.device, real_dtype(x.dtype))
        if key == self.home or not isinstance(self.physics, torch.nn.Module):
            return self.physics
        if key not in self.copies:
            device, dtype = key
            # Module.to(dtype) would drop the imaginary part of complex buffers (e.g. coil maps).
            self.copies[key] = copy.deepcopy(self.physics)._apply(lambda t: t.to(
                device, dtype if t.is_floating_point() else complex_dtype(dtype) if t.is_complex() else None))
        return self.copies[key]


def _probe(physics, in_shape: Sequence[int] | None) -> tuple[tuple[int, ...], tuple[int, ...], bool]:
    """Input shape (given or inferred), output shape, and whether the output is complex."""
    if in_shape is None:
        guess = getattr(physics, "img_size", None)
        if guess is not None and len(tuple(guess)) == 3:
            in_shape = tuple(guess)
        else:
            raise ValueError(f"from_deepinv: cannot infer the image shape of {type(physics).__name__}; "
                             "pass in_shape=(C, H, W)")
    in_shape = tuple(int(d) for d in in_shape)
    home = _PhysicsCopies(physics).home
    with torch.no_grad():
        y = physics.A(torch.zeros(1, *in_shape, device=home[0], dtype=home[1]))
    return in_shape, tuple(y.shape[1:]), y.is_complex()


class DeepinvLinear(LinearOperator):
    """A ``deepinv.physics.LinearPhysics`` as a :class:`LinearOperator` (``A`` and ``A_adjoint``).

    deepinv works on real tensors (complex data as two channels), so the operator is ``real_input``.
    """

    def __init__(self, physics, in_shape: Sequence[int] | None = None):
        in_shape, out_shape, complex_out = _probe(physics, in_shape)
        super().__init__(in_shape, out_shape, name=f"deepinv.{type(physics).__name__}")
        self.real_input, self.real_output = True, not complex_out
        self.physics = _PhysicsCopies(physics)

    def _apply(self, x: Tensor) -> Tensor:
        return self.physics.on(x).A(x)

    def _adjoint(self, y: Tensor) -> Tensor:
        return self.physics.on(y).A_adjoint(y)

    def to(self, device=None, dtype=None):
        # deepinv keeps its own buffers; inputs decide where the copies live.
        return self


class DeepinvOperator(Operator):
    """A nonlinear ``deepinv.physics.Physics`` as an :class:`Operator` (its noiseless ``A``)."""

    def __init__(self, physics, in_shape: Sequence[int] | None = None):
        in_shape, out_shape, _ = _probe(physics, in_shape)
        super().__init__(in_shape, out_shape, name=f"deepinv.{type(physics).__name__}")
        self.physics = _PhysicsCopies(physics)

    def _apply(self, x: Tensor) -> Tensor:
        return self.physics.on(x).A(x)

    def to(self, device=None, dtype=None):
        return self


def from_deepinv(physics, in_shape: Sequence[int] | None = None) -> _Base:
    """Wrap a deepinv physics: a ``LinearPhysics`` becomes a :class:`LinearOperator` (``A``,
    ``A_adjoint``), any other ``Physics`` an :class:`Operator`. Noise stays outside: use our noise models.

    :param physics: a ``deepinv.physics.Physics`` instance.
    :param in_shape: per-sample input shape ``(C, H, W)``; inferred from ``physics.img_size`` when that is
        a 3-tuple. The output shape is found by applying ``A`` once to zeros.

    Example::

        >>> import deepinv as dinv
        >>> op = from_deepinv(dinv.physics.Inpainting(img_size=(1, 8, 8), mask=0.5), in_shape=(1, 8, 8))
        >>> op.out_shape
        (1, 8, 8)
    """
    import deepinv

    if not isinstance(physics, deepinv.physics.Physics):
        raise TypeError(f"from_deepinv: physics must be a deepinv.physics.Physics, got {type(physics).__name__}")
    if isinstance(physics, deepinv.physics.LinearPhysics):
        return DeepinvLinear(physics, in_shape)
    return DeepinvOperator(physics, in_shape)


def to_deepinv(op: _Base, noise_model=None):
    """Our operator as a deepinv physics: ``LinearPhysics(A=op, A_adjoint=op.H)`` for a linear one, else
    ``Physics(A=op)``. deepinv's solvers then use its own CG pseudo-inverse and prox.

    :param op: a :class:`LinearOperator` or :class:`Operator`.
    :param noise_model: a deepinv noise model (default: none).
    """
    import deepinv

    if not isinstance(op, _Base):
        raise TypeError(f"to_deepinv: op must be an operators LinearOperator or Operator, got {type(op).__name__}")
    kwargs = {} if noise_model is None else {"noise_model": noise_model}
    if isinstance(op, LinearOperator):
        return deepinv.physics.LinearPhysics(A=lambda x, **_: op(x), A_adjoint=lambda y, **_: op.H(y),
                                             img_size=op.in_shape, **kwargs)
    return deepinv.physics.Physics(A=lambda x, **_: op(x), **kwargs)
