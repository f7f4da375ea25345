"""The exact test images of the published protocols, as data: each split names its files and its source.

A split is either a list of file stems in the protocol's order (``names``), matched anywhere under the
user's folder whatever its layout (FFHQ's flat ``00000.png`` or its ``00000/00000.png`` folders, ImageNet
validation flat or in class folders, any image extension), or, when the protocol ships its images as an
archive without a list, "the first ``count`` images of that archive sorted by path" (``names is None``),
as the official loader reads them. :func:`benchmarks.datasets.image_folder` takes ``split=NAME`` and
fails with the missing file names when the folder lacks any of the images it will use.

``SPLITS`` is the registry; to add one, write its stems (or its count) and its source here.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Split", "SPLITS", "get_split"]


@dataclass(frozen=True)
class Split:
    """The images of one protocol.

    :param names: file stems (no folder, no extension) in the protocol's order; ``None``: the first
        ``count`` files, sorted by relative path, with one of ``extensions`` (an archive the protocol
        distributes without a list).
    :param count: how many images the protocol uses.
    :param source: where the list (or the archive and its reading rule) comes from.
    :param layout: how the images are usually laid out (for error messages).
    """

    name: str
    names: tuple[str, ...] | None
    count: int
    source: str
    layout: str
    extensions: tuple[str, ...] = (".png", ".jpg", ".jpeg")

    def describe(self) -> dict:
        """A JSON summary: name, count, the first and last names (or the reading rule), source."""
        images = (f"the first {self.count} files sorted by path" if self.names is None
                  else f"{self.names[0]} .. {self.names[-1]}")
        return {"name": self.name, "count": self.count, "images": images, "source": self.source}


def _imagenet(numbers: list[int]) -> tuple[str, ...]:
    return tuple(f"ILSVRC2012_val_{n:08d}" for n in numbers)


# RED-diff's ImageNet subset (the DGP top-1k list: one validation image per class, in class order).
_DGP_TOP1K = [
    293, 236, 2338, 2922, 1676, 921, 1935, 329, 1114, 1031, 651, 570, 873, 247, 414, 1598, 198, 880,
    476, 837, 962, 73, 128, 18, 318, 225, 498, 258, 88, 52, 1652, 944, 37, 404, 791, 229, 2832, 362,
    3904, 153, 1931, 908, 3821, 297, 1022, 1475, 64, 1375, 541, 1573, 90, 2051, 3569, 1042, 2568,
    29, 512, 6, 84, 1108, 337, 786, 688, 3143, 298, 1, 1582, 749, 1706, 299, 107, 1007, 1037, 2688,
    40, 1150, 396, 218, 679, 3981, 75, 860, 2539, 1461, 1146, 3015, 576, 1629, 1163, 1288, 1749,
    370, 51, 2100, 2974, 2326, 952, 415, 2309, 547, 466, 67, 319, 189, 655, 970, 1933, 63, 17, 11,
    3054, 836, 781, 1268, 546, 154, 689, 1356, 195, 2684, 818, 238, 111, 2152, 1381, 231, 669, 690,
    1068, 43, 356, 794, 1067, 363, 389, 2126, 3399, 825, 1073, 1800, 177, 470, 98, 548, 3147, 1056,
    207, 16, 545, 72, 33, 1049, 462, 457, 1069, 907, 613, 1389, 170, 77, 82, 838, 599, 141, 1097,
    327, 511, 28, 1267, 1626, 1765, 1825, 1846, 22, 2328, 79, 263, 405, 1385, 248, 191, 883, 832,
    62, 588, 391, 612, 696, 1001, 2194, 474, 3002, 379, 1564, 279, 350, 176, 2573, 44, 411, 802,
    105, 748, 2784, 1481, 824, 1434, 1112, 375, 668, 1070, 2323, 172, 161, 708, 227, 643, 665, 2298,
    524, 539, 1693, 507, 533, 1109, 3176, 4938, 113, 383, 2247, 3, 3480, 672, 203, 3623, 946, 134,
    4386, 531, 2708, 594, 1005, 635, 975, 4506, 1313, 1408, 1937, 178, 729, 269, 1702, 2267, 1344,
    220, 1203, 45, 174, 590, 57, 355, 658, 1568, 1096, 997, 147, 867, 399, 719, 530, 27, 3172, 156,
    604, 1148, 78, 133, 157, 756, 1335, 323, 1341, 796, 130, 211, 709, 12, 898, 600, 186, 610, 1359,
    303, 348, 871, 592, 1498, 1745, 518, 779, 361, 625, 956, 926, 510, 342, 692, 1570, 1763, 1876,
    407, 125, 1873, 1585, 1082, 772, 2649, 3032, 1466, 418, 639, 1187, 810, 1290, 31, 581, 1536,
    1161, 138, 301, 97, 644, 10, 617, 7, 502, 675, 3202, 565, 179, 2070, 478, 2006, 136, 1066, 1280,
    306, 2433, 1027, 100, 444, 1232, 127, 3125, 2271, 343, 723, 2028, 55, 326, 1407, 181, 726, 2448,
    1442, 1535, 93, 553, 3388, 87, 13, 964, 486, 95, 1254, 1095, 206, 520, 2450, 3118, 340, 3812,
    2011, 92, 1025, 597, 1177, 2863, 481, 312, 66, 2364, 124, 1176, 50, 1975, 196, 699, 38, 1285,
    851, 204, 1416, 289, 631, 1602, 932, 1910, 998, 1011, 2391, 771, 422, 268, 459, 8, 494, 1731,
    721, 400, 315, 272, 4406, 759, 76, 234, 287, 687, 2509, 1468, 1517, 354, 1090, 1013, 1384, 2563,
    175, 483, 253, 1048, 654, 3782, 1103, 1252, 953, 239, 3446, 917, 514, 193, 601, 763, 906, 3274,
    879, 634, 1354, 126, 1145, 808, 358, 80, 2937, 226, 558, 366, 562, 71, 56, 302, 2596, 392, 347,
    101, 61, 213, 74, 1041, 19, 85, 580, 353, 557, 122, 402, 3491, 108, 89, 376, 1094, 2280, 537,
    1168, 162, 1601, 346, 1908, 3351, 86, 564, 1426, 750, 1500, 344, 164, 1940, 915, 4971, 321,
    1190, 403, 1201, 678, 2171, 766, 1875, 5, 20, 1689, 1411, 3036, 534, 249, 1337, 730, 330, 777,
    1246, 137, 493, 3643, 339, 241, 256, 698, 2489, 1729, 2266, 1868, 1893, 504, 1609, 542, 1045,
    182, 942, 374, 1699, 199, 419, 1545, 624, 1256, 132, 288, 764, 743, 445, 140, 1616, 2562, 1579,
    1018, 2799, 2945, 47, 957, 516, 641, 1144, 2290, 732, 311, 32, 2314, 1116, 913, 1052, 780, 662,
    295, 852, 372, 169, 190, 856, 35, 887, 60, 876, 149, 54, 367, 1030, 448, 15, 2436, 2822, 387,
    1784, 575, 776, 1827, 752, 1943, 647, 208, 308, 110, 659, 219, 607, 281, 969, 900, 686, 2377,
    2627, 684, 427, 151, 384, 359, 1977, 715, 556, 3417, 185, 664, 984, 385, 1814, 109, 999, 760,
    1229, 221, 152, 117, 1420, 2223, 710, 1796, 608, 259, 120, 118, 163, 1318, 382, 1982, 519, 3199,
    1170, 314, 1192, 1722, 700, 1574, 173, 254, 2010, 222, 670, 119, 717, 168, 923, 680, 859, 1892,
    1659, 2082, 803, 9, 365, 277, 649, 243, 850, 540, 677, 2278, 1464, 521, 1380, 114, 166, 1016,
    1961, 1581, 549, 2069, 3004, 264, 265, 360, 1424, 3804, 681, 1833, 1440, 240, 192, 201, 96,
    1665, 335, 2193, 1265, 4441, 1754, 465, 489, 1365, 834, 626, 49, 121, 1023, 112, 438, 428, 991,
    966, 46, 144, 24, 722, 1853, 292, 2729, 765, 334, 452, 4159, 2385, 1970, 1919, 458, 589, 230,
    2985, 2554, 468, 1253, 454, 2782, 1343, 1345, 260, 135, 1786, 770, 1346, 2046, 42, 14, 473,
    1085, 331, 275, 591, 158, 244, 421, 1625, 453, 1497, 1210, 1465, 143, 2068, 792, 2426, 442, 614,
    39, 1091, 1736, 94, 167, 1269, 1639, 310, 1792, 377, 232, 83, 159, 629, 1316, 2065, 2394, 527,
    568, 550, 1395, 266, 2286, 857, 508, 131, 767, 3585, 2349, 936, 897, 2335, 4, 1672, 4382, 559,
    1587, 901, 2128, 349, 1247, 345, 1388, 544, 271, 842, 1183, 1059, 171, 290, 205, 1470, 714, 535,
    1811, 522, 595, 380, 2015, 413, 815, 1102, 778, 701, 70, 65, 1086, 53, 2160, 26, 2120, 627, 464,
    602, 1532, 123, 3312, 2206, 1263, 416, 1160, 30, 737, 561, 449, 1008, 525, 671, 261, 294, 187,
    513, 291, 69, 1519, 59, 1325, 573, 146, 874, 1750, 104, 381, 2599, 284, 712, 895, 1002, 433,
    1881, 36, 296, 212, 1680, 797, 4307, 866, 482, 369, 538, 280, 745, 286, 586, 2867, 497, 854,
    351, 587, 106, 805, 1901, 1328, 2685, 1208, 437, 1034, 3145, 460, 830, 985, 2362, 903, 274, 980,
    209, 1611, 728, 267, 1512, 620, 574, 2619, 820, 1405, 891, 2226, 129, 183, 1826, 155, 332, 554,
    461, 1932, 674, 463, 443, 423, 881, 2490, 23, 99, 1406, 711, 2124, 1479, 605, 691, 798, 1514,
    816, 116, 782, 543, 1115, 773, 491, 572, 1064, 2934, 1726, 139, 2, 697, 1444, 235, 394, 150,
    2476, 145, 214, 313, 2103, 34, 341, 255, 216, 4514, 551, 484, 1058, 251, 1120, 304, 731, 200,
    58, 755, 2167, 1362, 408, 1079
]

# DiffPIR's ImageNet validation subset.
_DIFFPIR_IMAGENET = [
    1, 11, 22, 33, 44, 55, 65, 76, 87, 98, 110, 121, 131, 153, 164, 175, 187, 200, 212, 226, 239,
    254, 266, 280, 293, 304, 319, 335, 347, 359, 372, 384, 402, 416, 438, 457, 468, 486, 502, 508,
    521, 537, 547, 559, 575, 592, 607, 626, 647, 668, 680, 696, 712, 729, 752, 770, 782, 805, 832,
    856, 879, 901, 926, 962, 997, 1016, 1041, 1066, 1090, 1112, 1160, 1192, 1253, 1288, 1343, 1380,
    1408, 1461, 1498, 1564, 1598, 1652, 1706, 1763, 1826, 1892, 1937, 2011, 2100, 2193, 2280, 2338,
    2436, 2563, 2688, 2922, 3036, 3202, 3569, 4159
]

_FFHQ = "FFHQ at 256x256 (a flat folder 00000.png ... 69999.png, or FFHQ's own 00000/ ... 69000/ folders)"
_IMAGENET = "ILSVRC2012 validation images (flat, or in class folders as torchvision's ImageFolder wants)"

#: name -> split
SPLITS: dict[str, Split] = {s.name: s for s in (
    Split("ffhq_first1k", tuple(f"{i:05d}" for i in range(1000)), 1000,
          "DPS2022/diffusion-posterior-sampling issue #4, the authors' answer (2022-12-13): the first 1k "
          "FFHQ images (00000-00999) are the validation set, held out of the FFHQ checkpoint's training",
          _FFHQ),
    Split("ffhq_diffpir100", tuple(f"{i:05d}" for i in range(69007, 70000, 10)), 100,
          "yuanzhi-zhu/DiffPIR@111d26e:testsets/ffhq_val_100/ffhq_val_100.txt (69007, 69017, ..., 69997)",
          _FFHQ),
    Split("imagenet_diffpir100", _imagenet(_DIFFPIR_IMAGENET), 100,
          "yuanzhi-zhu/DiffPIR@111d26e:testsets/imagenet_val_100/imagenet_val_100.txt", _IMAGENET),
    Split("imagenet_dgp1k", _imagenet(_DGP_TOP1K), 1000,
          "NVlabs/RED-diff@66482f2:playground/dgp_top1k.txt (named by _configs/dataset/imagenet256_val.yaml "
          "subset_txt), in the list's order", _IMAGENET),
    Split("ffhq_daps100", None, 100,
          "zhangbingliang2019/DAPS@098df6b:configs/data/test-ffhq.yaml (start_id 0, end_id 100) over "
          "data.py's sorted rglob of the README's test-ffhq.zip (Google Drive id 1IzbnLWPpuIw6Z2E4IKrRByh6ihDE5QLO); "
          "the archive's file names are not published in the repository",
          "the unpacked test-ffhq folder of DAPS's README"),
    Split("imagenet_daps100", None, 100,
          "zhangbingliang2019/DAPS@098df6b:configs/data/test-imagenet.yaml (start_id 0, end_id 100) over "
          "data.py's sorted rglob of the README's test-imagenet.zip (Google Drive id 1pqVO-LYrRRL4bVxUidvy-Eb22edpuFCs); "
          "the archive's file names are not published in the repository",
          "the unpacked test-imagenet folder of DAPS's README"),
)}


def get_split(name: str) -> Split:
    """The split called ``name``; ValueError naming the known ones otherwise."""
    if name not in SPLITS:
        raise ValueError(f"split: expected one of {', '.join(SPLITS)}, got {name!r}")
    return SPLITS[name]
