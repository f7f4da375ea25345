"""Data sources: extraction, manifest (sha256, licence, whole-file holdout), reserved packages; no downloads.

Every archive here is a tiny fixture built in the test: a .deb (ar + data.tar.xz), an sdist (.tar.gz), a
wheel (.zip) holding DICOM files written with pydicom, and a NIfTI-1 volume written byte by byte.
"""
import gzip
import hashlib
import io
import json
import lzma
import plistlib
import shutil
import struct
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import priors.data_sources as ds
from priors.data_sources import (Source, check_package, fetch, load_images, read_inv3, read_nifti, read_nrrd,
                                 volume_slices)
from priors.photos import file_weighted_bank


def _png(seed: int, size=(40, 48), mode="RGB") -> bytes:
    rng = np.random.default_rng(seed)
    shape = (size[0], size[1], 3) if mode == "RGB" else size
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _tar(files: dict[str, bytes], mode: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _deb(files: dict[str, bytes]) -> bytes:
    """A minimal Debian package: an ar archive of debian-binary, control.tar.gz and data.tar.xz."""
    members = {"debian-binary": b"2.0\n", "control.tar.gz": _tar({"./control": b"Package: tiny\n"}, "w:gz"),
               "data.tar.xz": lzma.compress(_tar({"./" + k: v for k, v in files.items()}, "w"))}
    out = b"!<arch>\n"
    for name, data in members.items():
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}`\n".encode() + data
        out += b"\n" if len(data) % 2 else b""
    return out


def _nifti(volume: np.ndarray) -> bytes:
    header = bytearray(352)
    struct.pack_into("<i", header, 0, 348)
    struct.pack_into("<8h", header, 40, 3, *volume.shape, 1, 1, 1, 1)
    struct.pack_into("<hh", header, 70, 16, 32)  # float32
    struct.pack_into("<fff", header, 108, 352.0, 1.0, 0.0)  # vox_offset, scl_slope, scl_inter
    header[344:348] = b"n+1\0"
    return gzip.compress(bytes(header) + volume.astype("<f4").tobytes(order="F"))


def _nrrd(volume: np.ndarray, encoding="raw", endian="little", kind="short", space="left-posterior-superior",
          directions="(0.5,0,0) (0,0.5,0) (0,0,5)") -> bytes:
    """A NRRD file with attached data, written as the format says: the first size is the fastest axis."""
    raw = volume.astype(("<" if endian == "little" else ">") + "i2").tobytes(order="F")
    header = (f"NRRD0004\n# a comment\ntype: {kind}\ndimension: {volume.ndim}\nspace: {space}\n"
              f"sizes: {' '.join(map(str, volume.shape))}\nspace directions: {directions}\n"
              f"endian: {endian}\nencoding: {encoding}\nsource:=a key/value pair\n\n")
    return header.encode() + (gzip.compress(raw) if encoding == "gzip" else raw)


def _inv3(matrix: np.ndarray, plist_matrix: dict | None = None) -> bytes:
    """An InVesalius project: a gzip tar of main.plist and the raw int16 matrix (slices, rows, columns)."""
    meta = {"modality": "CT", "matrix": plist_matrix if plist_matrix is not None else
            {"dtype": "int16", "filename": "matrix.dat", "shape": list(matrix.shape)}}
    return _tar({"tmpab/main.plist": plistlib.dumps(meta), "tmpab/matrix.dat": matrix.astype("<i2").tobytes()}, "w:gz")


def _dicom(frames: np.ndarray, photometric="MONOCHROME2", modality="MR", intercept=None) -> bytes:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    d = FileDataset("tiny.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    d.Modality, d.SOPClassUID, d.SOPInstanceUID = modality, meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    d.Rows, d.Columns = frames.shape[-2:]
    if frames.ndim == 3:
        d.NumberOfFrames = frames.shape[0]
    d.SamplesPerPixel, d.PhotometricInterpretation = 1, photometric
    d.BitsAllocated, d.BitsStored, d.HighBit, d.PixelRepresentation = 16, 16, 15, 0
    if intercept is not None:
        d.RescaleSlope, d.RescaleIntercept = 1, intercept
    d.PixelData = frames.astype("<u2").tobytes()
    buffer = io.BytesIO()
    d.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _fake_registry(archives: dict[str, tuple[str, bytes]]):
    """A stand-in for subprocess.run that 'downloads' a fixture archive into the cwd, recording the command."""
    calls = []

    def run(command, cwd, **kwargs):
        calls.append(command)
        package = next(p for p in archives if any(p in part for part in command))
        filename, data = archives[package]
        (cwd / filename).write_bytes(data)
        return type("Done", (), {"returncode": 0, "stderr": ""})()

    return run, calls


PHOTOS = {"usr/share/tiny/a.png": _png(0), "usr/share/tiny/b.png": _png(1), "usr/share/tiny/c.jpg": _png(2),
          "usr/share/tiny/logo.png": _png(3), "usr/share/doc/tiny-photos/copyright": b"License: CC0\n"}


@pytest.fixture
def world(tmp_path):
    volume = np.zeros((12, 14, 10), np.float32)
    volume[2:10, 2:12, 1:9] = np.linspace(1, 100, 8 * 10 * 8).reshape(8, 10, 8)
    mr = np.arange(2 * 16 * 20, dtype=np.uint16).reshape(2, 16, 20)
    ct = np.array([[0, 24, 1024, 2024, 3000]], np.uint16).repeat(4, 0)  # -1024 ... 1976 HU
    wheel = io.BytesIO()
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("tiny_data/mr.dcm", _dicom(mr))
        z.writestr("tiny_data/ct.dcm", _dicom(ct, modality="CT", intercept=-1024))
        z.writestr("tiny_data/xray.dcm", _dicom(mr[0], "MONOCHROME1", modality="CR"))
        z.writestr("tiny_data/brain.nii.gz", _nifti(volume))
        z.writestr("tiny_data/head.nii.gz", _nifti(volume[::-1].copy()))
        z.writestr("tiny_data-1.0.dist-info/LICENSE", b"MIT\n")
    sdist = _tar({"tiny-2.0/samples/d.png": _png(4), "tiny-2.0/samples/e.png": _png(5, mode="L"),
                  "tiny-2.0/LICENSE": b"Apache-2.0\n"}, "w:gz")
    sources = {s.name: s for s in [
        Source("tiny-photos", "natural", "debian", "tiny-photos", "1.0-1", "photo",
               members=("usr/share/tiny/*.png", "usr/share/tiny/*.jpg"), exclude=("*/logo.png",),
               test=("usr/share/tiny/b.png",), licence="CC0-1.0",
               licences=(("usr/share/tiny/c.jpg", "BSD-3-Clause"),),
               licence_file="usr/share/doc/tiny-photos/copyright"),
        Source("tiny-sdist", "natural", "pypi", "tiny-sdist", "2.0", "photo", members=("tiny-2.0/samples/*.png",),
               licence="Apache-2.0", licence_file="tiny-2.0/LICENSE"),
        Source("tiny-medical", "medical", "pypi", "tiny-data", "1.0", "dicom", members=("tiny_data/*.dcm",),
               test=("tiny_data/xray.dcm",), licence="MIT", licence_file="tiny_data-1.0.dist-info/LICENSE"),
        Source("tiny-volumes", "medical", "pypi", "tiny-data", "1.0", "nifti", members=("tiny_data/*.nii.gz",),
               test=("tiny_data/head.nii.gz",), licence="MIT", licence_file="tiny_data-1.0.dist-info/LICENSE", stride=3,
               modality="MR"),
    ]}
    run, calls = _fake_registry({"tiny-photos": ("tiny-photos_1.0-1_all.deb", _deb(PHOTOS)),
                                 "tiny-sdist": ("tiny-sdist-2.0.tar.gz", sdist),
                                 "tiny-data": ("tiny_data-1.0-py3-none-any.whl", wheel.getvalue())})
    cache, manifest = tmp_path / "cache" / "data", tmp_path / "manifest.json"
    fetch("all", cache=cache, manifest=manifest, sources=sources, progress=False, run=run)
    return dict(cache=cache, manifest=manifest, sources=sources, calls=calls, run=run,
                files=json.loads(manifest.read_text())["files"])


def test_fetch_uses_pip_and_apt_and_caches_the_archive(world):
    commands = [" ".join(c) for c in world["calls"]]
    assert any(c.startswith("apt-get download tiny-photos=1.0-1") for c in commands)
    assert any("pip download --no-deps" in c and "tiny-sdist==2.0" in c for c in commands)
    assert len(commands) == 3  # the two medical sources share one package, downloaded once
    fetch("natural", cache=world["cache"], manifest=world["manifest"], sources=world["sources"], progress=False,
          run=world["run"])
    assert len(world["calls"]) == 3  # cached: nothing downloaded again


def test_manifest_records_sha256_licence_and_version_of_every_file(world):
    by_path = {e["path"]: e for e in world["files"]}
    assert set(by_path) == {"usr/share/tiny/a.png", "usr/share/tiny/b.png", "usr/share/tiny/c.jpg",
                            "tiny-2.0/samples/d.png", "tiny-2.0/samples/e.png", "tiny_data/ct.dcm", "tiny_data/mr.dcm",
                            "tiny_data/xray.dcm", "tiny_data/brain.nii.gz", "tiny_data/head.nii.gz"}
    for path, data in PHOTOS.items():
        if path in by_path:
            assert by_path[path]["sha256"] == hashlib.sha256(data).hexdigest()
    a = by_path["usr/share/tiny/a.png"]
    assert (a["package"], a["version"], a["registry"], a["licence"]) == ("tiny-photos", "1.0-1", "debian", "CC0-1.0")
    assert a["licence_file_sha256"] == hashlib.sha256(b"License: CC0\n").hexdigest()
    assert by_path["usr/share/tiny/c.jpg"]["licence"] == "BSD-3-Clause"
    assert all(e["licence"] and e["archive_sha256"] for e in world["files"])
    manifest = json.loads(world["manifest"].read_text())
    assert manifest["sources"]["tiny-photos"]["licences"] == ["BSD-3-Clause", "CC0-1.0"]
    assert manifest["counts"]["medical"]["test"] > 0 and manifest["counts"]["natural"]["train"] == 4


def test_manifest_records_each_medical_files_modality(world):
    modality = {e["path"]: e.get("modality") for e in world["files"]}
    assert modality["tiny_data/ct.dcm"] == "CT" and modality["tiny_data/mr.dcm"] == "MR"
    assert modality["tiny_data/xray.dcm"] == "CR" and modality["tiny_data/head.nii.gz"] == "MR"
    assert all(e["family"] == "medical" for e in world["files"] if "modality" in e)


def test_extraction_writes_rgb_photos_and_normalised_gray_slices(world):
    cache, by_path = world["cache"], {e["path"]: e for e in world["files"]}
    photo = Image.open(cache / by_path["usr/share/tiny/a.png"]["images"][0])
    assert photo.mode == "RGB" and photo.size == (48, 40)
    assert np.array_equal(np.asarray(photo), np.asarray(Image.open(io.BytesIO(PHOTOS["usr/share/tiny/a.png"]))))
    mr = by_path["tiny_data/mr.dcm"]["images"]
    assert len(mr) == 2  # one PNG per frame
    frames = [np.asarray(Image.open(cache / p)).astype(np.float64) / 65535 for p in mr]
    assert frames[0].shape == (16, 20) and min(f.min() for f in frames) == 0 and max(f.max() for f in frames) == 1
    assert frames[0].mean() < frames[1].mean()  # one scale for the whole file, not per frame
    xray = np.asarray(Image.open(cache / by_path["tiny_data/xray.dcm"]["images"][0])).astype(np.float64)
    assert xray[0, 0] > xray[-1, -1]  # MONOCHROME1 inverted
    # CT: Hounsfield units (raw + intercept) through the fixed window [-1000, 1000] HU
    ct = np.asarray(Image.open(cache / by_path["tiny_data/ct.dcm"]["images"][0])).astype(np.float64) / 65535
    np.testing.assert_allclose(ct[0], [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-4)
    slices = by_path["tiny_data/brain.nii.gz"]["images"]
    assert slices and all("axis" in s for s in slices) and {s.split("/")[-1][:5] for s in slices} == {"axis0", "axis1", "axis2"}


def test_holdout_is_by_whole_file(world):
    test_files = {e["path"] for e in world["files"] if e["split"] == "test"}
    assert test_files == {"usr/share/tiny/b.png", "tiny_data/xray.dcm", "tiny_data/head.nii.gz"}
    for e in world["files"]:  # every slice of a file shares the file's split
        assert e["split"] == ("test" if e["path"] in test_files else "train") and e["images"]
    train, origins = load_images("medical", "train", cache=world["cache"], manifest=world["manifest"])
    test, test_origins = load_images("medical", "test", cache=world["cache"], manifest=world["manifest"])
    assert {o["path"] for o in origins}.isdisjoint({o["path"] for o in test_origins})
    assert all(t.shape[0] == 1 and 0 <= t.min() and t.max() <= 1 for t in train + test)
    photos, _ = load_images("natural", "train", cache=world["cache"], manifest=world["manifest"])
    assert len(photos) == 4 and all(p.shape[0] == 3 for p in photos)  # the gray one repeated to RGB


def test_reserved_packages_are_refused():
    for name in ("sporco", "dipy", "matplotlib", "mahotas", "Matplotlib"):
        with pytest.raises(ValueError, match="package: .*reserved"):
            check_package(name)
    with pytest.raises(ValueError, match="reserved"):
        Source("hopper", "natural", "pypi", "matplotlib", "3.9.0", "photo", members=("*/grace_hopper.jpg",),
               licence="PSF")
    assert all(s.package not in ds.RESERVED for s in ds.SOURCES.values())


def test_bad_arguments_name_the_argument(world, tmp_path):
    with pytest.raises(ValueError, match="family"):
        fetch("photos", cache=tmp_path, manifest=tmp_path / "m.json")
    with pytest.raises(ValueError, match="family"):
        load_images("faces", manifest=world["manifest"], cache=world["cache"])
    with pytest.raises(ValueError, match="split"):
        load_images("medical", "val", manifest=world["manifest"], cache=world["cache"])
    with pytest.raises(ValueError, match="manifest"):
        load_images("medical", manifest=tmp_path / "missing.json", cache=world["cache"])
    with pytest.raises(ValueError, match="kind"):
        Source("x", "natural", "pypi", "x", "1", "video", members=("*",), licence="MIT")
    with pytest.raises(ValueError, match="stride"):
        Source("x", "medical", "pypi", "x", "1", "nifti", members=("*",), licence="MIT", stride=0, modality="MR")
    with pytest.raises(ValueError, match="modality"):
        Source("x", "medical", "pypi", "x", "1", "nifti", members=("*",), licence="MIT")
    with pytest.raises(ValueError, match="modality"):
        Source("x", "medical", "pypi", "x", "1", "dicom", members=("*",), licence="MIT", modality="CT")
    with pytest.raises(ValueError, match="nifti"):
        read_nifti(b"\0" * 400)
    shutil.rmtree(world["cache"] / "medical")
    with pytest.raises(ValueError, match="cache: .*fetch medical"):
        load_images("medical", cache=world["cache"], manifest=world["manifest"])


def test_nifti_reader_and_slices_follow_the_voxel_order():
    volume = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    np.testing.assert_array_equal(read_nifti(_nifti(volume)), volume)
    slices = volume_slices(volume / volume.max(), stride=2, min_foreground=0.0)
    assert [n for n, _ in slices][:2] == ["axis0_000", "axis0_002"] and len(slices) == 2 + 3 + 3
    axial = volume_slices(volume / volume.max(), stride=2, min_foreground=0.0, axes=(2,))
    assert [n for n, _ in axial] == ["axis2_000", "axis2_002", "axis2_004"]
    np.testing.assert_array_equal(axial[1][1], np.rot90(volume[:, :, 2] / volume.max()))


@pytest.fixture
def volumes(tmp_path):
    """NRRD CT and MR series in a fake sdist asked for by URL, an .inv3 head CT in a fake .deb."""
    ct = np.zeros((12, 10, 3), np.int16)  # (x, y, z) in HU: soft tissue (0 HU)
    ct[:, 0] = 1000                       # the y = 0 row: anterior in left-posterior-superior space
    ct[..., 2] = -1000                    # the top slice is all air
    mr = np.arange(12 * 10 * 2, dtype=np.int16).reshape(12, 10, 2) + 50
    head = np.zeros((4, 8, 10), np.int16)  # (slices, rows, columns) in HU
    head[:, 0] = 1000                      # the first stored row: InVesalius' rows run bottom-up
    sdist = _tar({"tiny-vol-3.0/data/ct1_image.nrrd": _nrrd(ct, "gzip"),
                  "tiny-vol-3.0/data/ct1_label.nrrd": _nrrd(np.ones_like(ct)),
                  "tiny-vol-3.0/data/ct2_image.nrrd": _nrrd(ct[::-1]),
                  "tiny-vol-3.0/data/mr_image.nrrd": _nrrd(mr, endian="big", directions="(1,0,0) (0,-1,0) (0,0,6)"),
                  "tiny-vol-3.0/LICENSE": b"BSD\n"}, "w:gz")
    url = "https://files.example.org/tiny-vol-3.0.tar.gz#sha256=" + hashlib.sha256(sdist).hexdigest()
    sources = {s.name: s for s in [
        Source("vol-ct", "medical", "pypi", "tiny-vol", "3.0", "nrrd", modality="CT", axes=(2,), stride=1,
               members=("tiny-vol-3.0/data/ct*_image.nrrd",), test=("tiny-vol-3.0/data/ct2_image.nrrd",),
               licence="BSD-3-Clause", licence_file="tiny-vol-3.0/LICENSE", pip_url=url),
        Source("vol-mr", "medical", "pypi", "tiny-vol", "3.0", "nrrd", modality="MR", axes=(2,), stride=1,
               members=("tiny-vol-3.0/data/mr_image.nrrd",), licence="BSD-3-Clause", pip_url=url),
        Source("vol-head", "medical", "debian", "tiny-head", "1.0-1", "inv3", modality="CT", axes=(2,), stride=2,
               members=("usr/share/doc/tiny-head/*.inv3",), licence="GPL-2"),
    ]}
    run, calls = _fake_registry({"tiny-vol": ("tiny-vol-3.0.tar.gz", sdist),
                                 "tiny-head": ("tiny-head_1.0-1_all.deb", _deb({"usr/share/doc/tiny-head/Head.inv3": _inv3(head)}))})
    cache, manifest = tmp_path / "cache" / "data", tmp_path / "manifest.json"
    fetch("medical", cache=cache, manifest=manifest, sources=sources, progress=False, run=run)
    files = {e["path"].rsplit("/", 1)[-1]: e for e in json.loads(manifest.read_text())["files"]}
    return dict(cache=cache, calls=[" ".join(c) for c in calls], files=files, url=url)


def _slices(world, name):
    entry = world["files"][name]
    return {p.rsplit("/", 1)[-1]: np.asarray(Image.open(world["cache"] / p)).astype(np.float64) / 65535
            for p in entry["images"]}


def test_volume_series_are_fetched_by_url_windowed_and_sliced_axially(volumes):
    assert any(f"tiny-vol @ {volumes['url']}" in c and "tiny-vol==" not in c for c in volumes["calls"])
    files = volumes["files"]
    assert set(files) == {"ct1_image.nrrd", "ct2_image.nrrd", "mr_image.nrrd", "Head.inv3"}  # no label mask
    assert {n: (e["modality"], e["split"]) for n, e in files.items()} == {
        "ct1_image.nrrd": ("CT", "train"), "ct2_image.nrrd": ("CT", "test"), "mr_image.nrrd": ("MR", "train"),
        "Head.inv3": ("CT", "train")}
    ct = _slices(volumes, "ct1_image.nrrd")
    assert set(ct) == {"axis2_000.png", "axis2_001.png"}  # axial only; the all-air slice (0 after the window) skipped
    for image in ct.values():  # HU through [-1000, 1000]: 0 HU -> 0.5, 1000 HU -> 1; anterior row on top
        assert image.shape == (10, 12)
        np.testing.assert_allclose(image[0], 1.0, atol=1e-4)
        np.testing.assert_allclose(image[1:], 0.5, atol=1e-4)
    mr = _slices(volumes, "mr_image.nrrd")
    assert set(mr) == {"axis2_000.png", "axis2_001.png"}
    assert min(m.min() for m in mr.values()) == 0 and max(m.max() for m in mr.values()) == 1  # percentiles
    head = _slices(volumes, "Head.inv3")
    assert set(head) == {"axis2_000.png", "axis2_002.png"}  # stride 2
    for image in head.values():  # (rows, columns) of each stored slice, its first (bottom) row at the bottom
        assert image.shape == (8, 10)
        np.testing.assert_allclose(image[-1], 1.0, atol=1e-4)
        np.testing.assert_allclose(image[:-1], 0.5, atol=1e-4)


def test_nrrd_reader_keeps_the_first_size_fastest_and_turns_to_ras():
    volume = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6) - 60
    for encoding in ("raw", "gzip"):
        for endian in ("little", "big"):
            np.testing.assert_array_equal(read_nrrd(_nrrd(volume, encoding, endian)), volume)
    lps = _nrrd(volume, directions="(0.5,0,0) (0,0.5,0) (0,0,5)")  # x runs to the left, y to the back
    np.testing.assert_array_equal(read_nrrd(lps, ras=True), volume[::-1, ::-1])
    flipped_y = _nrrd(volume, directions="(0.5,0,0) (0,-0.5,0) (0,0,5)")
    np.testing.assert_array_equal(read_nrrd(flipped_y, ras=True), volume[::-1])
    ras = _nrrd(volume, space="right-anterior-superior")
    np.testing.assert_array_equal(read_nrrd(ras, ras=True), volume)


def test_inv3_reader_follows_the_plist_shape():
    matrix = np.arange(3 * 4 * 5, dtype=np.int16).reshape(3, 4, 5) - 1024
    np.testing.assert_array_equal(read_inv3(_inv3(matrix)), matrix)


def test_volume_readers_and_sources_refuse_bad_input():
    volume = np.zeros((2, 3, 4), np.int16)
    with pytest.raises(ValueError, match="nrrd: not a NRRD"):
        read_nrrd(b"P5\n2 2\n255\n\0\0\0\0")
    with pytest.raises(ValueError, match="nrrd: unsupported encoding 'bzip2'"):
        read_nrrd(_nrrd(volume, "bzip2"))
    with pytest.raises(ValueError, match="nrrd: unsupported type 'block'"):
        read_nrrd(_nrrd(volume, kind="block"))
    with pytest.raises(ValueError, match="nrrd: 8 data bytes"):
        read_nrrd(_nrrd(volume)[:-40])
    with pytest.raises(ValueError, match="nrrd: no orientation"):
        read_nrrd(_nrrd(volume, space="scanner-xyz"), ras=True)
    with pytest.raises(ValueError, match="inv3: not a"):
        read_inv3(b"not a tar")
    with pytest.raises(ValueError, match="inv3: main.plist's matrix"):
        read_inv3(_inv3(volume, {"dtype": "complex64", "filename": "matrix.dat", "shape": [2, 3, 4]}))
    with pytest.raises(ValueError, match="inv3: matrix file"):
        read_inv3(_inv3(volume, {"dtype": "int16", "filename": "matrix.dat", "shape": [2, 3, 5]}))
    for kind in ("nrrd", "inv3"):
        with pytest.raises(ValueError, match="modality"):
            Source("x", "medical", "pypi", "x", "1", kind, members=("*",), licence="MIT")
    with pytest.raises(ValueError, match="axes"):
        Source("x", "medical", "pypi", "x", "1", "nrrd", members=("*",), licence="MIT", modality="CT", axes=(3,))
    with pytest.raises(ValueError, match="pip_url"):
        Source("x", "medical", "debian", "x", "1", "nrrd", members=("*",), licence="MIT", modality="CT",
               pip_url="https://files.example.org/x.tar.gz#sha256=00")
    with pytest.raises(ValueError, match="pip_url"):
        Source("x", "medical", "pypi", "x", "1", "nrrd", members=("*",), licence="MIT", modality="CT",
               pip_url="https://files.example.org/x.tar.gz")


def test_file_weighted_bank_draws_each_file_equally():
    images = [torch.zeros(1, 40, 40)] * 6 + [torch.zeros(1, 80, 80)]
    bank, weights = file_weighted_bank(images, ["volume"] * 6 + ["dicom"], crop=32, scales=(1.0, 0.5))
    assert len(bank) == 6 + 2
    assert weights[:6].sum() == pytest.approx(1.0) and weights[6:].sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="files"):
        file_weighted_bank(images, ["a"], crop=32)


def test_training_reads_the_cache_train_split(world, monkeypatch):
    from priors.train import make_data

    monkeypatch.setenv("DIFFUSION_RESTORE_CACHE", str(world["cache"].parent))
    monkeypatch.setattr(ds, "MANIFEST", world["manifest"])
    batch_maker, channels = make_data("cache:medical", 8)
    x = batch_maker(5, torch.Generator().manual_seed(0))
    assert channels == 1 and x.shape == (5, 1, 8, 8) and 0 <= x.min() and x.max() <= 1
    torch.testing.assert_close(x, batch_maker(5, torch.Generator().manual_seed(0)))
    batch_maker, channels = make_data("cache:natural", 16)
    assert channels == 3 and batch_maker(2, torch.Generator().manual_seed(1)).shape == (2, 3, 16, 16)


def test_card_of_a_cache_run_names_the_data_it_saw(world, monkeypatch, tmp_path):
    from priors.train import train

    monkeypatch.setenv("DIFFUSION_RESTORE_CACHE", str(world["cache"].parent))
    monkeypatch.setattr(ds, "MANIFEST", world["manifest"])
    tiny = dict(name="tiny", data="cache:medical", size=8, batch=2, steps=2, lr_warmup=1, channels=8,
                channel_mult=[1, 2], num_blocks=1, emb_dim=16, groups=4, checkpoint_every=2, bf16=False)
    train(tiny, tmp_path / "run", progress=False)
    seen = json.loads((tmp_path / "run" / "tiny.json").read_text())["train"]["data_manifest"]
    train_files = [e for e in world["files"] if e["family"] == "medical" and e["split"] == "train"]
    assert seen["files"] == len(train_files) and seen["images"] == sum(len(e["images"]) for e in train_files)
    assert seen["sources"] == {"tiny-medical": ["MIT"], "tiny-volumes": ["MIT"]} and len(seen["files_sha256"]) == 64


def test_bundled_medical_slices_come_from_held_out_files_only():
    """The medical slices shipped in priors/testsets name their source file, and that file is in the
    manifest's test split (so the medical prior never saw it) with the same sha256."""
    from priors import testsets
    from priors.data_sources import BUNDLED_MEDICAL, MANIFEST

    record = json.loads((Path(testsets.__file__).parent / "medical.json").read_text())
    assert set(record) == set(BUNDLED_MEDICAL)
    files = json.loads(MANIFEST.read_text())["files"]
    for name, info in record.items():
        entry = next(e for e in files if e["source"] == info["source"] and e["path"] == info["path"])
        assert entry["split"] == "test" and entry["sha256"] == info["sha256"], name
        assert any(rel.endswith("/" + info["slice"]) for rel in entry["images"]), name
    for set_name in ("medical_ct", "medical_mr"):
        for _, image in testsets.load_testset(set_name, size=64):
            assert image.shape == (1, 64, 64) and 0 <= image.min() < image.max() <= 1


def test_bundle_testset_refuses_a_training_file(tmp_path, monkeypatch):
    from priors import data_sources

    monkeypatch.setitem(data_sources.BUNDLED_MEDICAL, "leak",
                        ("pydicom-data", "data_store/data/MR2_UNCR.dcm", "frame000.png"))
    with pytest.raises(ValueError, match="not a test file"):
        data_sources.bundle_testset(tmp_path, size=32)
