"""What a data set folder holds, recognised from the folder: class names, colours, where the images,
masks and split lists are, and how to read a mask. Every part of the project reads this description.

    layout = describe("data/")           # VOC-aug, a labelme or CVAT export, or the plain layout
    layout.class_names, layout.colors    # index order; colors: uint8 array num_classes x 3
    ids = layout.split_ids("train")      # from the split list, or held out by a hash of each id
    mask = layout.read_mask(path)        # uint8 HxW: class index, IGNORE_INDEX = not scored

Layouts (README, "Train on your own data"):

    VOC-aug   VOCdevkit/VOC2012/{JPEGImages, SegmentationClassAug, ImageSets/Segmentation/*.txt}
    labelme   class_names.txt, JPEGImages/, SegmentationClassPNG/ or SegmentationClass/ (palette PNGs)
    CVAT      labelmap.txt, JPEGImages/, SegmentationClass/ (RGB PNGs), ImageSets/Segmentation/*.txt
    plain     classes.txt, images/, masks/ (index PNGs), splits/*.txt
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from utils import UserError

IGNORE_INDEX = 255  # "void" in every mask as loaded: never trained on, never scored
VAL_FRACTION = 0.1  # held out for validation when a data set has no split lists
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm"}
YOUR_OWN_DATA = "README, 'Train on your own data'"


def voc_colormap() -> np.ndarray:
    """The PASCAL VOC colour map (also labelme's): uint8 array 256x3, row i = RGB colour of index i."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    for index in range(256):
        c, r, g, b = index, 0, 0, 0
        for shift in range(7, -1, -1):  # spread the index bits over the high bits of r, g, b
            r |= (c & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        palette[index] = (r, g, b)
    return palette


VOC_PALETTE = voc_colormap()  # VOC_PALETTE[255] == (224, 224, 192), VOC's void colour
VOC_CLASS_NAMES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)  # fmt: skip
VOC_NUM_CLASSES = len(VOC_CLASS_NAMES)
VOID_COLOR = tuple(int(v) for v in VOC_PALETTE[IGNORE_INDEX])


def palette(colors: np.ndarray) -> np.ndarray:
    """256x3 uint8 palette: row i = colour of class i, row IGNORE_INDEX = VOC's void colour, rest black."""
    table = np.zeros((256, 3), dtype=np.uint8)
    table[IGNORE_INDEX] = VOID_COLOR
    table[: len(colors)] = colors
    return table


def colorize(mask: np.ndarray, colors: np.ndarray) -> np.ndarray:
    """Class-index mask HxW (any integer dtype) -> RGB uint8 image HxWx3 in the classes' colours."""
    return palette(colors)[np.asarray(mask, dtype=np.int64) & 255]


def invalid_labels(mask: np.ndarray, num_classes: int) -> list[int]:
    """The values of `mask` that are neither a class index (0..num_classes-1) nor IGNORE_INDEX, sorted."""
    if mask.size == 0 or (mask.min() >= 0 and mask.max() < num_classes):  # the common case: no sorting
        return []
    values = np.unique(mask)
    return values[~np.isin(values, [*range(num_classes), IGNORE_INDEX])].tolist()


def indices_from_colors(rgb: np.ndarray, colors: np.ndarray, indices: list[int]) -> tuple[np.ndarray, tuple]:
    """RGB mask HxWx3 -> (uint8 HxW of indices[k] where the pixel has colors[k], the first unknown
    colour as an (r, g, b) tuple, or () when every pixel's colour is listed)."""
    codes = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    known = (colors[:, 0].astype(np.int32) << 16) | (colors[:, 1].astype(np.int32) << 8) | colors[:, 2]
    order = np.argsort(known)
    position = np.searchsorted(known[order], codes).clip(0, len(known) - 1)
    unknown = known[order][position] != codes
    if unknown.any():
        code = int(codes[unknown][0])
        return np.empty(0, np.uint8), (code >> 16 & 255, code >> 8 & 255, code & 255)
    return np.asarray(indices, dtype=np.uint8)[order][position], ()


@dataclass(frozen=True, eq=False)
class DataLayout:
    """One data set on disk. Masks as read hold class indices 0..num_classes-1 and IGNORE_INDEX."""

    kind: str  # "voc-aug", "labelme", "cvat" or "plain"
    root: Path
    class_names: tuple[str, ...]
    colors: np.ndarray  # uint8 num_classes x 3, in class order
    image_dir: Path
    mask_dir: Path
    list_dir: Path  # <split>.txt files: one id a line
    train_split: str  # "trainaug" for VOC-aug, "train" for the others
    rgb_masks: bool  # masks are colours to map through `colors` (CVAT), not class indices
    fix: str  # what to do about a bad mask, for error messages
    all_list: str | None = None  # a list naming every id (CVAT's default.txt), when the layout has one

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def class_table(self) -> dict:
        """Names and colours as plain values, for checkpoints and exported models."""
        return {"names": list(self.class_names), "colors": self.colors.tolist()}

    # Ids and splits

    def split_ids(self, split: str) -> list[str]:
        """The ids of `split`: its list file, or, for a data set without train/val lists, the ids held
        out for "val" (VAL_FRACTION of them, by a hash of each id) or the rest for the train split."""
        path = self.list_dir / f"{split}.txt"
        if path.is_file():
            ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
            if not ids:
                raise UserError(f"split list {path} lists no images: add ids (one per line) or remove it")
            return ids
        if split in (self.train_split, "val") and self.holds_out():
            ids = self.all_ids()
            val = held_out(ids)
            return [i for i in ids if (i in val) == (split == "val")]
        if self.kind == "voc-aug":
            fix = f"prepare the data set with `python tools/voc.py --data_dir {self.root}`"
        elif split in (self.train_split, "val"):
            other = self.list_dir / f"{'val' if split != 'val' else self.train_split}.txt"
            fix = f"write it beside {other}, or remove {other} to hold out {VAL_FRACTION:.0%} of the images"
        else:
            fix = "write it (one id per line) or pick another --val_split"
        raise UserError(f"split file {path} not found: {fix}")

    def holds_out(self) -> bool:
        """True when the data set has neither a train nor a val list: val is then held out by hash."""
        lists = (self.list_dir / f"{self.train_split}.txt", self.list_dir / "val.txt")
        return self.kind != "voc-aug" and not any(p.is_file() for p in lists)

    def all_ids(self) -> list[str]:
        """Every id, sorted: the all-ids list where the layout has one, else the images that have masks
        (an image without a mask or a mask without an image is an error listing the first few)."""
        if self.all_list and (self.list_dir / f"{self.all_list}.txt").is_file():
            return sorted(self.split_ids(self.all_list))
        images = set(self.images_by_id)
        masks = {p.stem for p in self.mask_dir.glob("*.png")}
        for have, lack, what in ((images, masks, "mask"), (masks, images, "image")):
            orphans = sorted(have - lack)
            if orphans:
                folder = self.mask_dir if what == "mask" else self.image_dir
                raise UserError(
                    f"{len(orphans)} {'image' if what == 'mask' else 'mask'}(s) without a {what} in "
                    f"{folder}: {', '.join(orphans[:5])}: add the {what}s or remove the others"
                )
        if not images:
            raise UserError(f"no images in {self.image_dir}: put the images there ({YOUR_OWN_DATA})")
        return sorted(images)

    # Files

    @functools.cached_property
    def images_by_id(self) -> dict[str, Path]:
        """id -> image file in image_dir, whatever its extension (labelme keeps PNG bytes as .jpg)."""
        found: dict[str, Path] = {}
        for path in sorted(self.image_dir.iterdir()) if self.image_dir.is_dir() else []:
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                if path.stem in found:
                    raise UserError(
                        f"{found[path.stem]} and {path} have the same id: rename or remove one of them"
                    )
                found[path.stem] = path
        return found

    def image_path(self, image_id: str) -> Path:
        if self.kind == "voc-aug":  # 17k files: no need to list the folder
            return self.image_dir / f"{image_id}.jpg"
        return self.images_by_id.get(image_id, self.image_dir / f"{image_id}.jpg")

    def mask_path(self, image_id: str) -> Path:
        return self.mask_dir / f"{image_id}.png"

    def read_mask(self, path: Path) -> np.ndarray:
        """uint8 HxW of class indices and IGNORE_INDEX; UserError naming the file and the fix for an
        unreadable mask, an unlisted colour or a value outside the classes."""
        try:
            with Image.open(path) as image:
                if self.rgb_masks:
                    mask, unknown = indices_from_colors(
                        np.asarray(image.convert("RGB")), self.colors, list(range(self.num_classes))
                    )
                    if unknown:
                        raise UserError(
                            f"mask {path} holds colour {unknown}, which {self.root / 'labelmap.txt'} "
                            f"does not list: {self.fix}"
                        )
                    return mask
                mask = np.array(image)
        except OSError as error:
            raise UserError(f"cannot read mask {path}: {error}; {self.fix}") from None
        if mask.ndim != 2:
            raise UserError(
                f"mask {path} has {mask.shape[2]} channels: masks of this layout hold class indices "
                f"(8-bit grayscale or palette PNG); {self.fix}"
            )
        bad = invalid_labels(mask, self.num_classes)
        if bad:
            raise UserError(
                f"mask {path} holds values {bad} outside 0-{self.num_classes - 1} and {IGNORE_INDEX}: "
                f"{self.fix}"
            )
        return mask


def held_out(ids: list[str], fraction: float = VAL_FRACTION) -> set[str]:
    """The ids whose hash falls below `fraction` (at least one): adding ids never moves old ones."""
    score = {i: int.from_bytes(hashlib.sha256(i.encode()).digest()[:8], "big") / 2**64 for i in ids}
    chosen = {i for i in ids if score[i] < fraction}
    return chosen or {min(ids, key=score.__getitem__)}


def read_class_names(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def check_class_names(names: list[str], path: Path) -> tuple[str, ...]:
    if not names:
        raise UserError(f"class list {path} is empty: write one class name per line, in index order")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UserError(f"class list {path} names {duplicates} more than once: each class once, in order")
    if len(names) > IGNORE_INDEX:
        raise UserError(f"class list {path} has {len(names)} classes: at most {IGNORE_INDEX} fit a mask")
    return tuple(names)


def parse_color(text: str, path: Path, line: str) -> tuple[int, int, int]:
    try:
        color = tuple(int(v) for v in text.split(","))
    except ValueError:
        color = ()
    if len(color) != 3 or not all(0 <= v <= 255 for v in color):
        raise UserError(f"{path}: cannot read the colour of line '{line}': write it as r,g,b (0-255)")
    return color


def read_labelmap(path: Path) -> tuple[tuple[str, ...], np.ndarray]:
    """CVAT's labelmap.txt: `name:r,g,b:parts:actions` lines (and # comments) -> names, colours."""
    names, colors = [], []
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split(":")
        if len(fields) < 2:
            raise UserError(f"{path}: cannot read line '{line}': CVAT writes name:r,g,b::")
        names.append(fields[0].strip())
        colors.append(parse_color(fields[1], path, line))
    if not names:
        raise UserError(f"{path} lists no labels: export again with CVAT's 'Segmentation mask 1.1'")
    if len(set(colors)) < len(colors):
        raise UserError(f"{path} gives two labels the same colour: masks could not tell them apart")
    return check_class_names(names, path), np.array(colors, dtype=np.uint8)


def read_plain_classes(path: Path) -> tuple[tuple[str, ...], np.ndarray]:
    """The plain layout's classes.txt: `name` or `name: r,g,b` lines in index order; classes without a
    colour take the VOC colour map's."""
    names, colors = [], []
    for line in (line for line in path.read_text().splitlines() if line.strip()):
        name, _, color = line.partition(":")
        names.append(name.strip())
        colors.append(parse_color(color, path, line) if color.strip() else tuple(VOC_PALETTE[len(colors)]))
    return check_class_names(names, path), np.array(colors, dtype=np.uint8)


def describe(data_dir: Path | str) -> DataLayout:
    """Recognise the layout of `data_dir`; UserError saying what was expected when it is none of them."""
    root = Path(data_dir)
    voc = root / "VOCdevkit" / "VOC2012"
    if voc.is_dir():
        return DataLayout(
            "voc-aug", root, VOC_CLASS_NAMES, VOC_PALETTE[:VOC_NUM_CLASSES].copy(),
            voc / "JPEGImages", voc / "SegmentationClassAug", voc / "ImageSets" / "Segmentation",
            "trainaug", rgb_masks=False, fix=f"re-run `python tools/voc.py --data_dir {root} --force`",
        )  # fmt: skip
    if (root / "class_names.txt").is_file():
        names = check_class_names(read_class_names(root / "class_names.txt"), root / "class_names.txt")
        masks = root / "SegmentationClassPNG"
        return DataLayout(
            "labelme", root, names, VOC_PALETTE[: len(names)].copy(), root / "JPEGImages",
            masks if masks.is_dir() else root / "SegmentationClass", root / "ImageSets" / "Segmentation",
            "train", rgb_masks=False,
            fix=f"re-run labelme2voc.py with every label of {root / 'class_names.txt'} in --labels",
        )  # fmt: skip
    if (root / "labelmap.txt").is_file():
        names, colors = read_labelmap(root / "labelmap.txt")
        if not (root / "JPEGImages").is_dir():
            raise UserError(
                f"{root / 'JPEGImages'} not found: export from CVAT with 'Save images' ticked, or copy "
                "the images there"
            )
        return DataLayout(
            "cvat", root, names, colors, root / "JPEGImages", root / "SegmentationClass",
            root / "ImageSets" / "Segmentation", "train", rgb_masks=True,
            fix="add its label to labelmap.txt (name:r,g,b::) or export the masks from CVAT again",
            all_list="default",
        )  # fmt: skip
    if (root / "classes.txt").is_file():
        names, colors = read_plain_classes(root / "classes.txt")
        return DataLayout(
            "plain", root, names, colors, root / "images", root / "masks", root / "splits", "train",
            rgb_masks=False,
            fix=f"masks hold the line numbers of {root / 'classes.txt'} (0 = first line) and 255 for void",
        )  # fmt: skip
    raise UserError(
        f"no data set found in {root}: for VOC-aug, split file "
        f"{voc / 'ImageSets' / 'Segmentation' / 'trainaug.txt'} is missing (prepare the data set with "
        f"`python tools/voc.py --data_dir {root}`); for your own data, --data_dir must hold a labelme "
        f"export (class_names.txt), a CVAT export (labelmap.txt) or the plain layout (classes.txt): "
        f"{YOUR_OWN_DATA}"
    )


def checkpoint_classes(checkpoint: dict) -> tuple[tuple[str, ...], np.ndarray]:
    """The class names and colours a checkpoint of main.py was trained with (VOC's for checkpoints
    written before checkpoints stored them)."""
    table = checkpoint.get("classes") or {"names": VOC_CLASS_NAMES, "colors": VOC_PALETTE[:VOC_NUM_CLASSES]}
    return tuple(table["names"]), np.asarray(table["colors"], dtype=np.uint8).reshape(-1, 3)


def check_checkpoint_classes(checkpoint: dict, path: Path, layout: DataLayout) -> None:
    """UserError naming both class lists when `checkpoint` was trained on other classes than `layout`'s."""
    names, _ = checkpoint_classes(checkpoint)
    if names != layout.class_names:

        def shown(items: tuple[str, ...]) -> str:
            return ", ".join(items[:6]) + (", ..." if len(items) > 6 else "")

        raise UserError(
            f"checkpoint {path} was trained on {len(names)} classes ({shown(names)}) but data set "
            f"{layout.root} has {layout.num_classes} ({shown(layout.class_names)}): pass the --data_dir "
            "it was trained on, or a checkpoint trained on this data set"
        )
