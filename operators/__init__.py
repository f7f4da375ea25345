"""Forward operators ``y = A(x) + noise`` for imaging inverse problems (DESIGN §3).

``import operators as ops``. The operator algebra and its conventions are in :mod:`operators.linear`;
``ops.check(op)`` tests any operator (the test suite's ``tests/operators/operator_cases.py`` builds a
small instance of every shipped one).
"""
from . import kernels, masks
from .blur import Blur
from .check import check
from .ct import CT, fbp
from .downsample import Downsample
from .inpainting import Inpainting
from .interop import from_deepinv, to_deepinv
from .linear import SVD, FunctionOperator, Identity, LinearOperator, Operator, cg
from .matrix import Matrix
from .mri import MRI, estimate_coil_maps
from .noise import GaussianNoise, PoissonGaussianNoise, PoissonNoise
from .phase_retrieval import PhaseRetrieval

__all__ = [
    "LinearOperator", "Operator", "FunctionOperator", "Identity", "SVD", "cg", "check",
    "Inpainting", "Blur", "Downsample", "Matrix", "MRI", "estimate_coil_maps", "CT", "fbp", "PhaseRetrieval",
    "GaussianNoise", "PoissonNoise", "PoissonGaussianNoise", "from_deepinv", "to_deepinv", "kernels", "masks",
]
