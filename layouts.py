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
    plain     images/, masks/ (PNG, GIF, TIFF or BMP: <id>.<ext> or <id>_mask.<ext>), classes.txt
              (optional), splits/*.txt (optional)

Mask values (plain layout; the rule of README, "Binary masks"): a classes.txt line `name = value` states
the value a class has in the masks. Otherwise masks hold class indices (line numbers, 255 = void), except
that two listed classes with masks holding only 0 and 255 are 0 and 255. Without classes.txt the classes
are the values found in the masks: two values are background and foreground (0/255, 0/1); more values
are classes in ascending order, 255 void. The rule is printed at the start of a run and stored in the
checkpoint (`values`).
"""

from __future__ import annotations

import functools
import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from utils import UserError

IGNORE_INDEX = 255  # "void" in every mask as loaded: never trained on, never scored
VAL_FRACTION = 0.1  # held out for validation when a data set has no split lists
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm"}
MASK_SUFFIXES = {".png", ".gif", ".tif", ".tiff", ".bmp"}  # lossless formats; JPEG masks are refused
LOSSY_SUFFIXES = {".jpg", ".jpeg", ".webp"}
MASK_TAG = "_mask"  # Carvana's <id>_mask.gif: the tag is not part of the id
YOUR_OWN_DATA = "README, 'Train on your own data'"


EXIF_ORIENTATION = 0x0112  # the EXIF tag; values 5-8 turn the image by 90 or 270 degrees


def exif_orientation(image: Image.Image) -> int:
    """The EXIF orientation of an opened image (1 = upright as stored), read from its header."""
    return int(image.getexif().get(EXIF_ORIENTATION, 1) or 1)


def upright_size(image: Image.Image) -> tuple[int, int]:
    """(width, height) of an opened image as labelling tools show it: EXIF orientation applied."""
    width, height = image.size
    return (height, width) if exif_orientation(image) in (5, 6, 7, 8) else (width, height)


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
    values: tuple[int, ...] | None = None  # each class's value in the mask files; None: its index
    value_rule: str = "class indices, 255 = void"  # how `values` was decided, for the run
    split_dirs: tuple[tuple[str, Path], ...] = ()  # (split, folder of its images and masks): Roboflow's

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def mask_values(self) -> tuple[int, ...]:
        """Each class's value in the mask files, in class order."""
        return self.values if self.values is not None else tuple(range(self.num_classes))

    def class_table(self) -> dict:
        """Names, colours and mask values as plain values, for checkpoints and exported models."""
        return {
            "names": list(self.class_names),
            "colors": self.colors.tolist(),
            "values": list(self.mask_values),
        }

    @functools.cached_property
    def value_lookup(self) -> np.ndarray:
        """int16 array of 65536: mask value -> class index, IGNORE_INDEX for void, -1 for no class."""
        lookup = np.full(65536, -1, dtype=np.int16)
        if IGNORE_INDEX not in self.mask_values:
            lookup[IGNORE_INDEX] = IGNORE_INDEX
        lookup[list(self.mask_values)] = np.arange(self.num_classes)
        return lookup

    # Ids and splits

    def split_ids(self, split: str) -> list[str]:
        """The ids of `split`: its list file, or, for a data set without train/val lists, the ids held
        out for "val" (VAL_FRACTION of them, by a hash of each id) or the rest for the train split."""
        folders = dict(self.split_dirs)
        if split in folders and not self.holds_out():
            return sorted(i for i, p in self.images_by_id.items() if p.parent == folders[split])
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
        if self.split_dirs:
            return not {self.train_split, "val"} <= dict(self.split_dirs).keys()
        lists = (self.list_dir / f"{self.train_split}.txt", self.list_dir / "val.txt")
        return self.kind != "voc-aug" and not any(p.is_file() for p in lists)

    def all_ids(self) -> list[str]:
        """Every id, sorted: the all-ids list where the layout has one, else the images that have masks
        (an image without a mask or a mask without an image is an error listing the first few)."""
        if self.all_list and (self.list_dir / f"{self.all_list}.txt").is_file():
            return sorted(self.split_ids(self.all_list))
        images = set(self.images_by_id)
        masks = set(self.masks_by_id)
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
        """id -> image file in image_dir (or the split folders), whatever its extension (labelme keeps PNG
        bytes as .jpg)."""
        found: dict[str, Path] = {}
        for path in self._listing(self.image_dir):
            # Roboflow's masks sit beside the images.
            is_mask = self.split_dirs and path.stem.endswith(MASK_TAG)
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file() and not is_mask:
                if path.stem in found:
                    raise UserError(
                        f"{found[path.stem]} and {path} have the same id: rename or remove one of them"
                    )
                found[path.stem] = path
        return found

    @functools.cached_property
    def masks_by_id(self) -> dict[str, Path]:
        """id -> mask file in mask_dir: <id>.png for the tools' exports; for the plain layout also GIF,
        TIFF and BMP, and <id>_mask.<ext>. A JPEG mask is an error: its edges hold values of no class."""
        if self.kind not in ("plain", "roboflow"):
            return {p.stem: p for p in self.mask_dir.glob("*.png")}
        found: dict[str, Path] = {}
        for path in self._listing(self.mask_dir):
            if self.split_dirs and not path.stem.endswith(MASK_TAG):
                continue  # an image beside the masks
            suffix = path.suffix.lower()
            if suffix in LOSSY_SUFFIXES:
                raise UserError(
                    f"mask {path} is a {suffix[1:].upper()}: lossy compression blurs its edges into values "
                    "of no class; save the masks as PNG (or GIF, TIFF, BMP) from the labelling tool"
                )
            if suffix not in MASK_SUFFIXES or not path.is_file():
                continue
            image_id = path.stem.removesuffix(MASK_TAG) if path.stem.endswith(MASK_TAG) else path.stem
            if image_id in found:
                raise UserError(f"{found[image_id]} and {path} are masks of the same id: keep one of them")
            found[image_id] = path
        return found

    def _listing(self, folder: Path) -> list[Path]:
        """The files of `folder`, or of every split folder for a layout with split_dirs, sorted."""
        folders = [d for _, d in self.split_dirs] or [folder]
        return [p for d in folders if d.is_dir() for p in sorted(d.iterdir())]

    def image_path(self, image_id: str) -> Path:
        if self.kind == "voc-aug":  # 17k files: no need to list the folder
            return self.image_dir / f"{image_id}.jpg"
        return self.images_by_id.get(image_id, self.image_dir / f"{image_id}.jpg")

    def mask_path(self, image_id: str) -> Path:
        if self.kind in ("plain", "roboflow"):
            return self.masks_by_id.get(image_id, self.mask_dir / f"{image_id}.png")
        return self.mask_dir / f"{image_id}.png"

    def read_mask(self, path: Path) -> np.ndarray:
        """uint8 HxW of class indices and IGNORE_INDEX; UserError naming the file and the fix for an
        unreadable mask, an unlisted colour or a value outside the classes."""
        if self.rgb_masks:
            return self._read_rgb_mask(path)
        mask = read_mask_values(path, self.fix)
        if self.values is None:
            bad = invalid_labels(mask, self.num_classes)
            if not bad:
                return mask.astype(np.uint8, copy=False)
            raise UserError(
                f"mask {path} holds values {bad} outside 0-{self.num_classes - 1} and {IGNORE_INDEX}: "
                f"{self.fix}"
            )
        wide = mask.dtype.itemsize > 2  # 32-bit TIFF values: beyond the lookup table, no class
        classes = self.value_lookup[np.clip(mask, 0, 65535) if wide else mask]
        unknown = (classes < 0) | (mask > 65535) if wide else classes < 0
        if unknown.any():
            bad = np.unique(mask[unknown]).tolist()[:8]
            raise UserError(
                f"mask {path} holds values {bad}, which are no class ({self.value_rule}): {self.fix}"
            )
        return classes.astype(np.uint8)

    def _read_rgb_mask(self, path: Path) -> np.ndarray:
        try:
            with Image.open(path) as image:
                rgb = np.asarray(image.convert("RGB"))
        except OSError as error:
            raise UserError(f"cannot read mask {path}: {error}; {self.fix}") from None
        mask, unknown = indices_from_colors(rgb, self.colors, list(range(self.num_classes)))
        if unknown:
            raise UserError(
                f"mask {path} holds colour {unknown}, which {self.root / 'labelmap.txt'} does not list: "
                f"{self.fix}"
            )
        return mask


def read_mask_values(path: Path, fix: str) -> np.ndarray:
    """The values a mask file stores, HxW (uint8, or uint16/int32 for 16-bit masks): palette PNGs give
    their indices, GIFs their grey levels, 1-bit masks 0/1, grey RGB(A) masks one channel. UserError
    naming the file for an unreadable or colour mask."""
    try:
        with Image.open(path) as image:
            if image.format == "GIF":  # always palette-coded: the grey level is what the user drew
                image = image.convert("L")
            mask = np.array(image)
    except OSError as error:
        raise UserError(f"cannot read mask {path}: {error}; {fix}") from None
    if mask.dtype == bool:
        mask = mask.astype(np.uint8)
    if mask.ndim == 3 and (mask[..., :3] == mask[..., :1]).all():  # grey saved as RGB: one channel
        mask = mask[..., 0]
    if mask.ndim != 2 or mask.dtype.kind not in "ui" or mask.min(initial=0) < 0:
        kind = f"{mask.shape[2]} different channels" if mask.ndim == 3 else f"{mask.dtype} values"
        raise UserError(
            f"mask {path} has {kind}: masks of this layout hold one value per pixel "
            f"(8- or 16-bit grayscale or palette); {fix}"
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


def read_plain_classes(path: Path) -> tuple[tuple[str, ...], np.ndarray, tuple[int, ...] | None]:
    """The plain layout's classes.txt: `name`, `name = value` or either followed by `: r,g,b`, one class a
    line in index order -> names, colours (the VOC colour map's where a line gives none), and the values
    the lines state (None when none does)."""
    names, colors, values = [], [], []
    for line in (line for line in path.read_text().splitlines() if line.strip()):
        named, _, color = line.partition(":")
        name, equals, value = named.partition("=")
        names.append(name.strip())
        colors.append(parse_color(color, path, line) if color.strip() else tuple(VOC_PALETTE[len(colors)]))
        if equals:
            if not value.strip().isdigit() or int(value) > 65535:
                raise UserError(f"{path}: line '{line}' gives no mask value: write `name = value` (0-65535)")
            values.append(int(value))
    if values and len(values) != len(names):
        raise UserError(
            f"{path} states the mask value of some classes only: write `name = value` on every line"
        )
    if len(set(values)) != len(values):
        raise UserError(f"{path} gives two classes one mask value: masks could not tell them apart")
    return check_class_names(names, path), np.array(colors, dtype=np.uint8), tuple(values) or None


def found_mask_values(paths: list[Path], fix: str, threads: int = 8) -> list[int]:
    """The distinct values stored in the mask files, sorted (UserError naming a mask it cannot read)."""

    def present(path: Path) -> list[int]:
        return np.flatnonzero(np.bincount(read_mask_values(path, fix).ravel())).tolist()

    with ThreadPoolExecutor(threads) as pool:  # decoding releases the GIL
        return sorted(set().union(*pool.map(present, paths)))


def mapping_text(names: tuple[str, ...], values: tuple[int, ...]) -> str:
    return ", ".join(f"{v} -> {n}" for v, n in zip(values, names, strict=True))


def plain_layout(root: Path) -> DataLayout:
    """The plain layout, its mask values decided by the rule of this module's docstring."""
    classes = root / "classes.txt"
    fix = (
        f"masks hold the line numbers of {classes} (0 = first line) and 255 for void, or the values that "
        f"its lines state as `name = value` ({YOUR_OWN_DATA})"
    )
    listed = classes.is_file()
    names, colors, values = read_plain_classes(classes) if listed else ((), np.zeros((0, 3), np.uint8), None)
    layout = DataLayout(
        "plain", root, names, colors, root / "images", root / "masks", root / "splits", "train",
        rgb_masks=False, fix=fix,
    )  # fmt: skip
    if values is not None:
        rule = f"as classes.txt states them: {mapping_text(names, values)}"
        return replace(layout, values=values, value_rule=rule + void_note(values))
    if listed and len(names) != 2:
        return layout
    if not layout.masks_by_id:
        raise UserError(f"no masks in {layout.mask_dir}: put the masks there ({YOUR_OWN_DATA})")
    found = found_mask_values(sorted(layout.masks_by_id.values()), fix)
    if listed:
        if set(found) != {0, 255}:
            return layout
        rule = f"two classes listed and the masks hold only 0 and 255: {mapping_text(names, (0, 255))}"
        return replace(layout, values=(0, 255), value_rule=rule)
    if len(found) == 2:
        names = ("background", "foreground")
        rule = f"no classes.txt, the masks hold two values: {mapping_text(names, tuple(found))}"
    else:
        found = [v for v in found if v != IGNORE_INDEX]
        names = ("background", *(f"class_{v}" for v in found[1:]))
        rule = f"no classes.txt, one class per value found in the masks: {mapping_text(names, tuple(found))}"
    if len(found) < 2:
        raise UserError(
            f"the masks in {layout.mask_dir} hold only the value {found[0] if found else IGNORE_INDEX}: "
            "that is one class; draw the other class (0/255 or 0/1 masks for background/foreground), or "
            f"list the classes in {classes}"
        )
    fix = f"a value missing from the others: list the classes in {classes} as `name = value` lines"
    return replace(
        layout, class_names=check_class_names(list(names), classes), colors=VOC_PALETTE[: len(names)].copy(),
        values=tuple(found), value_rule=rule + void_note(tuple(found)), fix=fix,
    )  # fmt: skip


def void_note(values: tuple[int, ...]) -> str:
    return "" if IGNORE_INDEX in values else f"; {IGNORE_INDEX} = void"


ROBOFLOW_SPLITS = {"train": "train", "valid": "val", "test": "test"}  # folder -> split list


def read_roboflow_classes(path: Path) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Roboflow's _classes.csv (header "Pixel Value, Class", then one `value, name` row a class) ->
    names and values, in the order of the values."""
    rows = []
    for line in path.read_text().splitlines()[1:]:
        value, _, name = line.partition(",")
        if not line.strip():
            continue
        if not value.strip().isdigit() or not name.strip():
            raise UserError(f"{path}: cannot read row '{line}': Roboflow writes `pixel value, class name`")
        rows.append((int(value), name.strip()))
    if not rows:
        raise UserError(f"{path} lists no classes: export the data set from Roboflow again")
    rows.sort()
    return check_class_names([n for _, n in rows], path), tuple(v for v, _ in rows)


def roboflow_layout(root: Path, folders: list[Path]) -> DataLayout:
    """Roboflow's "Semantic Segmentation Masks" export: train/, valid/, test/, each holding the images,
    <name>_mask.png beside each and _classes.csv."""
    tables = {folder: read_roboflow_classes(folder / "_classes.csv") for folder in folders}
    names, values = tables[folders[0]]
    for folder, table in tables.items():
        if table != (names, values):
            raise UserError(
                f"{folder / '_classes.csv'} lists other classes than {folders[0] / '_classes.csv'}: export "
                "every split from one Roboflow version"
            )
    identity = values == tuple(range(len(names)))
    return DataLayout(
        "roboflow", root, names, VOC_PALETTE[: len(names)].copy(), root, root, root / "splits", "train",
        rgb_masks=False, fix=f"masks hold the pixel values of {folders[0] / '_classes.csv'}: export again",
        values=None if identity else values,
        value_rule=f"as _classes.csv states them: {mapping_text(names, values)}" + void_note(values),
        split_dirs=tuple((ROBOFLOW_SPLITS[f.name], f) for f in folders),
    )  # fmt: skip


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
    roboflow = [root / f for f in ROBOFLOW_SPLITS if (root / f / "_classes.csv").is_file()]
    if roboflow:
        return roboflow_layout(root, roboflow)
    if (root / "classes.txt").is_file() or ((root / "images").is_dir() and (root / "masks").is_dir()):
        return plain_layout(root)
    raise UserError(
        f"no data set found in {root}: for VOC-aug, split file "
        f"{voc / 'ImageSets' / 'Segmentation' / 'trainaug.txt'} is missing (prepare the data set with "
        f"`python tools/voc.py --data_dir {root}`); for your own data, --data_dir must hold a labelme "
        f"export (class_names.txt), a CVAT export (labelmap.txt), a Roboflow mask export "
        f"(train/_classes.csv) or the plain layout (images/ and masks/, with or without classes.txt): "
        f"{YOUR_OWN_DATA}"
    )
