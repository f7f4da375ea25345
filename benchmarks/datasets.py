r"""Benchmark datasets: real file formats and the bundled test sets, as lazy lists of samples.

Every loader returns a :class:`Dataset`, a read-only sequence of :class:`Sample`. A sample unpacks as
``name, image = sample`` (image ``(C, H, W)`` float32) and carries format extras: the k-space of an MRI
slice, the attenuation scale of a CT slice. Images load when indexed, so a 1k-image folder costs nothing
until it is read. Order is fixed (sorted paths), so "the first 1k FFHQ images" is ``image_folder(path,
n=1000)``.

===================  ==================================================================================
``image_folder``     PNG/JPEG/BMP/TIFF/WebP found recursively (FFHQ, ImageNet val, CelebA-HQ, DIV2K,
                     Set14 layouts), sorted by relative path; centre crop and resize (guided-diffusion's
                     ``center_crop_arr``); values in [0, 1]; ``split=`` picks a protocol's exact images
                     (:mod:`benchmarks.splits`: DPS's first 1k FFHQ, DiffPIR's and RED-diff's lists, ...).
``fastmri``          fastMRI HDF5 (single- and multi-coil ``kspace``); the target is the magnitude (RSS
                     for multi-coil) of the centre-cropped 320 x 320 image, exactly how fastMRI builds
                     ``reconstruction_esc`` / ``reconstruction_rss``.
``dicom_ct``         DICOM CT slices (pydicom): HU = stored * RescaleSlope + RescaleIntercept, linear
                     attenuation :math:`\mu = \mu_w (1 + HU / 1000)`, then a stated HU window to [0, 1].
``array_file``       NPY / NPZ arrays of images.
``phantoms``         the procedural phantoms of :mod:`priors.phantoms`, one seed per image.
``bundled``          the test sets shipped in ``priors/testsets``.
``gmm_points``       vectors drawn from the exact-posterior suite's Gaussian mixtures.
===================  ==================================================================================

``DATASETS`` maps the names used in suite files to these functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

# fastMRI's centred orthonormal FFT pair, ``fftshift(fft2(ifftshift(x), norm="ortho"))``
from operators.mri import fft2c, ifft2c

__all__ = [
    "Sample",
    "Dataset",
    "image_folder",
    "fastmri",
    "dicom_ct",
    "array_file",
    "phantoms",
    "bundled",
    "gmm_points",
    "MU_WATER",
    "IMAGE_EXTENSIONS",
    "DATASETS",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
# Linear attenuation of water at about 70 keV, per mm (Hubbell & Seltzer, NIST XCOM).
MU_WATER = 0.0192


@dataclass(frozen=True)
class Sample:
    """One ground-truth item: ``name``, ``image`` (C, H, W) float32, and format extras.

    ``kspace`` is the MRI slice's k-space (coils, H, W) complex64 on the same grid as ``image``;
    ``meta`` holds anything else a benchmark may need (scales, source file, reference images).
    Unpacks as ``name, image = sample``.
    """

    name: str
    image: Tensor
    kspace: Tensor | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def target(self) -> Tensor:
        return self.image

    def __iter__(self) -> Iterator[Any]:
        return iter((self.name, self.image))


class Dataset(Sequence[Sample]):
    """A fixed, ordered list of keys and a function that loads the sample of a key (lazily)."""

    def __init__(self, name: str, keys: Sequence[Any], load: Callable[[Any], Sample]):
        self.name = name
        self._keys = list(keys)
        self._load = load

    def __len__(self) -> int:
        return len(self._keys)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return Dataset(self.name, self._keys[index], self._load)
        return self._load(self._keys[index])

    def __repr__(self) -> str:
        return f"Dataset({self.name!r}, {len(self)} samples)"

    def batch(self, indices: Sequence[int] | None = None) -> Tensor:
        """The images of ``indices`` (all by default) stacked to (B, C, H, W); they must share a shape."""
        indices = range(len(self)) if indices is None else indices
        return torch.stack([self[i].image for i in indices])


def _first(keys: list, n: int | None, what: str) -> list:
    if n is not None:
        if n < 1:
            raise ValueError(f"n: expected a positive count or None, got {n}")
        keys = keys[:n]
    if not keys:
        raise FileNotFoundError(f"{what}: no samples found")
    return keys


def _existing(path: str | Path, what: str) -> Path:
    """``path`` as a Path; a missing path raises FileNotFoundError (the runner reports it as missing data)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what}: {str(path)!r} does not exist")
    return path


def _resize(image: Tensor, size: int | tuple[int, int]) -> Tensor:
    """Antialiased bicubic resize of (C, H, W) to ``size``, clamped back to the input's range."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(image.shape[-2:]) == size:
        return image
    out = F.interpolate(image[None], size=size, mode="bicubic", antialias=True, align_corners=False)[0]
    return out.clamp(float(image.min()), float(image.max()))


def _center_crop(x: Tensor, size: tuple[int, int]) -> Tensor:
    """The central ``size`` window of the last two dims (fastMRI's ``center_crop``: start ``(n - s) // 2``)."""
    h, w = x.shape[-2:]
    ch, cw = min(size[0], h), min(size[1], w)
    top, left = (h - ch) // 2, (w - cw) // 2
    return x[..., top:top + ch, left:left + cw]


# ------------------------------------------------------------------------------------------------
# Image folders
# ------------------------------------------------------------------------------------------------
def _center_crop_arr(img, size: int):
    """guided-diffusion's ImageNet preprocessing: halve with a box filter while the short side is at
    least twice ``size``, bicubic-resize the short side to ``size``, then crop the centre square."""
    from PIL import Image

    while min(img.size) >= 2 * size:
        img = img.resize(tuple(s // 2 for s in img.size), resample=Image.BOX)
    scale = size / min(img.size)
    img = img.resize(tuple(round(s * scale) for s in img.size), resample=Image.BICUBIC)
    arr = np.asarray(img)
    top, left = (arr.shape[0] - size) // 2, (arr.shape[1] - size) // 2
    return arr[top:top + size, left:left + size]


def image_folder(path: str | Path, size: int | None = 256, n: int | None = None, channels: int = 3,
                 split: str | None = None) -> Dataset:
    """Images found recursively under ``path``, sorted by relative path, first ``n``.

    ``size``: centre crop to a square and resize to ``size`` x ``size`` (guided-diffusion's
    ``center_crop_arr``, the DPS/ImageNet protocol); ``None`` keeps the native size (DIV2K, Set14).
    ``channels``: 3 (grayscale files are repeated, as PIL's RGB conversion does) or 1 (luma).
    ``split``: a protocol's exact images (:data:`benchmarks.splits.SPLITS`), in its order, found by file
    stem in any layout; the first ``n`` of them are used, and a missing one raises FileNotFoundError
    naming it. Sample names are relative paths without extension, e.g. ``"00000/00042"``.
    """
    from PIL import Image

    root = _existing(path, "image_folder")
    if not root.is_dir():
        raise ValueError(f"path: expected a folder of images, got {str(root)!r}")
    if channels not in (1, 3):
        raise ValueError(f"channels: expected 1 or 3, got {channels}")
    files = sorted((p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()),
                   key=lambda p: p.relative_to(root).as_posix())
    if split is None:
        files = _first(files, n, f"image_folder({str(root)!r})")
    else:
        files = _split_files(files, root, split, n)

    def load(file: Path) -> Sample:
        with Image.open(file) as img:
            img = img.convert("RGB" if channels == 3 else "L")
            arr = np.asarray(img) if size is None else _center_crop_arr(img, size)
        image = torch.from_numpy(np.array(arr, dtype=np.float32) / 255.0)
        image = image[None] if image.ndim == 2 else image.permute(2, 0, 1)
        return Sample(file.relative_to(root).with_suffix("").as_posix(), image.contiguous(), meta={"file": str(file)})

    return Dataset(f"image_folder:{root.name}", files, load)


def _split_files(files: list[Path], root: Path, name: str, n: int | None) -> list[Path]:
    """The files of split ``name`` among ``files`` (sorted by relative path), its first ``n``."""
    from .splits import get_split

    split = get_split(name)
    if n is not None and not 1 <= n <= split.count:
        raise ValueError(f"n: split {name!r} has {split.count} images, got n={n}")
    want = split.count if n is None else n
    where = f"split {name!r} ({split.count} images of {split.layout}; source: {split.source})"
    if split.names is None:  # the first images of the protocol's archive, as its loader sorts them
        found = [f for f in files if f.suffix.lower() in split.extensions]
        if len(found) < want:
            raise FileNotFoundError(f"{root} holds {len(found)} {'/'.join(split.extensions)} images; "
                                    f"{where} uses the first {want}")
        return found[:want]
    by_stem: dict[str, list[Path]] = {}
    for f in files:
        by_stem.setdefault(f.stem, []).append(f)
    names = split.names[:want]
    missing = [s for s in names if s not in by_stem]
    if missing:
        shown = ", ".join(missing[:10]) + (f", ... ({len(missing)} in all)" if len(missing) > 10 else "")
        raise FileNotFoundError(f"{root} lacks {len(missing)} of the {want} images {where} uses here: "
                                f"{shown} (a file of that name, any image extension, anywhere under the folder)")
    twice = [f"{s}: {', '.join(str(p.relative_to(root)) for p in by_stem[s])}" for s in names if len(by_stem[s]) > 1]
    if twice:
        raise ValueError(f"path: {root} holds several files for one image of {where}: {'; '.join(twice[:5])}")
    return [by_stem[s][0] for s in names]


# ------------------------------------------------------------------------------------------------
# fastMRI
# ------------------------------------------------------------------------------------------------
def fastmri(path: str | Path, n: int | None = None, crop: int = 320, slices: slice | None = None,
            normalize: bool = True) -> Dataset:
    r"""Slices of fastMRI HDF5 files (a file, or a folder of ``*.h5`` read in sorted order).

    For each slice, with coil images :math:`x_c = \mathrm{ifft2c}(k_c)` cropped to ``crop`` x ``crop``
    in the image domain (the fastMRI / InverseBench protocol):

    * target ``image`` (1, crop, crop): :math:`\sqrt{\sum_c |x_c|^2}` (multi-coil RSS) or :math:`|x|`
      (single-coil), which is how fastMRI computes ``reconstruction_rss`` / ``reconstruction_esc``;
    * ``kspace`` (coils, crop, crop) complex64: :math:`\mathrm{fft2c}` of the cropped coil images, so a
      Cartesian MRI operator on the crop grid reproduces the target from it exactly; a single-coil
      slice has one coil;
    * ``meta``: file, slice index, the file's ``attrs`` (``max``, ``norm``, ``acquisition``), the full
      raw k-space shape, ``scale``, and ``reference``: the file's own ``reconstruction_rss`` /
      ``reconstruction_esc`` slice (scaled like the target) when present.

    ``normalize``: divide target and k-space by the target's maximum, so targets lie in [0, 1]
    (``meta["scale"]`` is that factor; 1 otherwise). ``slices`` picks slice indices in every volume
    (``slice(10, -10)`` skips the noise-only edge slices). Samples are named ``"<file stem>/<slice>"``.
    """
    import h5py

    root = _existing(path, "fastmri")
    files = sorted(root.glob("*.h5")) if root.is_dir() else [root]
    if not files:
        raise FileNotFoundError(f"fastmri: no .h5 files in {str(root)!r}")
    keys = []
    for file in files:
        with h5py.File(file, "r") as h5:
            if "kspace" not in h5:
                raise ValueError(f"path: {file} has no 'kspace' dataset (keys: {list(h5.keys())})")
            count = h5["kspace"].shape[0]
        keys += [(file, i) for i in range(count)[slices or slice(None)]]
    keys = _first(keys, n, f"fastmri({str(root)!r})")

    def load(key: tuple[Path, int]) -> Sample:
        file, index = key
        with h5py.File(file, "r") as h5:
            raw = torch.from_numpy(np.asarray(h5["kspace"][index])).to(torch.complex64)
            attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in h5.attrs.items()}
            ref_key = next((k for k in ("reconstruction_rss", "reconstruction_esc") if k in h5), None)
            reference = torch.from_numpy(np.asarray(h5[ref_key][index], dtype=np.float32)) if ref_key else None
        multicoil = raw.ndim == 3
        coils = raw if multicoil else raw[None]
        images = _center_crop(ifft2c(coils), (crop, crop))
        target = images.abs().pow(2).sum(0).sqrt()[None] if multicoil else images.abs()
        scale = float(target.max()) if normalize and float(target.max()) > 0 else 1.0
        meta = {"file": str(file), "slice": index, "attrs": attrs, "multicoil": multicoil,
                "raw_shape": tuple(raw.shape), "scale": scale}
        if reference is not None:
            meta["reference"] = reference[None] / scale
            meta["reference_key"] = ref_key
        return Sample(f"{file.stem}/{index:03d}", (target / scale).float(), fft2c(images) / scale, meta)

    return Dataset(f"fastmri:{root.name}", keys, load)


# ------------------------------------------------------------------------------------------------
# DICOM CT
# ------------------------------------------------------------------------------------------------
def dicom_ct(path: str | Path, size: int | None = 256, n: int | None = None,
             window: tuple[float, float] = (-1000.0, 1000.0), mu_water: float = MU_WATER) -> Dataset:
    r"""CT slices from DICOM files found recursively under ``path`` (or one file), first ``n``.

    Slices are ordered by series, then position along the patient axis (``ImagePositionPatient[2]``,
    else ``InstanceNumber``). Each stored value becomes Hounsfield units
    :math:`HU = s \cdot \mathrm{RescaleSlope} + \mathrm{RescaleIntercept}`, then linear attenuation
    :math:`\mu = \mu_w (1 + HU / 1000)` (per mm, water ``mu_water``), then the image
    :math:`(\mu - \mu_{lo}) / (\mu_{hi} - \mu_{lo})` clipped to [0, 1], where ``window`` = (lo, hi) in
    HU; the default (-1000, 1000) maps air to 0 and twice water's attenuation to 1. Because
    :math:`\mu` is affine in HU this is the HU window; ``meta["mu_range"]`` = (mu_lo, mu_hi) converts
    back: :math:`\mu = \mu_{lo} + x (\mu_{hi} - \mu_{lo})`. ``size`` resizes (antialiased bicubic,
    e.g. AAPM's 512 to 256); ``None`` keeps the native grid.
    """
    import pydicom
    import pydicom.errors

    root = _existing(path, "dicom_ct")
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    lo, hi = window
    if not hi > lo:
        raise ValueError(f"window: expected (lo, hi) in HU with hi > lo, got {window}")
    headers = []
    for file in files:
        try:
            ds = pydicom.dcmread(file, stop_before_pixels=True)
        except pydicom.errors.InvalidDicomError:
            continue  # DICOMDIR companions, notes, thumbnails
        if "PixelData" in ds or hasattr(ds, "Rows"):
            if "ImagePositionPatient" in ds:
                position = float(ds.ImagePositionPatient[2])
            else:
                position = float(ds.get("InstanceNumber", 0))
            headers.append((str(ds.get("SeriesInstanceUID", "")), position, file.as_posix(), file))
    headers.sort(key=lambda h: h[:3])
    keys = _first([h[3] for h in headers], n, f"dicom_ct({str(root)!r})")
    mu_lo, mu_hi = mu_water * (1 + lo / 1000), mu_water * (1 + hi / 1000)

    def load(file: Path) -> Sample:
        ds = pydicom.dcmread(file)
        stored = torch.from_numpy(ds.pixel_array.astype(np.float64))
        hu = stored * float(ds.get("RescaleSlope", 1.0)) + float(ds.get("RescaleIntercept", 0.0))
        mu = mu_water * (1 + hu / 1000)
        image = ((mu - mu_lo) / (mu_hi - mu_lo)).clamp(0, 1).float()[None]
        if size is not None:
            image = _resize(image, size)
        name = file.relative_to(root).with_suffix("").as_posix() if root.is_dir() else file.stem
        meta = {"file": str(file), "mu_range": (mu_lo, mu_hi), "window_hu": (lo, hi), "mu_water": mu_water,
                "pixel_spacing": tuple(float(v) for v in ds.get("PixelSpacing", ())) or None}
        return Sample(name, image, meta=meta)

    return Dataset(f"dicom_ct:{root.name}", keys, load)


# ------------------------------------------------------------------------------------------------
# Arrays, phantoms, bundled test sets
# ------------------------------------------------------------------------------------------------
def _as_images(array: np.ndarray, what: str) -> Tensor:
    """(N, C, H, W) float32 from (H, W), (N, H, W) or (N, C, H, W); (N, H, W, 3|4) is moved to channels first."""
    t = torch.from_numpy(np.asarray(array))
    if t.is_complex():
        t = t.to(torch.complex64)
    else:
        t = t.float()
    if t.ndim == 2:
        t = t[None, None]
    elif t.ndim == 3:
        t = t[:, None]
    elif t.ndim == 4 and t.shape[-1] in (3, 4) and t.shape[1] not in (1, 3):
        t = t[..., :3].permute(0, 3, 1, 2)
    if t.ndim != 4:
        raise ValueError(f"{what}: expected an array (H, W), (N, H, W) or (N, C, H, W), got shape {tuple(array.shape)}")
    return t.contiguous()


def array_file(path: str | Path, key: str | None = None, n: int | None = None, scale: float = 1.0) -> Dataset:
    """Images stored in a ``.npy`` file or under ``key`` in an ``.npz`` file (default: its ``images``
    array, else its only array), first ``n``; values multiplied by ``scale`` (e.g. ``1/255`` for
    uint8). Names come from an npz ``names`` array if present, else ``"<stem>/<index>"``."""
    file = _existing(path, "array_file")
    if not file.is_file() or file.suffix not in (".npy", ".npz"):
        raise ValueError(f"path: expected a .npy or .npz file, got {str(file)!r}")
    names = None
    if file.suffix == ".npy":
        array = np.load(file, allow_pickle=False)
    else:
        with np.load(file, allow_pickle=False) as npz:
            arrays = [k for k in npz.files if k != "names"]
            if key is None:
                key = "images" if "images" in arrays else (arrays[0] if len(arrays) == 1 else None)
            if key is None or key not in npz.files:
                raise ValueError(f"key: expected one of {arrays} for {file.name}, got {key!r}")
            array = npz[key]
            names = [str(s) for s in npz["names"]] if "names" in npz.files else None
    images = _as_images(array, f"array_file({file.name})") * scale
    names = names or [f"{file.stem}/{i:04d}" for i in range(len(images))]
    if len(names) != len(images):
        raise ValueError(f"{file.name}: {len(names)} names for {len(images)} images")
    keys = _first(list(range(len(images))), n, f"array_file({str(file)!r})")
    return Dataset(f"array_file:{file.stem}", keys, lambda i: Sample(names[i], images[i], meta={"file": str(file)}))


def phantoms(n: int = 8, size: int = 64, seed: int = 0, make: Callable[[int, int], Tensor] | None = None) -> Dataset:
    """``n`` procedural phantoms; phantom ``i`` depends only on ``seed + i`` and ``size``.

    By default the held-out phantoms of :mod:`priors.phantoms` (``phantom(TEST_SEED_OFFSET + seed +
    i, size)``), disjoint from the training seeds. ``make(seed, size) -> (C, size, size)`` replaces
    the generator.
    """
    if n < 1:
        raise ValueError(f"n: expected a positive count, got {n}")
    if make is None:
        from priors.phantoms import TEST_SEED_OFFSET, phantom

        def make(s: int, sz: int) -> Tensor:
            return phantom(TEST_SEED_OFFSET + s, sz)

    return Dataset(f"phantoms:{size}", list(range(seed, seed + n)),
                   lambda s: Sample(f"phantom_{s:04d}", make(s, size).float(), meta={"seed": s}))


def bundled(name: str, size: int = 64, n: int | None = None) -> Dataset:
    """A bundled offline test set of :mod:`priors.testsets`: ``"phantom"`` (held-out phantoms),
    ``"shepp_logan"`` or ``"natural"`` (the four held-out photographs), at ``size`` px."""
    from priors.testsets import NAMES, load_testset

    if name not in NAMES:
        raise FileNotFoundError(f"bundled: no test set {name!r}; available: {list(NAMES)}")
    items = load_testset(name, size, n)
    return Dataset(f"bundled:{name}:{size}", items, lambda item: Sample(item[0], item[1].float()))


def gmm_points(dim: int = 8, components: int = 4, seed: int = 0, n: int = 4, spread: float = 2.0,
               scale: float = 0.5) -> list[tuple[str, Tensor]]:
    """``n`` ground-truth vectors drawn from :func:`benchmarks.problems.gmm_prior` with the same
    arguments (the exact-posterior suite's "dataset")."""
    from .problems import gmm_prior

    prior = gmm_prior(dim, components, seed, spread, scale)
    x = prior.sample(n, generator=torch.Generator().manual_seed(seed + 1))
    return [(f"x{i}", x[i]) for i in range(n)]


#: the datasets suites name: to add one, write ``fn(**kw) -> sequence of (name, image)`` (or of
#: :class:`Sample`) in this file and add a line here.
DATASETS: dict[str, Callable[..., Dataset]] = {
    "image_folder": image_folder,
    "fastmri": fastmri,
    "dicom_ct": dicom_ct,
    "array_file": array_file,
    "npy": array_file,
    "npz": array_file,
    "phantoms": phantoms,
    "bundled": bundled,
    "gmm_points": gmm_points,
}
