"""Dataset loaders: tiny files written in each real format and read back, values checked exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from benchmarks import datasets as D
from benchmarks.splits import SPLITS
from operators.mri import fft2c, ifft2c
from priors.phantoms import TEST_SEED_OFFSET, phantom


def _np_fft2c(x):
    # numpy's own centred orthonormal FFT, independent of the torch code under test
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))


def _np_crop(x, s):
    h, w = x.shape[-2:]
    return x[..., (h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]


# ------------------------------------------------------------------------------------------------
# image folders
# ------------------------------------------------------------------------------------------------
def test_image_folder_recursive_sorted_first_n_and_exact_crop(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {}
    # FFHQ-style nested layout, written out of order; a non-image file is ignored
    for rel in ["01000/01001.png", "00000/00002.png", "00000/00001.png"]:
        arrays[rel] = rng.integers(0, 256, (8, 12, 3), dtype=np.uint8)  # H=8, W=12
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        Image.fromarray(arrays[rel]).save(tmp_path / rel)
    (tmp_path / "00000" / "notes.txt").write_text("not an image")

    ds = D.image_folder(tmp_path, size=8)
    assert [s.name for s in ds] == ["00000/00001", "00000/00002", "01000/01001"]
    name, image = ds[0]
    assert image.dtype == torch.float32 and image.shape == (3, 8, 8)
    # short side already 8: no resampling, centre crop of columns 2..9
    expected = torch.from_numpy(arrays["00000/00001.png"][:, 2:10].astype(np.float32) / 255).permute(2, 0, 1)
    assert torch.equal(image, expected)
    assert [s.name for s in D.image_folder(tmp_path, size=8, n=2)] == ["00000/00001", "00000/00002"]
    assert len(ds[1:]) == 2 and ds[1:][0].name == "00000/00002"
    # native size kept with size=None
    assert D.image_folder(tmp_path, size=None)[2].image.shape == (3, 8, 12)


def test_image_folder_halves_with_box_filter_like_guided_diffusion(tmp_path):
    rng = np.random.default_rng(1)
    arr = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "a.png")
    image = D.image_folder(tmp_path, size=8)[0].image
    # 32x48 -> 16x24 -> 8x12 by exact 2x2 means (BOX), no resampling at scale 1, then the centre 8
    # columns. PIL stores each halving as uint8 (error < 1 grey level per step, so < 2 after two); a
    # wrong crop or filter would be off by tens of levels on random pixels.
    blocks = arr.astype(np.float64).reshape(8, 4, 12, 4, 3).mean(axis=(1, 3))
    expected = torch.from_numpy(blocks[:, 2:10] / 255).permute(2, 0, 1).float()
    assert (image - expected).abs().max() < 2 / 255


def test_image_folder_jpeg_gray_and_luma(tmp_path):
    gray = np.tile(np.linspace(0, 255, 16, dtype=np.uint8), (16, 1))
    Image.fromarray(gray, mode="L").save(tmp_path / "set14_gray.png")
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50
    Image.fromarray(rgb).save(tmp_path / "z_photo.jpg", quality=95)

    ds = D.image_folder(tmp_path, size=None)
    g = ds[0].image
    assert g.shape == (3, 16, 16) and torch.equal(g[0], g[1]) and torch.equal(g[0], g[2])
    assert torch.equal(g[0], torch.from_numpy(gray.astype(np.float32) / 255))
    jpg = ds[1].image  # lossy, but a flat colour survives to within a few grey levels
    assert (jpg - torch.tensor([200, 100, 50]).view(3, 1, 1) / 255).abs().max() < 4 / 255
    luma = D.image_folder(tmp_path, size=None, channels=1)[1].image
    assert luma.shape == (1, 16, 16)
    assert abs(luma.mean().item() - (0.299 * 200 + 0.587 * 100 + 0.114 * 50) / 255) < 4 / 255


def test_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no samples"):
        D.image_folder(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):  # the runner reports missing data
        D.fastmri(tmp_path / "missing")
    with pytest.raises(ValueError, match="channels"):
        D.image_folder(tmp_path, channels=2)


def _write_images(root, names, size=8, seed=0):
    rng = np.random.default_rng(seed)
    for rel in names:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / rel)


def test_split_picks_the_protocols_files_in_any_layout(tmp_path):
    # FFHQ's own layout (folders of 1000), an image outside the split, out-of-order names
    _write_images(tmp_path, ["00000/00002.png", "00000/00000.png", "00000/00001.png", "69000/69007.png"])
    ds = D.image_folder(tmp_path, size=8, split="ffhq_first1k", n=3)
    assert [s.name for s in ds] == ["00000/00000", "00000/00001", "00000/00002"]
    assert [s.name for s in D.image_folder(tmp_path, size=8, split="ffhq_diffpir100", n=1)] == ["69000/69007"]
    with pytest.raises(FileNotFoundError, match=r"lacks 1 of the 4 images.*'ffhq_first1k'.*: 00003 "):
        D.image_folder(tmp_path, size=8, split="ffhq_first1k", n=4)
    with pytest.raises(FileNotFoundError, match=r"lacks 997 of the 1000 .*00003, 00004, .*\(997 in all\)"):
        D.image_folder(tmp_path, size=8, split="ffhq_first1k")


def test_split_follows_the_list_order_in_imagenet_class_folders(tmp_path):
    # DiffPIR's list starts ILSVRC2012_val_00000001, _00000011; a flat JPEG and a class folder
    _write_images(tmp_path, ["n09999999/ILSVRC2012_val_00000011.JPEG", "ILSVRC2012_val_00000001.jpg",
                             "n01440764/ILSVRC2012_val_00000002.JPEG"])
    ds = D.image_folder(tmp_path, size=8, split="imagenet_diffpir100", n=2)
    assert [s.name for s in ds] == ["ILSVRC2012_val_00000001", "n09999999/ILSVRC2012_val_00000011"]
    # RED-diff's DGP list is in class order, not in validation-number order
    dgp = SPLITS["imagenet_dgp1k"].names
    assert dgp[:2] == ("ILSVRC2012_val_00000293", "ILSVRC2012_val_00000236") and len(set(dgp)) == 1000


def test_split_without_a_list_takes_the_first_sorted_images(tmp_path):
    _write_images(tmp_path, ["b.png", "a.png", "c.jpg", "0.bmp"])  # DAPS reads png/jpg/jpeg only
    assert [s.name for s in D.image_folder(tmp_path, size=8, split="ffhq_daps100", n=2)] == ["a", "b"]
    with pytest.raises(FileNotFoundError, match=r"holds 3 .* uses the first 100"):
        D.image_folder(tmp_path, size=8, split="ffhq_daps100")


def test_split_errors(tmp_path):
    _write_images(tmp_path, ["00000.png", "x/00000.jpg"])
    with pytest.raises(ValueError, match=r"several files for one image.*00000: 00000.png, x/00000.jpg"):
        D.image_folder(tmp_path, size=8, split="ffhq_first1k", n=1)
    with pytest.raises(ValueError, match="split: expected one of ffhq_first1k"):
        D.image_folder(tmp_path, split="ffhq")
    with pytest.raises(ValueError, match="n: split 'ffhq_diffpir100' has 100 images"):
        D.image_folder(tmp_path, split="ffhq_diffpir100", n=101)


# ------------------------------------------------------------------------------------------------
# fastMRI HDF5
# ------------------------------------------------------------------------------------------------
def _write_fastmri(path, kspace, recon_key, recon, acquisition):
    import h5py

    with h5py.File(path, "w") as h5:
        h5.create_dataset("kspace", data=kspace)
        h5.create_dataset(recon_key, data=recon)
        h5.create_dataset("ismrmrd_header", data=np.bytes_(b"<ismrmrdHeader/>"))
        h5.attrs["acquisition"] = acquisition
        h5.attrs["max"] = float(recon.max())
        h5.attrs["norm"] = float(np.linalg.norm(recon))
        h5.attrs["patient_id"] = "abc"


def test_fastmri_multicoil_rss_target_and_consistent_kspace(tmp_path):
    rng = np.random.default_rng(2)
    slices, coils, h, w, crop = 3, 4, 40, 37, 32   # odd width: crop start (37 - 32) // 2 = 2
    coil_images = (rng.normal(size=(slices, coils, h, w)) + 1j * rng.normal(size=(slices, coils, h, w)))
    kspace = _np_fft2c(coil_images).astype(np.complex64)
    rss = np.sqrt((np.abs(_np_crop(coil_images, crop)) ** 2).sum(1)).astype(np.float32)
    _write_fastmri(tmp_path / "file1000001.h5", kspace, "reconstruction_rss", rss, "CORPD_FBK")

    ds = D.fastmri(tmp_path, crop=crop)
    assert len(ds) == 3 and ds[2].name == "file1000001/002"
    s = ds[1]
    scale = rss[1].max()
    assert s.image.shape == (1, crop, crop) and s.image.dtype == torch.float32
    assert s.meta["scale"] == pytest.approx(scale, rel=1e-5) and s.image.max() == pytest.approx(1.0, abs=1e-6)
    torch.testing.assert_close(s.image[0], torch.from_numpy(rss[1] / scale), atol=2e-6, rtol=1e-5)
    torch.testing.assert_close(s.meta["reference"], s.image, atol=2e-6, rtol=1e-5)  # the file's own RSS
    assert s.kspace.shape == (coils, crop, crop) and s.kspace.dtype == torch.complex64
    rss_from_kspace = ifft2c(s.kspace).abs().pow(2).sum(0).sqrt()
    torch.testing.assert_close(rss_from_kspace, s.image[0], atol=2e-6, rtol=1e-5)
    assert s.meta["multicoil"] and s.meta["raw_shape"] == (coils, h, w)
    assert s.meta["attrs"]["acquisition"] == "CORPD_FBK"
    # slice selection and first-n
    assert [x.name for x in D.fastmri(tmp_path, crop=crop, slices=slice(1, None), n=1)] == ["file1000001/001"]


def test_fastmri_singlecoil_esc_target(tmp_path):
    rng = np.random.default_rng(3)
    image = rng.normal(size=(2, 36, 34)) + 1j * rng.normal(size=(2, 36, 34))
    esc = np.abs(_np_crop(image, 30)).astype(np.float32)
    kspace = _np_fft2c(image).astype(np.complex64)
    _write_fastmri(tmp_path / "file1.h5", kspace, "reconstruction_esc", esc, "CORPDFS_FBK")
    s = D.fastmri(tmp_path / "file1.h5", crop=30, normalize=False)[0]
    assert s.meta["scale"] == 1.0 and not s.meta["multicoil"] and s.kspace.shape == (1, 30, 30)
    torch.testing.assert_close(s.image[0], torch.from_numpy(esc[0]), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(s.meta["reference"], s.image)
    assert s.meta["reference_key"] == "reconstruction_esc"


def test_fastmri_fft_pair_matches_numpy():
    x = torch.randn(3, 8, 7, dtype=torch.complex128, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(fft2c(x).numpy(), _np_fft2c(x.numpy()), atol=1e-12)
    torch.testing.assert_close(ifft2c(fft2c(x)), x)


# ------------------------------------------------------------------------------------------------
# DICOM CT
# ------------------------------------------------------------------------------------------------
def _write_ct_slice(path, stored, z, instance, slope, intercept, series="1.2.3.4"):
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.SeriesInstanceUID, ds.InstanceNumber = "CT", series, instance
    ds.ImagePositionPatient = [0.0, 0.0, z]
    ds.PixelSpacing = [0.7, 0.7]
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    ds.PixelData = stored.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


def test_dicom_ct_hu_to_attenuation_window_and_order(tmp_path):
    rng = np.random.default_rng(4)
    slope, intercept = 2.0, -1024.0
    stored = [rng.integers(0, 1400, (6, 5)) for _ in range(3)]
    # file names in the opposite order of the patient axis: sorting must follow position
    for i, z in enumerate([30.0, 20.0, 10.0]):
        _write_ct_slice(tmp_path / f"IM{i}.dcm", stored[i], z, instance=3 - i, slope=slope, intercept=intercept)
    (tmp_path / "README.txt").write_text("not dicom")

    ds = D.dicom_ct(tmp_path, size=None, window=(-1000.0, 1000.0))
    assert [s.name for s in ds] == ["IM2", "IM1", "IM0"]
    s = ds[0]
    hu = stored[2] * slope + intercept
    expected = np.clip((hu + 1000) / 2000, 0, 1)
    assert s.image.shape == (1, 6, 5) and s.image.dtype == torch.float32
    np.testing.assert_allclose(s.image[0].numpy(), expected, atol=1e-6)
    # back to attenuation: mu = mu_water (1 + HU / 1000) wherever the window did not clip
    mu_lo, mu_hi = s.meta["mu_range"]
    mu = mu_lo + s.image[0].double().numpy() * (mu_hi - mu_lo)
    inside = (hu > -1000) & (hu < 1000)
    np.testing.assert_allclose(mu[inside], D.MU_WATER * (1 + hu[inside] / 1000), rtol=1e-5)
    assert s.meta["pixel_spacing"] == (0.7, 0.7)
    assert D.dicom_ct(tmp_path, size=4, n=2)[1].image.shape == (1, 4, 4)
    with pytest.raises(ValueError, match="window"):
        D.dicom_ct(tmp_path, window=(100.0, -100.0))


# ------------------------------------------------------------------------------------------------
# arrays, phantoms, bundled
# ------------------------------------------------------------------------------------------------
def test_npy_and_npz_round_trip(tmp_path):
    rng = np.random.default_rng(5)
    stack = rng.random((4, 2, 5, 6)).astype(np.float32)
    np.save(tmp_path / "x.npy", stack)
    ds = D.array_file(tmp_path / "x.npy", n=3)
    assert len(ds) == 3 and ds[2].name == "x/0002" and torch.equal(ds[2].image, torch.from_numpy(stack[2]))

    hwc = rng.integers(0, 256, (2, 5, 6, 3), dtype=np.uint8)
    np.savez(tmp_path / "set.npz", images=hwc, names=np.array(["a", "b"]), other=np.zeros(3))
    ds = D.array_file(tmp_path / "set.npz", scale=1 / 255)
    assert [s.name for s in ds] == ["a", "b"]
    torch.testing.assert_close(ds[1].image, torch.from_numpy(hwc[1]).permute(2, 0, 1).float() / 255)
    gray = rng.random((3, 5, 6)).astype(np.float32)
    np.savez(tmp_path / "g.npz", gray)
    assert torch.equal(D.array_file(tmp_path / "g.npz")[1].image, torch.from_numpy(gray[1])[None])
    with pytest.raises(ValueError, match="key"):
        D.array_file(tmp_path / "set.npz", key="missing")


def test_phantoms_are_per_seed_and_match_priors():
    ds = D.phantoms(3, size=16, seed=5)
    assert [s.name for s in ds] == ["phantom_0005", "phantom_0006", "phantom_0007"]
    assert torch.equal(ds[1].image, phantom(TEST_SEED_OFFSET + 6, 16))
    assert torch.equal(D.phantoms(1, size=16, seed=7)[0].image, ds[2].image)  # independent of n
    custom = D.phantoms(2, size=4, make=lambda s, n: torch.full((1, n, n), float(s)))
    assert custom[1].image.shape == (1, 4, 4) and custom[1].image[0, 0, 0] == 1.0


def test_bundled_reads_the_shipped_test_sets():
    photos = D.bundled("natural", size=32)
    assert [s.name for s in photos] == ["astronaut", "coffee", "chelsea", "rocket"]
    assert photos.batch().shape == (4, 3, 32, 32) and 0 <= photos.batch().min() and photos.batch().max() <= 1
    phantoms = D.bundled("phantom", size=16, n=2)
    assert torch.equal(phantoms[1].image, phantom(TEST_SEED_OFFSET + 1, 16))
    with pytest.raises(FileNotFoundError, match="nope"):
        D.bundled("nope")
    assert D.DATASETS["bundled"] is D.bundled and D.DATASETS["fastmri"] is D.fastmri
