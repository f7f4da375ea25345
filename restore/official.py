"""Official hyper-parameters per solver and task, as data, each value naming its source.

``official_hyper(solver, task)`` gives the keyword arguments that make ``restore.<solver>`` run as the
official code does for that task: the official values (step sizes, weights, step counts) plus
``official=True`` where the solver has an official mode (the official timestep grid, start state,
variance and step-size decay; see each solver's docstring). ``official_sources(solver, task)`` says,
for each key, where the value was read: ``owner/repo@commit:file:key``.

Units: every value is quoted as the official code states it (step sizes on the network's own data
range, noise on [-1, 1] images where the code says so); each solver converts to image units with the
prior's data range. Measurement noise is not a solver setting: the suites state it in both units.

Tasks (canonical names): ``super_resolution`` (x4), ``gaussian_blur``, ``motion_blur``,
``inpainting_box``, ``inpainting_random``, ``phase_retrieval``, ``nonlinear_blur``, ``hdr``; the aliases
``inpainting`` (= random), ``sr`` / ``sr4`` / ``downsampling`` and ``deblur`` / ``blur`` (= Gaussian)
are accepted.

The grid, start and learned-variance helpers of the official modes live here too, so each solver file
keeps one short ``if official`` branch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from ._common import network_scale

__all__ = ["Source", "OFFICIAL", "TASKS", "official_hyper", "official_sources", "canonical_task",
           "grid_sigmas", "network_zero", "official_start", "SCHEDULES", "describe_schedule"]

#: The official repositories and the commits the values were read at.
REPOS = {
    "dps": ("DPS2022/diffusion-posterior-sampling", "effbde7325b22ce8dc3e2c06c160c021e743a12d"),
    "red_diff": ("NVlabs/RED-diff", "66482f23e242bb31166c3662002d0a6f9f065030"),
    "pigdm": ("NVlabs/RED-diff", "66482f23e242bb31166c3662002d0a6f9f065030"),
    "ddrm": ("bahjat-kawar/ddrm", "32b6b3ccfda532ba01c9cc5b6e7456c3a06a6ca2"),
    "daps": ("zhangbingliang2019/DAPS", "098df6b7643c23f0de21064124f383c3945348a6"),
    "diffpir": ("yuanzhi-zhu/DiffPIR", "111d26e8cf11965c1777a8a664b08dfa3ef78f1e"),
    "dpir": ("cszn/DPIR", "15bca3fcc1f3cc51a1f99ccf027691e278c19354"),
}

TASKS = ("super_resolution", "gaussian_blur", "motion_blur", "inpainting_box", "inpainting_random",
         "phase_retrieval", "nonlinear_blur", "hdr")

ALIASES = {"inpainting": "inpainting_random", "sr": "super_resolution", "sr4": "super_resolution",
           "downsampling": "super_resolution", "down_sampling": "super_resolution", "deblur": "gaussian_blur",
           "blur": "gaussian_blur", "gaussian_deblur": "gaussian_blur", "motion_deblur": "motion_blur",
           "box_inpainting": "inpainting_box", "random_inpainting": "inpainting_random"}


@dataclass(frozen=True)
class Source:
    """One official value: ``value`` read at ``file`` / ``key`` of the solver's official repository."""

    value: Any
    file: str
    key: str

    def cite(self, solver: str) -> str:
        repo, commit = REPOS[solver]
        return f"{repo}@{commit[:7]}:{self.file}:{self.key}"


#: ``official=True``: the solver's official mode (grid, start, variance, decay), described in its docstring.
_MODE = Source(True, "restore/official.py", "the official algorithm's details (see the solver's docstring)")


def _dps() -> dict[str, dict[str, Source]]:
    def task(config: str, zeta: float) -> dict[str, Source]:
        return {"zeta": Source(zeta, f"configs/{config}", "conditioning.params.scale"),
                "steps": Source(1000, "configs/diffusion_config.yaml", "timestep_respacing"),
                "clip": Source((0.0, 1.0), "configs/diffusion_config.yaml", "clip_denoised (True: [-1, 1], i.e. [0, 1] here)"),
                "official": _MODE}
    return {"super_resolution": task("super_resolution_config.yaml", 0.3),
            "gaussian_blur": task("gaussian_deblur_config.yaml", 0.3),
            "motion_blur": task("motion_deblur_config.yaml", 0.3),
            "inpainting_box": task("inpainting_config.yaml", 0.5),  # the same file, mask_type box commented
            "inpainting_random": task("inpainting_config.yaml", 0.5),
            "phase_retrieval": task("phase_retrieval_config.yaml", 1.0),
            "nonlinear_blur": task("nonlinear_deblur_config.yaml", 0.3)}


def _red_diff() -> dict[str, dict[str, Source]]:
    base = {"lam": Source(0.25, "_configs/algo/reddiff.yaml", "grad_term_weight"),
            "lr": Source(0.1, "_configs/algo/reddiff.yaml", "lr"),
            "weighting": Source("snr", "_configs/algo/reddiff.yaml", "denoise_term_weight ('linear')"),
            "obs_weight": Source(1.0, "_configs/algo/reddiff.yaml", "obs_weight"),
            "steps": Source(1000, "sample_batch.sh", "num_steps"),
            "official": _MODE}
    # The README's sampling example (deg=in2_20ff, freeform inpainting) sets lr=0.5, lambda=0.25; its
    # Inpainting2 operator keeps zeros in the holes, so the data term's mean runs over all pixels (the
    # inp_* masks' Inpainting returns the kept pixels only: a mean over those, our default).
    inpaint = {**base, "lr": Source(0.5, "README.md", "sampling script example: lr=0.5 (deg=in2_20ff)"),
               "average": Source("all", "utils/degredations.py", "Inpainting2.H (in2_*: zeros kept in the holes)")}
    return {"super_resolution": base, "gaussian_blur": base, "motion_blur": base, "nonlinear_blur": base,
            "inpainting_box": inpaint, "inpainting_random": inpaint,
            "phase_retrieval": {**base, "lr": Source(0.5, "sample_test.sh", "reddiff phase_retrieval line: algo.lr=0.5")},
            "hdr": {**base, "lr": Source(0.5, "sample_test.sh", "reddiff hdr line: algo.lr=0.5")}}


def _pigdm() -> dict[str, dict[str, Source]]:
    base = {"guidance": Source(1.0, "_configs/algo/pgdm.yaml", "grad_term_weight"),
            "ddim_eta": Source(0.0, "_configs/algo/pgdm.yaml", "eta"),
            "steps": Source(100, "sample_test.sh", "pgdm lines: exp.num_steps=100"),
            "official": _MODE}
    return {t: base for t in ("super_resolution", "gaussian_blur", "motion_blur", "inpainting_box",
                              "inpainting_random")}


def _ddrm() -> dict[str, dict[str, Source]]:
    base = {"eta": Source(0.85, "main.py", "--eta default (README: --eta 0.85)"),
            "eta_b": Source(1.0, "main.py", "--etaB default (README: --etaB 1)"),
            "steps": Source(20, "README.md", "--timesteps 20"),
            "official": _MODE}
    return {t: base for t in ("super_resolution", "gaussian_blur", "motion_blur", "inpainting_box",
                              "inpainting_random")}


def _daps() -> dict[str, dict[str, Source]]:
    sampler = "configs/sampler/edm_daps.yaml"
    common = {"steps": Source(200, sampler, "annealing_scheduler_config.num_steps"),
              "sigma_max": Source(100.0, sampler, "annealing_scheduler_config.sigma_max"),
              "sigma_min": Source(0.1, sampler, "annealing_scheduler_config.sigma_min"),
              "ode_steps": Source(5, sampler, "diffusion_scheduler_config.num_steps"),
              "ode_sigma_min": Source(0.01, sampler, "diffusion_scheduler_config.sigma_min"),
              "official": _MODE}

    def task(config: str, lr: float, langevin_steps: int = 100) -> dict[str, Source]:
        key = "pixel.mcmc_sampler_config"
        f = f"configs/task/{config}"
        return {**common, "lr": Source(lr, f, f"{key}.lr"), "tau": Source(0.01, f, f"{key}.tau"),
                "lr_min_ratio": Source(0.01, f, f"{key}.lr_min_ratio"),
                "langevin_steps": Source(langevin_steps, f, f"{key}.num_steps")}
    return {"super_resolution": task("down_sampling.yaml", 1e-4),
            "gaussian_blur": task("gaussian_blur.yaml", 1e-4),
            "motion_blur": task("motion_blur.yaml", 5e-5),
            "inpainting_box": task("inpainting.yaml", 5e-5),
            "inpainting_random": task("inpainting_rand.yaml", 1e-4),
            "phase_retrieval": task("phase_retrieval.yaml", 5e-5),
            "nonlinear_blur": task("nonlinear_blur.yaml", 1e-5, 200),
            "hdr": task("hdr.yaml", 2e-5)}


def _diffpir() -> dict[str, dict[str, Source]]:
    # main_ddpir.py (the script configs/*.yaml drive) multiplies the configured values before it runs:
    # deblur lambda_ * 7 and zeta * 3, SR lambda_ * i for i = 2..12 (a sweep) and zeta as is, inpainting
    # both as is.
    def task(config: str, lam: float, zeta: float, steps: int, lam_key: str = "lambda_",
             zeta_key: str = "zeta") -> dict[str, Source]:
        f = f"configs/{config}"
        return {"lam": Source(lam, f, lam_key), "zeta": Source(zeta, f, zeta_key),
                "steps": Source(steps, f, "iter_num"), "official": _MODE}
    deblur = task("deblur.yaml", 7.0, 0.3, 100,
                  "lambda_ = 1, run as lambda_ * 7 (main_ddpir.py: range(7, 8))",
                  "zeta = 0.1, run as zeta * 3 (main_ddpir.py: range(3, 4))")
    sr = task("sisr.yaml", 1.0, 0.25, 100,
              "lambda_ = 1; main_ddpir.py sweeps lambda_ * i, i = 2..12, and names no single value")
    return {"super_resolution": sr, "gaussian_blur": deblur,
            "motion_blur": deblur, "inpainting_box": task("inpaint.yaml", 1.0, 1.0, 20),
            "inpainting_random": task("inpaint.yaml", 1.0, 1.0, 20)}


def _dpir() -> dict[str, dict[str, Source]]:
    lam = Source(0.23, "utils/utils_pnp.py", "get_rho_sigma: rhos = 0.23 * sigma^2 / x^2")
    first = Source(49 / 255, "main_dpir_deblur.py", "modelSigma1 = 49 (on 0-255)")
    deblur = {"lam": lam, "sigma_first": first, "steps": Source(8, "main_dpir_deblur.py", "iter_num")}
    sr = {"lam": lam, "sigma_first": Source(49 / 255, "main_dpir_sisr.py", "modelSigma1 = 49 (on 0-255)"),
          "steps": Source(24, "main_dpir_sisr.py", "iter_num"),
          "sigma_last": Source(4 / 255, "main_dpir_sisr.py", "modelSigma2 = max(sf, noise_level_model * 255) (sf = 4)")}
    return {"gaussian_blur": deblur, "motion_blur": deblur, "super_resolution": sr}


#: ``OFFICIAL[solver][task][hyper] = Source(value, file, key)``.
OFFICIAL: dict[str, dict[str, dict[str, Source]]] = {
    "dps": _dps(), "red_diff": _red_diff(), "pigdm": _pigdm(), "ddrm": _ddrm(), "daps": _daps(),
    "diffpir": _diffpir(), "dpir": _dpir(),
}


def canonical_task(task: str) -> str:
    """The canonical task name for ``task`` (see the module docstring); ValueError for unknown ones."""
    name = str(task).lower().replace("-", "_")
    name = ALIASES.get(name, name)
    if name not in TASKS:
        raise ValueError(f"task: expected one of {', '.join(TASKS)} (or an alias: {', '.join(sorted(ALIASES))}), "
                         f"got {task!r}")
    return name


def _entry(solver: str, task: str) -> dict[str, Source]:
    if solver not in OFFICIAL:
        raise ValueError(f"solver: no official settings for {solver!r}; known: {', '.join(sorted(OFFICIAL))}")
    name = canonical_task(task)
    table = OFFICIAL[solver]
    if name not in table:
        raise ValueError(f"task: the official {solver} code has no setting for {name!r}; it covers "
                         f"{', '.join(table)}")
    return table[name]


def official_hyper(solver: str, task: str) -> dict[str, Any]:
    """The keyword arguments that run ``restore.<solver>`` with the official settings for ``task``.

    >>> official_hyper("dps", "inpainting")["zeta"]
    0.5
    """
    return {k: s.value for k, s in _entry(solver, task).items()}


def official_sources(solver: str, task: str) -> dict[str, str]:
    """Where each value of :func:`official_hyper` comes from: ``owner/repo@commit:file:key``."""
    return {k: (s.cite(solver) if s is not _MODE else f"{s.file}: {s.key}") for k, s in _entry(solver, task).items()}


# ---------------------------------------------------------------------------------------------------
# Helpers of the official modes
#: Each solver's noise schedule in each mode: ``(grid, variance)``. ``grid`` names a
#: :meth:`priors.schedules.DiscreteVP.timesteps` grid on a DDPM network's training timesteps, or says
#: what else the solver visits; ``variance`` says where the noise of each step comes from.
SCHEDULES: dict[str, dict[bool, tuple[str, str]]] = {
    "dps": {False: ("linspace", "DDPM posterior variance (ancestral step)"),
            True: ("respace", "the network's learned range (learned_range) where it has one, else the DDPM "
                              "posterior variance; x0_hat clipped")},
    "red_diff": {False: ("linspace", "none: Adam on mu, x_t = mu + sigma_t eps with fresh eps each step"),
                 True: ("stride", "none: Adam on mu, fresh eps each step; returns mu before the last step")},
    "ddrm": {False: ("linspace", "spectral: eta / eta_b of the fresh noise per singular value"),
             True: ("stride", "spectral: eta / eta_b per singular value; start in network units")},
    "ddnm": {False: ("linspace", "DDIM eta; DDNM+ scales range-space noise by Lambda_noise"),
             True: ("linspace", "DDIM eta; DDNM+ scales range-space noise by Lambda_noise")},
    "pigdm": {False: ("linspace", "DDIM ddim_eta, r_t^2 = v sigma^2 / (v + sigma^2) in the guidance"),
              True: ("stride", "DDIM ddim_eta, noiseless pseudo-inverse guidance (awd)")},
    "diffpir": {False: ("linspace", "zeta mix of the network's eps and fresh noise (eta 0)"),
                True: ("quad", "zeta mix of eps and fresh noise (eta 0); x0_hat clipped; start u + sigma_T n")},
    "daps": {False: ("EDM rho=7 annealing, N points ending at sigma_min",
                     "Langevin on x0 with step decaying as i / N; x_{t-1} = x0 + sigma_{t-1} n"),
             True: ("EDM rho=7 annealing, N + 1 points without the last",
                    "Langevin on x0 with step decaying as i / (N + 1); x_{t-1} = x0 + sigma_{t-1} n")},
    "dpir": {False: ("log-uniform sigma from 49/255 to max(sigma_y, 0.255/255)", "none (a point estimate)"),
             True: ("log-uniform sigma from 49/255 to max(sigma_y, 0.255/255)", "none (a point estimate)")},
}


def describe_schedule(solver: str, steps: int | None, official: bool = False,
                      train_steps: int = 1000) -> dict[str, Any] | None:
    """The timestep grid and variance ``solver`` uses (``restore-bench explain``); for a DDPM grid also
    its first and last timesteps on a ``train_steps``-step network. None for a solver not in
    :data:`SCHEDULES` (the baselines, a user's solver)."""
    modes = SCHEDULES.get(solver)
    if modes is None:
        return None
    grid, variance = modes[bool(official)]
    out: dict[str, Any] = {"grid": grid, "variance": variance}
    if grid == "linspace":  # the default visits prior.sigmas(steps), which is the prior's own grid
        out["grid"] = "linspace on a DDPM prior (prior.sigmas; an EDM prior: its rho = 7 grid)"
    if steps and grid in ("linspace", "respace", "quad", "stride"):
        from priors.schedules import DiscreteVP
        t = DiscreteVP.linear(train_steps).timesteps(int(steps), grid).tolist()
        out["timesteps"] = t if len(t) <= 8 else t[:4] + ["..."] + t[-3:]
        out["visited"] = len(t)
    return out


# ---------------------------------------------------------------------------------------------------

def network_zero(prior: Any) -> float:
    """The image value the network sees as 0: ``-lo / (hi - lo)`` (0.5 for a [-1, 1] network, 0 for
    a [0, 1] one and for priors without a network)."""
    lo, hi = getattr(prior, "data_range", (0.0, 1.0))
    return float(-lo / (hi - lo))


def grid_sigmas(prior: Any, steps: int, grid: str) -> Tensor:
    """``steps`` noise levels (image units, float64, then 0) on the official timestep ``grid`` of a DDPM
    network (:meth:`priors.schedules.DiscreteVP.timesteps`: ``"stride"``, ``"respace"``, ``"linspace"``).

    :raises ValueError: the prior has no discrete DDPM schedule (the official grids are defined on its
        training timesteps).
    """
    schedule = getattr(prior, "schedule", None)
    if not hasattr(schedule, "timesteps"):
        raise ValueError(f"official=True: the official {grid!r} timestep grid needs a network prior on a "
                         f"discrete DDPM schedule (priors.wrap(..., schedule=DiscreteVP)), got "
                         f"{type(prior).__name__}")
    return schedule.sigmas(steps, grid) / network_scale(prior)


def official_start(prior: Any, sigma: float, n: Tensor) -> Tensor:
    """The official ``x_T ~ N(0, I)`` of a VP network, seen in our VE image units.

    The official state ``x_T = n`` on the network's VP scale is ``x_net = n / sqrt(abar_T) =
    sqrt(1 + (w sigma)^2) n`` in its VE units (``w`` the data range's width), i.e.
    ``(sqrt(1 + (w sigma)^2) n - lo) / w`` in ours; our default start is ``sigma n``. The two differ by
    the network's zero (0.5 for a [-1, 1] network) and a factor ``1 + O(1 / sigma^2)``.
    """
    w = network_scale(prior)
    return math.sqrt(1.0 + (w * sigma) ** 2) / w * n + network_zero(prior)


def learned_range_std(v: Tensor, sigma: float, sigma_next: float, scale: float) -> Tensor:
    """guided-diffusion's ``learned_range`` standard deviation of the ancestral step, in image units.

    On the visited grid, ``beta = 1 - abar / abar_next`` and ``beta~ = beta (1 - abar_next) / (1 - abar)``
    (respaced as ``SpacedDiffusion`` does), ``log var = f log beta + (1 - f) log beta~`` with
    ``f = (v + 1) / 2``; the VP noise ``sqrt(var)`` becomes ``sqrt(var / abar_next) / scale`` in our VE
    image units. ``abar`` is the network's own, ``1 / (1 + (scale sigma)^2)``.
    """
    abar = 1.0 / (1.0 + (scale * sigma) ** 2)
    abar_next = 1.0 / (1.0 + (scale * sigma_next) ** 2)
    beta = 1.0 - abar / abar_next
    beta_tilde = beta * (1.0 - abar_next) / (1.0 - abar)
    frac = (v + 1) / 2
    log_var = frac * math.log(beta) + (1 - frac) * math.log(beta_tilde)
    return (0.5 * log_var).exp() / (math.sqrt(abar_next) * scale)
