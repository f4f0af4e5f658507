"""Class names, colours and thing/stuff split of the datasets PEM is trained on (torch-free data).

Contiguous class index ``i`` (what the model predicts) maps to ``dataset_ids[i]``, the id the dataset's own
files use: Cityscapes labelIds, ADE20K category ids (1-based in the PNGs), COCO panoptic category ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Color = tuple[int, int, int]


@dataclass(frozen=True)
class DatasetMeta:
    """Args:
    name: short name used in preset names.
    classes: class names by contiguous index.
    palette: RGB colour per class.
    thing_ids: contiguous indices of "thing" classes (countable objects); the rest are "stuff".
    dataset_ids: the dataset's own id for each contiguous index.
    ignore_label: label-map value that marks unlabelled pixels.
    """

    name: str
    classes: tuple[str, ...]
    palette: tuple[Color, ...]
    thing_ids: tuple[int, ...]
    dataset_ids: tuple[int, ...]
    ignore_label: int = 255

    def __post_init__(self) -> None:
        n = len(self.classes)
        if len(self.palette) != n or len(self.dataset_ids) != n:
            raise ValueError(f"{self.name}: classes, palette and dataset_ids must have the same length")
        if any(not 0 <= t < n for t in self.thing_ids):
            raise ValueError(f"{self.name}: thing_ids out of range")

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "classes": list(self.classes),
            "palette": [list(c) for c in self.palette],
            "thing_ids": list(self.thing_ids),
            "dataset_ids": list(self.dataset_ids),
            "ignore_label": self.ignore_label,
        }

    @staticmethod
    def from_dict(d: dict[str, object]) -> DatasetMeta:
        """Inverse of :meth:`to_dict`; a stored mapping of the wrong shape or types is a ValueError."""
        if not isinstance(d, dict):
            raise ValueError("dataset is not a mapping")
        classes, palette = _list(d["classes"], "classes"), _list(d["palette"], "palette")
        if not classes or not all(isinstance(c, str) for c in classes):
            raise ValueError("dataset.classes must be a non-empty list of names")
        if not all(
            isinstance(c, list | tuple) and len(c) == 3 and all(_is_int(v, 0, 255) for v in c)
            for c in palette
        ):
            raise ValueError("dataset.palette must hold one [R, G, B] of 0..255 per class")
        ids = {k: _list(d[k], k) for k in ("thing_ids", "dataset_ids")}
        if not all(_is_int(v, 0, 1 << 31) for k in ids for v in ids[k]):
            raise ValueError("dataset.thing_ids and dataset.dataset_ids must hold non-negative whole numbers")
        ignore = d.get("ignore_label", 255)
        if not _is_int(ignore, 0, 1 << 31):
            raise ValueError("dataset.ignore_label must be a non-negative whole number")
        if not isinstance(d["name"], str):
            raise ValueError("dataset.name must be a string")
        return DatasetMeta(
            name=d["name"],
            classes=tuple(classes),
            palette=tuple((c[0], c[1], c[2]) for c in palette),
            thing_ids=tuple(ids["thing_ids"]),
            dataset_ids=tuple(ids["dataset_ids"]),
            ignore_label=ignore,  # type: ignore[arg-type]
        )


def _list(value: object, key: str) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise ValueError(f"dataset.{key} must be a list")
    return list(value)


def _is_int(value: object, low: int, high: int) -> bool:
    return type(value) is int and low <= value <= high


# Cityscapes: the 19 evaluated classes (trainIds 0..18) with their labelIds and official colours.
_CITYSCAPES_ROWS: tuple[tuple[int, str, int, Color], ...] = (
    (7, "road", 0, (128, 64, 128)),
    (8, "sidewalk", 0, (244, 35, 232)),
    (11, "building", 0, (70, 70, 70)),
    (12, "wall", 0, (102, 102, 156)),
    (13, "fence", 0, (190, 153, 153)),
    (17, "pole", 0, (153, 153, 153)),
    (19, "traffic light", 0, (250, 170, 30)),
    (20, "traffic sign", 0, (220, 220, 0)),
    (21, "vegetation", 0, (107, 142, 35)),
    (22, "terrain", 0, (152, 251, 152)),
    (23, "sky", 0, (70, 130, 180)),
    (24, "person", 1, (220, 20, 60)),
    (25, "rider", 1, (255, 0, 0)),
    (26, "car", 1, (0, 0, 142)),
    (27, "truck", 1, (0, 0, 70)),
    (28, "bus", 1, (0, 60, 100)),
    (31, "train", 1, (0, 80, 100)),
    (32, "motorcycle", 1, (0, 0, 230)),
    (33, "bicycle", 1, (119, 11, 32)),
)

# ADE20K SceneParsing 150 classes (category id = index + 1), colours and things as in the
# ADE20K panoptic annotations.
_ADE20K_ROWS: tuple[tuple[str, int, Color], ...] = (
    ("wall", 0, (120, 120, 120)),
    ("building", 0, (180, 120, 120)),
    ("sky", 0, (6, 230, 230)),
    ("floor", 0, (80, 50, 50)),
    ("tree", 0, (4, 200, 3)),
    ("ceiling", 0, (120, 120, 80)),
    ("road", 0, (140, 140, 140)),
    ("bed", 1, (204, 5, 255)),
    ("window", 1, (230, 230, 230)),
    ("grass", 0, (4, 250, 7)),
    ("cabinet", 1, (224, 5, 255)),
    ("sidewalk", 0, (235, 255, 7)),
    ("person", 1, (150, 5, 61)),
    ("earth", 0, (120, 120, 70)),
    ("door", 1, (8, 255, 51)),
    ("table", 1, (255, 6, 82)),
    ("mountain", 0, (143, 255, 140)),
    ("plant", 0, (204, 255, 4)),
    ("curtain", 1, (255, 51, 7)),
    ("chair", 1, (204, 70, 3)),
    ("car", 1, (0, 102, 200)),
    ("water", 0, (61, 230, 250)),
    ("painting", 1, (255, 6, 51)),
    ("sofa", 1, (11, 102, 255)),
    ("shelf", 1, (255, 7, 71)),
    ("house", 0, (255, 9, 224)),
    ("sea", 0, (9, 7, 230)),
    ("mirror", 1, (220, 220, 220)),
    ("rug", 0, (255, 9, 92)),
    ("field", 0, (112, 9, 255)),
    ("armchair", 1, (8, 255, 214)),
    ("seat", 1, (7, 255, 224)),
    ("fence", 1, (255, 184, 6)),
    ("desk", 1, (10, 255, 71)),
    ("rock", 0, (255, 41, 10)),
    ("wardrobe", 1, (7, 255, 255)),
    ("lamp", 1, (224, 255, 8)),
    ("tub", 1, (102, 8, 255)),
    ("rail", 1, (255, 61, 6)),
    ("cushion", 1, (255, 194, 7)),
    ("base", 0, (255, 122, 8)),
    ("box", 1, (0, 255, 20)),
    ("column", 1, (255, 8, 41)),
    ("signboard", 1, (255, 5, 153)),
    ("chest of drawers", 1, (6, 51, 255)),
    ("counter", 1, (235, 12, 255)),
    ("sand", 0, (160, 150, 20)),
    ("sink", 1, (0, 163, 255)),
    ("skyscraper", 0, (140, 140, 140)),
    ("fireplace", 1, (250, 10, 15)),
    ("refrigerator", 1, (20, 255, 0)),
    ("grandstand", 0, (31, 255, 0)),
    ("path", 0, (255, 31, 0)),
    ("stairs", 1, (255, 224, 0)),
    ("runway", 0, (153, 255, 0)),
    ("case", 1, (0, 0, 255)),
    ("pool table", 1, (255, 71, 0)),
    ("pillow", 1, (0, 235, 255)),
    ("screen door", 1, (0, 173, 255)),
    ("stairway", 0, (31, 0, 255)),
    ("river", 0, (11, 200, 200)),
    ("bridge", 0, (255, 82, 0)),
    ("bookcase", 1, (0, 255, 245)),
    ("blind", 0, (0, 61, 255)),
    ("coffee table", 1, (0, 255, 112)),
    ("toilet", 1, (0, 255, 133)),
    ("flower", 1, (255, 0, 0)),
    ("book", 1, (255, 163, 0)),
    ("hill", 0, (255, 102, 0)),
    ("bench", 1, (194, 255, 0)),
    ("countertop", 1, (0, 143, 255)),
    ("stove", 1, (51, 255, 0)),
    ("palm", 1, (0, 82, 255)),
    ("kitchen island", 1, (0, 255, 41)),
    ("computer", 1, (0, 255, 173)),
    ("swivel chair", 1, (10, 0, 255)),
    ("boat", 1, (173, 255, 0)),
    ("bar", 0, (0, 255, 153)),
    ("arcade machine", 1, (255, 92, 0)),
    ("hovel", 0, (255, 0, 255)),
    ("bus", 1, (255, 0, 245)),
    ("towel", 1, (255, 0, 102)),
    ("light", 1, (255, 173, 0)),
    ("truck", 1, (255, 0, 20)),
    ("tower", 0, (255, 184, 184)),
    ("chandelier", 1, (0, 31, 255)),
    ("awning", 1, (0, 255, 61)),
    ("street lamp", 1, (0, 71, 255)),
    ("booth", 1, (255, 0, 204)),
    ("tv", 1, (0, 255, 194)),
    ("plane", 1, (0, 255, 82)),
    ("dirt track", 0, (0, 10, 255)),
    ("clothes", 1, (0, 112, 255)),
    ("pole", 1, (51, 0, 255)),
    ("land", 0, (0, 194, 255)),
    ("bannister", 1, (0, 122, 255)),
    ("escalator", 0, (0, 255, 163)),
    ("ottoman", 1, (255, 153, 0)),
    ("bottle", 1, (0, 255, 10)),
    ("buffet", 0, (255, 112, 0)),
    ("poster", 0, (143, 255, 0)),
    ("stage", 0, (82, 0, 255)),
    ("van", 1, (163, 255, 0)),
    ("ship", 1, (255, 235, 0)),
    ("fountain", 1, (8, 184, 170)),
    ("conveyer belt", 0, (133, 0, 255)),
    ("canopy", 0, (0, 255, 92)),
    ("washer", 1, (184, 0, 255)),
    ("plaything", 1, (255, 0, 31)),
    ("pool", 0, (0, 184, 255)),
    ("stool", 1, (0, 214, 255)),
    ("barrel", 1, (255, 0, 112)),
    ("basket", 1, (92, 255, 0)),
    ("falls", 0, (0, 224, 255)),
    ("tent", 0, (112, 224, 255)),
    ("bag", 1, (70, 184, 160)),
    ("minibike", 1, (163, 0, 255)),
    ("cradle", 0, (153, 0, 255)),
    ("oven", 1, (71, 255, 0)),
    ("ball", 1, (255, 0, 163)),
    ("food", 1, (255, 204, 0)),
    ("step", 1, (255, 0, 143)),
    ("tank", 0, (0, 255, 235)),
    ("trade name", 1, (133, 255, 0)),
    ("microwave", 1, (255, 0, 235)),
    ("pot", 1, (245, 0, 255)),
    ("animal", 1, (255, 0, 122)),
    ("bicycle", 1, (255, 245, 0)),
    ("lake", 0, (10, 190, 212)),
    ("dishwasher", 1, (214, 255, 0)),
    ("screen", 1, (0, 204, 255)),
    ("blanket", 0, (20, 0, 255)),
    ("sculpture", 1, (255, 255, 0)),
    ("hood", 1, (0, 153, 255)),
    ("sconce", 1, (0, 41, 255)),
    ("vase", 1, (0, 255, 204)),
    ("traffic light", 1, (41, 0, 255)),
    ("tray", 1, (41, 255, 0)),
    ("trash can", 1, (173, 0, 255)),
    ("fan", 1, (0, 245, 255)),
    ("pier", 0, (71, 0, 255)),
    ("crt screen", 0, (122, 0, 255)),
    ("plate", 1, (0, 255, 184)),
    ("monitor", 1, (0, 92, 255)),
    ("bulletin board", 1, (184, 255, 0)),
    ("shower", 0, (0, 133, 255)),
    ("radiator", 1, (255, 214, 0)),
    ("glass", 1, (25, 194, 194)),
    ("clock", 1, (102, 255, 0)),
    ("flag", 1, (92, 0, 255)),
)

# COCO panoptic: 80 things + 53 stuff with their category ids and panopticapi colours.
_COCO_PANOPTIC_ROWS: tuple[tuple[int, str, int, Color], ...] = (
    (1, "person", 1, (220, 20, 60)),
    (2, "bicycle", 1, (119, 11, 32)),
    (3, "car", 1, (0, 0, 142)),
    (4, "motorcycle", 1, (0, 0, 230)),
    (5, "airplane", 1, (106, 0, 228)),
    (6, "bus", 1, (0, 60, 100)),
    (7, "train", 1, (0, 80, 100)),
    (8, "truck", 1, (0, 0, 70)),
    (9, "boat", 1, (0, 0, 192)),
    (10, "traffic light", 1, (250, 170, 30)),
    (11, "fire hydrant", 1, (100, 170, 30)),
    (13, "stop sign", 1, (220, 220, 0)),
    (14, "parking meter", 1, (175, 116, 175)),
    (15, "bench", 1, (250, 0, 30)),
    (16, "bird", 1, (165, 42, 42)),
    (17, "cat", 1, (255, 77, 255)),
    (18, "dog", 1, (0, 226, 252)),
    (19, "horse", 1, (182, 182, 255)),
    (20, "sheep", 1, (0, 82, 0)),
    (21, "cow", 1, (120, 166, 157)),
    (22, "elephant", 1, (110, 76, 0)),
    (23, "bear", 1, (174, 57, 255)),
    (24, "zebra", 1, (199, 100, 0)),
    (25, "giraffe", 1, (72, 0, 118)),
    (27, "backpack", 1, (255, 179, 240)),
    (28, "umbrella", 1, (0, 125, 92)),
    (31, "handbag", 1, (209, 0, 151)),
    (32, "tie", 1, (188, 208, 182)),
    (33, "suitcase", 1, (0, 220, 176)),
    (34, "frisbee", 1, (255, 99, 164)),
    (35, "skis", 1, (92, 0, 73)),
    (36, "snowboard", 1, (133, 129, 255)),
    (37, "sports ball", 1, (78, 180, 255)),
    (38, "kite", 1, (0, 228, 0)),
    (39, "baseball bat", 1, (174, 255, 243)),
    (40, "baseball glove", 1, (45, 89, 255)),
    (41, "skateboard", 1, (134, 134, 103)),
    (42, "surfboard", 1, (145, 148, 174)),
    (43, "tennis racket", 1, (255, 208, 186)),
    (44, "bottle", 1, (197, 226, 255)),
    (46, "wine glass", 1, (171, 134, 1)),
    (47, "cup", 1, (109, 63, 54)),
    (48, "fork", 1, (207, 138, 255)),
    (49, "knife", 1, (151, 0, 95)),
    (50, "spoon", 1, (9, 80, 61)),
    (51, "bowl", 1, (84, 105, 51)),
    (52, "banana", 1, (74, 65, 105)),
    (53, "apple", 1, (166, 196, 102)),
    (54, "sandwich", 1, (208, 195, 210)),
    (55, "orange", 1, (255, 109, 65)),
    (56, "broccoli", 1, (0, 143, 149)),
    (57, "carrot", 1, (179, 0, 194)),
    (58, "hot dog", 1, (209, 99, 106)),
    (59, "pizza", 1, (5, 121, 0)),
    (60, "donut", 1, (227, 255, 205)),
    (61, "cake", 1, (147, 186, 208)),
    (62, "chair", 1, (153, 69, 1)),
    (63, "couch", 1, (3, 95, 161)),
    (64, "potted plant", 1, (163, 255, 0)),
    (65, "bed", 1, (119, 0, 170)),
    (67, "dining table", 1, (0, 182, 199)),
    (70, "toilet", 1, (0, 165, 120)),
    (72, "tv", 1, (183, 130, 88)),
    (73, "laptop", 1, (95, 32, 0)),
    (74, "mouse", 1, (130, 114, 135)),
    (75, "remote", 1, (110, 129, 133)),
    (76, "keyboard", 1, (166, 74, 118)),
    (77, "cell phone", 1, (219, 142, 185)),
    (78, "microwave", 1, (79, 210, 114)),
    (79, "oven", 1, (178, 90, 62)),
    (80, "toaster", 1, (65, 70, 15)),
    (81, "sink", 1, (127, 167, 115)),
    (82, "refrigerator", 1, (59, 105, 106)),
    (84, "book", 1, (142, 108, 45)),
    (85, "clock", 1, (196, 172, 0)),
    (86, "vase", 1, (95, 54, 80)),
    (87, "scissors", 1, (128, 76, 255)),
    (88, "teddy bear", 1, (201, 57, 1)),
    (89, "hair drier", 1, (246, 0, 122)),
    (90, "toothbrush", 1, (191, 162, 208)),
    (92, "banner", 0, (255, 255, 128)),
    (93, "blanket", 0, (147, 211, 203)),
    (95, "bridge", 0, (150, 100, 100)),
    (100, "cardboard", 0, (168, 171, 172)),
    (107, "counter", 0, (146, 112, 198)),
    (109, "curtain", 0, (210, 170, 100)),
    (112, "door-stuff", 0, (92, 136, 89)),
    (118, "floor-wood", 0, (218, 88, 184)),
    (119, "flower", 0, (241, 129, 0)),
    (122, "fruit", 0, (217, 17, 255)),
    (125, "gravel", 0, (124, 74, 181)),
    (128, "house", 0, (70, 70, 70)),
    (130, "light", 0, (255, 228, 255)),
    (133, "mirror-stuff", 0, (154, 208, 0)),
    (138, "net", 0, (193, 0, 92)),
    (141, "pillow", 0, (76, 91, 113)),
    (144, "platform", 0, (255, 180, 195)),
    (145, "playingfield", 0, (106, 154, 176)),
    (147, "railroad", 0, (230, 150, 140)),
    (148, "river", 0, (60, 143, 255)),
    (149, "road", 0, (128, 64, 128)),
    (151, "roof", 0, (92, 82, 55)),
    (154, "sand", 0, (254, 212, 124)),
    (155, "sea", 0, (73, 77, 174)),
    (156, "shelf", 0, (255, 160, 98)),
    (159, "snow", 0, (255, 255, 255)),
    (161, "stairs", 0, (104, 84, 109)),
    (166, "tent", 0, (169, 164, 131)),
    (168, "towel", 0, (225, 199, 255)),
    (171, "wall-brick", 0, (137, 54, 74)),
    (175, "wall-stone", 0, (135, 158, 223)),
    (176, "wall-tile", 0, (7, 246, 231)),
    (177, "wall-wood", 0, (107, 255, 200)),
    (178, "water-other", 0, (58, 41, 149)),
    (180, "window-blind", 0, (183, 121, 142)),
    (181, "window-other", 0, (255, 73, 97)),
    (184, "tree-merged", 0, (107, 142, 35)),
    (185, "fence-merged", 0, (190, 153, 153)),
    (186, "ceiling-merged", 0, (146, 139, 141)),
    (187, "sky-other-merged", 0, (70, 130, 180)),
    (188, "cabinet-merged", 0, (134, 199, 156)),
    (189, "table-merged", 0, (209, 226, 140)),
    (190, "floor-other-merged", 0, (96, 36, 108)),
    (191, "pavement-merged", 0, (96, 96, 96)),
    (192, "mountain-merged", 0, (64, 170, 64)),
    (193, "grass-merged", 0, (152, 251, 152)),
    (194, "dirt-merged", 0, (208, 229, 228)),
    (195, "paper-merged", 0, (206, 186, 171)),
    (196, "food-other-merged", 0, (152, 161, 64)),
    (197, "building-other-merged", 0, (116, 112, 0)),
    (198, "rock-merged", 0, (0, 114, 143)),
    (199, "wall-other-merged", 0, (102, 102, 156)),
    (200, "rug-merged", 0, (250, 141, 255)),
)


def _meta(name: str, rows: tuple[tuple[int, str, int, Color], ...]) -> DatasetMeta:
    return DatasetMeta(
        name=name,
        classes=tuple(r[1] for r in rows),
        palette=tuple(r[3] for r in rows),
        thing_ids=tuple(i for i, r in enumerate(rows) if r[2]),
        dataset_ids=tuple(r[0] for r in rows),
    )


CITYSCAPES = _meta("cityscapes", _CITYSCAPES_ROWS)
ADE20K = _meta("ade20k", tuple((i + 1, n, t, c) for i, (n, t, c) in enumerate(_ADE20K_ROWS)))
COCO_PANOPTIC = _meta("coco-panoptic", _COCO_PANOPTIC_ROWS)
DATASETS: dict[str, DatasetMeta] = {m.name: m for m in (CITYSCAPES, ADE20K, COCO_PANOPTIC)}
