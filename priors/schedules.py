"""Noise schedules as data.

Everything here speaks the variance-exploding ("VE") language of Karras et al. (2022): a noisy image is
``x = x0 + sigma * n``. A variance-preserving state ``x_t = sqrt(abar) x0 + sqrt(1 - abar) eps`` is the
same thing seen through ``x = x_t / sqrt(abar)`` and ``sigma = sqrt((1 - abar) / abar)``.

Two kinds of object live here:

* sigma *sequences* for samplers: plain functions returning float64 tensors, descending, with a final 0
  appended (the k-diffusion convention), e.g. :func:`karras`;
* network *conditionings*: how a given network expects to be told the noise level (a discrete DDPM
  timestep, a continuous VP time, the VE sigma itself, or EDM's ``log(sigma) / 4``), and how its input is
  scaled (VP networks see ``x_t``, not ``x``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import torch

__all__ = [
    "karras",
    "log_linear",
    "append_zero",
    "abar_from_sigma",
    "sigma_from_abar",
    "linear_betas",
    "cosine_betas",
    "DiscreteVP",
    "ContinuousVP",
    "VE",
    "EDM",
    "from_config",
]


def append_zero(sigmas: torch.Tensor) -> torch.Tensor:
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def karras(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """EDM schedule (Karras et al. 2022, eq. 5): ``n`` sigmas from sigma_max down to sigma_min, then 0."""
    _check_range(n, sigma_min, sigma_max)
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    inv_rho = 1.0 / rho
    sigmas = (sigma_max**inv_rho + ramp * (sigma_min**inv_rho - sigma_max**inv_rho)) ** rho
    return append_zero(sigmas)


def log_linear(n: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """``n`` sigmas evenly spaced in log from sigma_max to sigma_min, then 0."""
    _check_range(n, sigma_min, sigma_max)
    return append_zero(torch.logspace(math.log10(sigma_max), math.log10(sigma_min), n, dtype=torch.float64))


def _check_range(n: int, sigma_min: float, sigma_max: float) -> None:
    if n < 1:
        raise ValueError(f"n: expected at least 1 step, got {n}")
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"sigma_min, sigma_max: expected 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")


def abar_from_sigma(sigma: torch.Tensor | float) -> torch.Tensor:
    """DDPM's cumulative alpha for a VE sigma: ``abar = 1 / (1 + sigma^2)``."""
    sigma = torch.as_tensor(sigma, dtype=torch.float64)
    return 1.0 / (1.0 + sigma**2)


def sigma_from_abar(abar: torch.Tensor) -> torch.Tensor:
    return ((1.0 - abar) / abar).sqrt()


def linear_betas(n: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """DDPM's linear beta schedule (Ho et al. 2020), as in guided-diffusion for 1000 steps."""
    scale = 1000 / n
    return torch.linspace(scale * beta_start, scale * beta_end, n, dtype=torch.float64)


def cosine_betas(n: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Improved-DDPM cosine schedule (Nichol & Dhariwal 2021, eq. 17)."""
    t = torch.arange(n + 1, dtype=torch.float64) / n
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    return (1 - f[1:] / f[:-1]).clamp(max=max_beta)


@dataclass(frozen=True)
class DiscreteVP:
    """A DDPM network trained on ``len(betas)`` discrete timesteps.

    The network sees ``x_t = x / sqrt(1 + sigma^2)`` and a (possibly fractional) timestep found by
    interpolating log-sigma over the table of its training sigmas.
    """

    betas: torch.Tensor

    @classmethod
    def linear(cls, n: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> "DiscreteVP":
        return cls(linear_betas(n, beta_start, beta_end))

    @classmethod
    def cosine(cls, n: int = 1000) -> "DiscreteVP":
        return cls(cosine_betas(n))

    @cached_property  # read on every denoiser call: computed once per schedule
    def sigma_table(self) -> torch.Tensor:
        return sigma_from_abar(torch.cumprod(1.0 - self.betas.double(), 0))

    @property
    def sigma_min(self) -> float:
        return float(self.sigma_table[0])

    @property
    def sigma_max(self) -> float:
        return float(self.sigma_table[-1])

    def c_in(self, sigma: torch.Tensor) -> torch.Tensor:
        return 1.0 / (1.0 + sigma**2).sqrt()

    def c_noise(self, sigma: torch.Tensor) -> torch.Tensor:
        """Fractional timestep t with sigma_table(t) = sigma, interpolated linearly in log-sigma."""
        log_table = self.sigma_table.to(sigma.device).log()
        log_sigma = sigma.double().clamp(self.sigma_min, self.sigma_max).log()
        hi = torch.searchsorted(log_table, log_sigma).clamp(1, len(log_table) - 1)
        lo = hi - 1
        w = (log_sigma - log_table[lo]) / (log_table[hi] - log_table[lo])
        return (lo + w).to(sigma.dtype)

    def timesteps(self, steps: int, grid: str = "linspace") -> torch.Tensor:
        """The ``steps`` training timesteps a sampler visits, descending (int64).

        * ``"linspace"``: ``linspace(n - 1, 0, steps).round()`` (ours for every solver by default);
        * ``"respace"``: guided-diffusion's ``space_timesteps(n, [steps])`` (``gaussian_diffusion.py``),
          the official DPS grid: ``round(k * (n - 1) / (steps - 1))`` with the stride *accumulated* in
          float64, which rounds differently from ``"linspace"`` for some ``steps`` (e.g. 15, 21, 23;
          288 of 1..1000), and ``{0}`` for one step;
        * ``"quad"``: DiffPIR's ``skip_type='quad'`` (``main_ddpir_*.py``): ``seq = int(sqrt(linspace(0,
          n^2, steps)))`` with its last entry less one, visited as timesteps ``n - 1 - seq`` (999 to 0);
        * ``"stride"``: ``range(0, n, n // steps)`` reversed, DDIM's uniform skip as the official
          DDRM (``runners/diffusion.py``, ``skip = num_timesteps // timesteps``) and RED-Diff / PiGDM
          (``utils/functions.py``, ``get_timesteps``) build it: it starts at ``n - n // steps``, not
          ``n - 1``, and has ``len(range(0, n, n // steps))`` points (``steps`` when it divides ``n``).
        """
        if steps < 1:
            raise ValueError(f"steps: expected at least 1, got {steps}")
        n = len(self.betas)
        if grid == "linspace":
            return torch.linspace(n - 1, 0, steps).round().long()
        if grid == "respace":
            stride, at, taken = ((n - 1) / (steps - 1) if steps > 1 else 1), 0.0, []
            for _ in range(steps):
                taken.append(round(at))
                at += stride
            return torch.tensor(sorted(set(taken), reverse=True), dtype=torch.long)
        if grid == "quad":
            ramp = torch.linspace(0, n**2, steps, dtype=torch.float64).sqrt().floor().long()
            ramp[-1] -= 1
            return (n - 1) - ramp
        if grid == "stride":
            if steps > n:
                raise ValueError(f"steps: the stride grid has at most {n} points, got {steps}")
            return torch.arange(0, n, n // steps).flip(0)
        raise ValueError(f"grid: expected 'linspace', 'respace', 'quad' or 'stride', got {grid!r}")

    def sigmas(self, steps: int, grid: str = "linspace") -> torch.Tensor:
        """The training sigmas at :meth:`timesteps` (default: evenly spaced, DDIM's uniform skip), then 0."""
        return append_zero(self.sigma_table[self.timesteps(steps, grid)])

    def config(self) -> dict:
        return {"kind": "discrete_vp", "betas": self.betas.tolist()}


@dataclass(frozen=True)
class ContinuousVP:
    """Score-SDE's VP SDE (Song et al. 2021, eq. 33): ``abar(t) = exp(-beta_d t^2 / 2 - beta_min t)``."""

    beta_min: float = 0.1
    beta_d: float = 19.9
    eps: float = 1e-5

    def sigma_at(self, t: torch.Tensor) -> torch.Tensor:
        return torch.expm1(0.5 * self.beta_d * t**2 + self.beta_min * t).sqrt()

    @property
    def sigma_min(self) -> float:
        return float(self.sigma_at(torch.tensor(self.eps, dtype=torch.float64)))

    @property
    def sigma_max(self) -> float:
        return float(self.sigma_at(torch.tensor(1.0, dtype=torch.float64)))

    def c_in(self, sigma: torch.Tensor) -> torch.Tensor:
        return 1.0 / (1.0 + sigma**2).sqrt()

    def c_noise(self, sigma: torch.Tensor) -> torch.Tensor:
        """Invert sigma(t): solve beta_d/2 t^2 + beta_min t - log(1 + sigma^2) = 0 for t >= 0."""
        c = torch.log1p(sigma.double() ** 2)
        t = (-self.beta_min + (self.beta_min**2 + 2 * self.beta_d * c).sqrt()) / self.beta_d
        return t.to(sigma.dtype)

    def sigmas(self, steps: int) -> torch.Tensor:
        t = torch.linspace(1.0, self.eps, steps, dtype=torch.float64)
        return append_zero(self.sigma_at(t))

    def config(self) -> dict:
        return {"kind": "continuous_vp", "beta_min": self.beta_min, "beta_d": self.beta_d, "eps": self.eps}


@dataclass(frozen=True)
class VE:
    """Score-SDE's VE SDE: the network is told sigma itself and sees the unscaled ``x``."""

    sigma_min: float = 0.01
    sigma_max: float = 50.0

    def c_in(self, sigma: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(sigma)

    def c_noise(self, sigma: torch.Tensor) -> torch.Tensor:
        return sigma

    def sigmas(self, steps: int) -> torch.Tensor:
        return log_linear(steps, self.sigma_min, self.sigma_max)

    def config(self) -> dict:
        return {"kind": "ve", "sigma_min": self.sigma_min, "sigma_max": self.sigma_max}


@dataclass(frozen=True)
class EDM:
    """EDM preconditioning (Karras et al. 2022, Table 1): ``c_in = 1/sqrt(sigma^2 + sigma_data^2)``,
    ``c_noise = log(sigma) / 4``, sampled with the rho=7 schedule."""

    sigma_min: float = 0.002
    sigma_max: float = 80.0
    sigma_data: float = 0.5
    rho: float = 7.0

    def c_in(self, sigma: torch.Tensor) -> torch.Tensor:
        return 1.0 / (sigma**2 + self.sigma_data**2).sqrt()

    def c_noise(self, sigma: torch.Tensor) -> torch.Tensor:
        return sigma.log() / 4

    def c_skip(self, sigma: torch.Tensor) -> torch.Tensor:
        return self.sigma_data**2 / (sigma**2 + self.sigma_data**2)

    def c_out(self, sigma: torch.Tensor) -> torch.Tensor:
        return sigma * self.sigma_data / (sigma**2 + self.sigma_data**2).sqrt()

    def sigmas(self, steps: int) -> torch.Tensor:
        return karras(steps, self.sigma_min, self.sigma_max, self.rho)

    def config(self) -> dict:
        return {"kind": "edm", "sigma_min": self.sigma_min, "sigma_max": self.sigma_max,
                "sigma_data": self.sigma_data, "rho": self.rho}


def from_config(config: dict) -> DiscreteVP | ContinuousVP | VE | EDM:
    """Rebuild a conditioning from the dict its ``config()`` wrote (as stored in a prior's JSON card)."""
    config = dict(config)
    kind = config.pop("kind", None)
    if kind == "discrete_vp":
        if "betas" in config:
            return DiscreteVP(torch.tensor(config["betas"], dtype=torch.float64))
        maker = {"linear": DiscreteVP.linear, "cosine": DiscreteVP.cosine}[config.get("beta_schedule", "linear")]
        return maker(config.get("n", 1000))
    classes = {"continuous_vp": ContinuousVP, "ve": VE, "edm": EDM}
    if kind not in classes:
        raise ValueError(f"schedule config: unknown kind {kind!r}; expected one of discrete_vp, {', '.join(classes)}")
    return classes[kind](**config)
