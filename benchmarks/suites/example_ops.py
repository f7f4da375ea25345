"""A user's own operator, solver, dataset and metric for ``example_custom.yaml``, one function each."""
import torch

import operators as ops


def colorization(shape, generator=None, *, weights=(0.299, 0.587, 0.114)):
    """Operator factory: RGB -> gray, ``y = sum_c w_c x_c`` (ITU-R BT.601 luma)."""
    w = torch.tensor(weights).reshape(1, 3, 1, 1)
    return ops.FunctionOperator(lambda x: (x * w.to(x)).sum(1, keepdim=True),   # A x
                                lambda y: y * w.to(y.real),                      # A^T y
                                in_shape=shape, out_shape=(1, *shape[1:]), name="Colorization")


def pnp_landweber(prior, op, y, noise, *, steps, step=1.5, sigma_max=0.3, sigma_min=0.01,
                  generator=None, callback=None):
    """Solver: plug-and-play, a gradient step on ||A x - y||^2 then the prior's denoiser, at
    sigmas falling geometrically from ``sigma_max`` to ``sigma_min``."""
    x = op.H(y)
    for i in range(steps):
        sigma = sigma_max * (sigma_min / sigma_max) ** (i / max(steps - 1, 1))
        x = prior.denoise(x - step * op.H(op(x) - y), sigma)
        if callback is not None:
            callback(dict(i=i, x=x, sigma=sigma, x0_hat=x))
    return x


def colour_fields(n=2, size=32, seed=0):
    """Dataset: ``n`` smooth random colour images (bilinear upsampling of 4x4 noise)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 4, 4, generator=g)
    images = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear",
                                             align_corners=True)
    return [(f"field{i}", images[i]) for i in range(n)]


def chroma_error(x_hat, x, op, y):
    """Metric: RMS error of the colour a gray image lacks (each pixel's deviation from its mean
    over channels), per image; what colorization has to invent."""
    def chroma(t):
        return t - t.mean(1, keepdim=True)
    return (chroma(x_hat) - chroma(x)).pow(2).flatten(1).mean(1).sqrt()
