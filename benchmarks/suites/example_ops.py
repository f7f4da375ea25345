"""A user's own operator for ``example_custom.yaml``: colorization (RGB -> gray).

An operator factory takes the image shape and, if it wants them, ``generator`` (for random
operators) and ``sample`` (the dataset item); suite keywords arrive as keyword arguments.
"""
import torch

import operators as ops


def colorization(shape, generator=None, *, weights=(0.299, 0.587, 0.114)):
    """``y = sum_c w_c x_c``: the luma of an RGB image (ITU-R BT.601 weights)."""
    c, h, w = shape
    if c != 3:
        raise ValueError(f"colorization: expected RGB images (3, H, W), got {tuple(shape)}")
    weight = torch.tensor(weights).reshape(1, 3, 1, 1)
    return ops.FunctionOperator(
        lambda x: (x * weight.to(x)).sum(1, keepdim=True),      # A x
        lambda y: y * weight.to(y.real),                          # A^T y
        in_shape=(3, h, w), out_shape=(1, h, w), name="Colorization")
