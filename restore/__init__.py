"""Solvers for imaging inverse problems with diffusion priors.

Every solver has one signature::

    restore.<name>(prior, op, y, noise, *, steps, generator=None, callback=None, **hyper) -> x

``prior`` is a denoiser (:class:`priors.Prior`), ``op`` an operator from :mod:`operators`, ``y`` the
measurement and ``noise`` its noise model (e.g. ``ops.GaussianNoise(0.05)``), in image units.
Baselines take the same arguments and ignore ``prior`` (it may be ``None``).

Two marks on a solver function say what it returns: ``solver.cloud`` (sequential Monte Carlo: a cloud
of particles, see :func:`restore.posterior`) and ``solver.point_estimate`` (``red_diff``, ``dpir`` and
the baselines: one estimate, not a posterior sample, so no credible intervals).
"""
from ._common import SolverDiverged
from .baselines import classical, pinv, tv
from .daps import daps
from .ddnm import ddnm
from .ddrm import ddrm
from .diffpir import diffpir
from .dpir import dpir
from .dps import dps
from .fps import fps
from .mcgdiff import mcgdiff
from .pigdm import pigdm
from .posterior import posterior
from .red_diff import red_diff
from .tds import tds

SOLVERS = {
    "dps": dps,
    "red_diff": red_diff,
    "ddrm": ddrm,
    "ddnm": ddnm,
    "pigdm": pigdm,
    "diffpir": diffpir,
    "daps": daps,
    "mcgdiff": mcgdiff,
    "fps": fps,
    "tds": tds,
    "dpir": dpir,
    "pinv": pinv,
    "tv": tv,
    "classical": classical,
}

__all__ = ["SOLVERS", "SolverDiverged", "posterior", *SOLVERS]
