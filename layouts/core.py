"""The one interface of the data layer, and the pieces the source formats build it from.

    layout = describe("data/")           # layouts/__init__.py: the first format that recognises the folder
    layout.class_names, layout.colors    # index order; colors: uint8 array num_classes x 3
    ids = layout.split_ids("train")      # the release's split, or held out by a hash of each id
    mask = layout.read_mask(image_id)    # uint8 HxW: class index, IGNORE_INDEX = not scored

A format (one file of this package) finds its files, classes and splits and hands them to `DataLayout`
with `decode`, the function that turns the mask files of one id into class indices. The helpers below
(value tables, mask readers, pairing images with masks by name, the hold-out, the scan cache) are what
several formats share.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from utils import UserError, reading, replaced_atomically

IGNORE_INDEX = 255  # "void" in every mask as loaded: never trained on, never scored
VAL_FRACTION = 0.1  # held out for validation when a data set has no validation split
NOT_PIXELS = {"BUFR", "GRIB", "HDF5", "MPEG", "EPS", "WMF"}  # PIL formats that are stubs, video or vector


def pil_suffixes() -> set[str]:
    """The file name endings of every raster format PIL opens (.png, .jpg, .tif, .pgm, .jp2, ...)."""
    Image.init()
    formats = Image.registered_extensions().items()
    return {suffix for suffix, name in formats if name in Image.OPEN and name not in NOT_PIXELS}


IMAGE_SUFFIXES = pil_suffixes()
MASK_SUFFIXES = {".png", ".gif", ".tif", ".tiff", ".bmp"}  # lossless formats
LOSSY_SUFFIXES = {".jpg", ".jpeg", ".webp"}  # read as masks only when they hold two levels (Kvasir-SEG)
MASK_TAG = "_mask"  # Carvana's <id>_mask.gif: the tag is not part of the id
YOUR_OWN_DATA = "README, 'Train on your own data'"
JPEG_THRESHOLD = 128  # a binary JPEG mask: foreground where the grey level is this or more
JPEG_TOLERANCE = 64  # ... and every pixel within this of 0 or 255, or the mask is not binary
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


def read_rgb(path: Path, fix: str) -> np.ndarray:
    """An RGB(A) or palette mask file as RGB, HxWx3 uint8; UserError naming the file when unreadable."""
    with reading(path, "mask", fix), Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def decode_colors(
    files: tuple[Path, ...], colors: np.ndarray, indices: list[int], source: Path | str, fix: str
) -> np.ndarray:
    """An RGB mask -> indices[k] where a pixel has colors[k] (IGNORE_INDEX for void colours); UserError
    naming the mask and the colour that `source` (the colour table) does not list."""
    mask, unknown = indices_from_colors(read_rgb(files[0], fix), colors, indices)
    if unknown:
        raise UserError(f"mask {files[0]} holds colour {unknown}, which {source} does not list: {fix}")
    return mask


@dataclass(frozen=True, eq=False)
class DataLayout:
    """One data set on disk, whatever its format. Masks as read hold class indices 0..num_classes-1 and
    IGNORE_INDEX; `values` are the classes' values in the release's own mask files (what tools/predict.py
    writes back)."""

    kind: str  # the format that recognised the folder, as the run names it
    root: Path
    class_names: tuple[str, ...]
    colors: np.ndarray  # uint8 num_classes x 3, in class order
    values: tuple[int, ...]
    value_rule: str  # how the mask files' values became classes, for the run's first lines
    images: Mapping[str, Path]  # id -> image file
    masks: Mapping[
        str, tuple[Path, ...]
    ]  # id -> the files its mask is made from (first: the one errors name)
    splits: Mapping[str, tuple[str, ...]]  # the release's splits: split -> ids
    decode: Callable[[tuple[Path, ...]], np.ndarray]  # one id's mask files -> uint8 HxW class indices
    fix: str  # what to do about a bad mask, for error messages
    hold_out: bool = False  # "val" is VAL_FRACTION of the train split, held out by a hash of each id
    train_split: str = "train"
    missing_split: Callable[[str], str] = field(
        default=lambda split: f"no '{split}' split: pick another --val_split"
    )
    missing_files: str = "add them, or remove their ids from the split list"  # the fix, for that error
    notes: tuple[str, ...] = ()  # lines the run prints after the mask values (how files were paired, ...)
    upright: bool = True  # the images have an up (photographs); False: fundus, endoscopy, microscopy, aerial

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def mask_values(self) -> tuple[int, ...]:
        """Each class's value in the mask files, in class order."""
        return self.values

    def class_table(self) -> dict:
        """Names, colours and mask values as plain values, for checkpoints and exported models."""
        return {"names": list(self.class_names), "colors": self.colors.tolist(), "values": list(self.values)}

    def about(self) -> dict:
        """What was recognised, as plain values, for the checkpoint."""
        return {"format": self.kind, "root": str(self.root), "value_rule": self.value_rule}

    def with_split_lists(self, folder: Path) -> DataLayout:
        """This data set with the splits listed in `folder` (<split>.txt, one id a line) in place of its
        own: a fixed split of a release that has none. UserError naming a list and the ids the data set
        does not hold."""
        lists = sorted(folder.glob("*.txt")) if folder.is_dir() else []
        if not lists:
            raise UserError(f"--split_dir {folder} holds no <split>.txt lists: write train.txt and val.txt")
        given = {path.stem: read_list(path) for path in lists}
        for path in lists:
            unknown = [i for i in given[path.stem] if i not in self.images]
            if unknown:
                raise UserError(
                    f"{path} lists {len(unknown)} id(s) that {self.root} does not hold, e.g. "
                    f"{', '.join(unknown[:3])}: list ids as the run's splits/ folder writes them"
                )
        hold_out = self.hold_out and not {self.train_split, "val"} & given.keys()
        missing = partial(_no_list, list_dir=folder, train_split=self.train_split)
        return replace(self, splits={**self.splits, **given}, hold_out=hold_out, missing_split=missing)

    def split_ids(self, split: str) -> list[str]:
        """The ids of `split`: the release's, or with hold_out, VAL_FRACTION of the train split held out
        for "val" (by a hash of each id, so adding images never moves old ones) and the rest for train."""
        if self.hold_out and split in (self.train_split, "val"):
            ids = self.all_ids()
            val = held_out(ids)
            return [i for i in ids if (i in val) == (split == "val")]
        if split in self.splits:
            return list(self.splits[split])
        raise UserError(self.missing_split(split))

    def all_ids(self) -> list[str]:
        """Every id of the train split (and its held-out val), sorted."""
        return sorted(self.splits.get(self.train_split, ()))

    def image_path(self, image_id: str) -> Path:
        return self.images[image_id]

    def mask_path(self, image_id: str) -> Path:
        """The mask file of an id (the first of its files where a mask is made from several)."""
        return self.masks[image_id][0]

    def mask_files(self, image_id: str) -> tuple[Path, ...]:
        return self.masks[image_id]

    def read_mask(self, image_id: str) -> np.ndarray:
        """uint8 HxW of class indices and IGNORE_INDEX; UserError naming the file and the fix for an
        unreadable mask or a value that is no class."""
        return self.decode(self.masks[image_id])


# Mask values -> class indices


def value_table(values: Iterable[int], void: Iterable[int] = (IGNORE_INDEX,), rest_void: bool = False):
    """int16 array of 65536: stored value -> class index (position in `values`), IGNORE_INDEX for the
    void values (every unlisted value with rest_void), -1 for a value that is no class."""
    values = list(values)
    lookup = np.full(65536, IGNORE_INDEX if rest_void else -1, dtype=np.int16)
    lookup[[v for v in void if v not in values]] = IGNORE_INDEX
    lookup[values] = np.arange(len(values))
    return lookup


def to_classes(stored: np.ndarray, lookup: np.ndarray, path: Path, rule: str, fix: str) -> np.ndarray:
    """Stored values HxW -> uint8 class indices through `lookup` (value_table); UserError naming the file
    and the rule for a value that is no class."""
    wide = stored.dtype.itemsize > 2  # 32-bit TIFF values: beyond the lookup table, no class
    classes = lookup[np.clip(stored, 0, 65535) if wide else stored]
    unknown = (classes < 0) | (stored > 65535) if wide else classes < 0
    if unknown.any():
        bad = np.unique(stored[unknown]).tolist()[:8]
        raise UserError(f"mask {path} holds values {bad}, which are no class ({rule}): {fix}")
    return classes.astype(np.uint8)


def decode_values(
    files: tuple[Path, ...],
    lookup: np.ndarray | None,
    num_classes: int,
    rule: str,
    fix: str,
    read: Callable[[Path, str], np.ndarray],
) -> np.ndarray:
    """The usual decode: one mask file read by `read`, its values mapped through `lookup`, or taken as
    class indices (0..num_classes-1, IGNORE_INDEX) when lookup is None."""
    stored = read(files[0], fix)
    if lookup is not None:
        return to_classes(stored, lookup, files[0], rule, fix)
    bad = invalid_labels(stored, num_classes)
    if bad:
        raise UserError(
            f"mask {files[0]} holds values {bad} outside 0-{num_classes - 1} and {IGNORE_INDEX}: {fix}"
        )
    return stored.astype(np.uint8, copy=False)


def value_decoder(
    values: tuple[int, ...],
    rule: str,
    fix: str,
    read: Callable[[Path, str], np.ndarray] | None = None,
    void: Iterable[int] = (IGNORE_INDEX,),
    rest_void: bool = False,
) -> Callable[[tuple[Path, ...]], np.ndarray]:
    """`decode` for masks of one file whose values are `values` (class order) and `void`."""
    identity = values == tuple(range(len(values))) and tuple(void) == (IGNORE_INDEX,) and not rest_void
    lookup = None if identity else value_table(values, void, rest_void)
    return partial(
        decode_values,
        lookup=lookup,
        num_classes=len(values),
        rule=rule,
        fix=fix,
        read=read or read_mask_values,
    )


def mapping_text(names: tuple[str, ...], values: tuple[int, ...]) -> str:
    return ", ".join(f"{v} -> {n}" for v, n in zip(values, names, strict=True))


def void_note(values: tuple[int, ...]) -> str:
    return "" if IGNORE_INDEX in values else f"; {IGNORE_INDEX} = void"


# Reading mask files


def read_mask_values(path: Path, fix: str) -> np.ndarray:
    """The values a mask file stores, HxW (uint8, or uint16/int32 for 16-bit masks): palette PNGs give
    their indices, GIFs their grey levels, 1-bit masks 0/1, grey RGB(A) masks one channel; a JPEG its
    two levels (0/255) when it holds two, by JPEG_THRESHOLD. UserError naming the file for an unreadable
    or colour mask, or a JPEG that is not binary."""
    with reading(path, "mask", fix), Image.open(path) as image:
        if image.format == "GIF":  # always palette-coded: the grey level is what the user drew
            image = image.convert("L")
        mask = np.array(image)
    if mask.dtype == bool:
        mask = mask.astype(np.uint8)
    if mask.ndim == 3 and (mask[..., :3] == mask[..., :1]).all():  # grey saved as RGB: one channel
        mask = mask[..., 0]
    if path.suffix.lower() in LOSSY_SUFFIXES:
        return binary_jpeg(mask, path)
    if mask.ndim != 2 or mask.dtype.kind not in "ui" or mask.min(initial=0) < 0:
        kind = f"{mask.shape[2]} different channels" if mask.ndim == 3 else f"{mask.dtype} values"
        raise UserError(
            f"mask {path} has {kind}: masks of this layout hold one value per pixel "
            f"(8- or 16-bit grayscale or palette); {fix}"
        )
    return mask


def binary_jpeg(mask: np.ndarray, path: Path) -> np.ndarray:
    """A JPEG mask -> uint8 0/255 by JPEG_THRESHOLD, when every pixel is close to 0 or 255 (a binary mask
    blurred by compression); UserError otherwise: the edges of a multi-class mask hold values of no class."""
    if mask.ndim == 3:  # JPEG's chroma blurs equal channels apart a little
        mask = mask[..., :3].mean(-1)
    near = (mask <= JPEG_TOLERANCE) | (mask >= 255 - JPEG_TOLERANCE)
    if mask.ndim != 2 or near.mean() < 0.995:
        raise UserError(
            f"mask {path} is a {path.suffix[1:].upper()} whose pixels are not two levels: lossy compression "
            "blurs the edges of a mask of several classes into values of no class; save the masks as PNG "
            "(or GIF, TIFF, BMP) from the labelling tool"
        )
    return np.where(mask >= JPEG_THRESHOLD, 255, 0).astype(np.uint8)


def read_palette_indices(path: Path, fix: str) -> np.ndarray:
    """A palette image's indices as stored (Carvana's GIFs hold 0/1 behind a black/white palette)."""
    with reading(path, "mask", fix), Image.open(path) as image:
        return np.array(image if image.mode == "P" else image.convert("L"))


def found_mask_values(paths: list[Path], fix: str, read=read_mask_values, threads: int = 8) -> list[int]:
    """The distinct values stored in the mask files, sorted (UserError naming a mask it cannot read);
    cached (see `cached`) while the files are unchanged."""

    def present(path: Path) -> list[int]:
        return np.flatnonzero(np.bincount(read(path, fix).ravel())).tolist()

    def scan() -> np.ndarray:
        with ThreadPoolExecutor(threads) as pool:  # decoding releases the GIL
            return np.array(sorted(set().union(*pool.map(present, paths))), dtype=np.int64)

    return cached("values", [(p,) for p in paths], scan, salt=read.__name__).tolist()


# Splits and pairing


def held_out(ids: list[str], fraction: float = VAL_FRACTION) -> set[str]:
    """The ids whose hash falls below `fraction` (at least one): adding ids never moves old ones."""
    score = {i: int.from_bytes(hashlib.sha256(i.encode()).digest()[:8], "big") / 2**64 for i in ids}
    chosen = {i for i in ids if score[i] < fraction}
    return chosen or {min(ids, key=score.__getitem__)} if ids else set()


def read_list(path: Path) -> tuple[str, ...]:
    """A split list: one id a line (blank lines skipped); UserError for an empty one."""
    ids = tuple(line.strip() for line in path.read_text().splitlines() if line.strip())
    if not ids:
        raise UserError(f"split list {path} lists no images: add ids (one per line) or remove it")
    return ids


def is_junk(path: Path) -> bool:
    """Files a download carries that are no data: macOS's ._* and .DS_Store, hidden files, __MACOSX/."""
    return path.name.startswith(".") or path.name == "__MACOSX" or path.name == "Thumbs.db"


def files_in(folder: Path, suffixes: set[str] = IMAGE_SUFFIXES) -> list[Path]:
    """The files of `folder` with one of `suffixes` (any case), junk left out, sorted."""
    if not folder.is_dir():
        return []
    return sorted(
        p for p in folder.iterdir() if p.suffix.lower() in suffixes and not is_junk(p) and p.is_file()
    )


def by_stem(paths: Iterable[Path], tag: str = "", what: str = "image") -> dict[str, Path]:
    """id -> file, the id being the file name without its extension and `tag` (case as stored);
    UserError naming both files when two give one id."""
    found: dict[str, Path] = {}
    for path in paths:
        image_id = path.stem.removesuffix(tag) if tag else path.stem
        if image_id in found and what == "image":
            raise UserError(f"{found[image_id]} and {path} have the same id: rename or remove one of them")
        if image_id in found:
            raise UserError(f"{found[image_id]} and {path} are {what}s of the same id: keep one of them")
        found[image_id] = path
    return found


def paired_ids(
    images: Mapping[str, Path], masks: Mapping[str, object], image_dir: Path, mask_dir: Path
) -> list[str]:
    """The ids that have both an image and a mask, sorted; UserError listing the first few images without
    a mask or masks without an image (nothing is skipped silently)."""
    for have, lack, what, folder in ((images, masks, "mask", mask_dir), (masks, images, "image", image_dir)):
        orphans = sorted(set(have) - set(lack))
        if orphans:
            raise UserError(
                f"{len(orphans)} {'image' if what == 'mask' else 'mask'}(s) without a {what} in "
                f"{folder}: {', '.join(orphans[:5])}: add the {what}s or remove the others"
            )
    if not images:
        raise UserError(f"no images in {image_dir}: put the images there ({YOUR_OWN_DATA})")
    return sorted(images)


def list_splits(
    list_dir: Path, all_ids: Callable[[], list[str]], train_split: str = "train"
) -> tuple[dict[str, tuple[str, ...]], bool, Callable[[str], str]]:
    """Splits from list files (<list_dir>/<split>.txt): (splits, hold_out, missing_split). With neither a
    train nor a val list, the train split is all_ids() and val is held out of it."""
    lists = sorted(list_dir.glob("*.txt")) if list_dir.is_dir() else []
    splits = {p.stem: read_list(p) for p in lists}
    hold_out = train_split not in splits and "val" not in splits
    if hold_out:
        splits[train_split] = tuple(all_ids())
    return splits, hold_out, partial(_no_list, list_dir=list_dir, train_split=train_split)


def _no_list(split: str, list_dir: Path, train_split: str) -> str:
    if split in (train_split, "val"):
        other = list_dir / f"{'val' if split != 'val' else train_split}.txt"
        fix = f"write it beside {other}, or remove {other} to hold out {VAL_FRACTION:.0%} of the images"
    else:
        fix = "write it (one id per line) or pick another --val_split"
    return f"split file {list_dir / f'{split}.txt'} not found: {fix}"


def single_files(masks: Mapping[str, Path]) -> dict[str, tuple[Path, ...]]:
    """id -> (mask file,): the `masks` of DataLayout where each mask is one file."""
    return {i: (p,) for i, p in masks.items()}


def no_split(release: str, splits: Iterable[str]) -> Callable[[str], str]:
    """missing_split of a release whose splits are its folders."""
    return partial(_no_split, release=release, have=", ".join(sorted(splits)))


def _no_split(split: str, release: str, have: str) -> str:
    return f"{release} has no '{split}' split (it has: {have}): pick one of them with --val_split"


def incomplete(missing: Path, release: str, holds: str) -> UserError:
    """The error for a recognisable but partial download: the missing file and what the release holds."""
    return UserError(
        f"{missing} not found: this looks like {release}, whose release holds {holds}; download and "
        "unpack it again (or pass the folder of a complete copy)"
    )


def mask_files(mask_dir: Path) -> dict[str, Path]:
    """id -> mask file in mask_dir: <id>.<ext> or <id>_mask.<ext>, lossless formats or JPEG (read if
    binary)."""
    return by_stem(files_in(mask_dir, MASK_SUFFIXES | LOSSY_SUFFIXES), MASK_TAG, "mask")


def discovered_classes(
    masks: list[Path], where: Path, fix: str, names: tuple[str, ...] = ("background", "foreground"), read=None
) -> tuple[tuple[str, ...], tuple[int, ...], str]:
    """Classes from the values the masks hold, when nothing lists them: two values are `names` (0/255,
    0/1: background and foreground); more are classes in ascending order, 255 void. -> (names, values,
    rule). UserError for masks of one value."""
    found = found_mask_values(masks, fix, **({"read": read} if read else {}))
    jpeg = any(p.suffix.lower() in LOSSY_SUFFIXES for p in masks)
    return classes_of_values(found, where, jpeg, names)


def classes_of_values(
    found: list[int], where: Path, jpeg: bool, names: tuple[str, ...] = ("background", "foreground")
) -> tuple[tuple[str, ...], tuple[int, ...], str]:
    """discovered_classes' rule on the values found in the masks of `where`."""
    if len(found) == 2:
        grey = " (JPEG masks: grey >= 128 -> 255)" if jpeg else ""
        return names, tuple(found), f"the masks hold two values{grey}: {mapping_text(names, tuple(found))}"
    found = [v for v in found if v != IGNORE_INDEX]
    if len(found) < 2:
        raise UserError(
            f"the masks in {where} hold only the value {found[0] if found else IGNORE_INDEX}: "
            "that is one class; draw the other class (0/255 or 0/1 masks for background/foreground), or "
            f"list the classes in a classes.txt ({YOUR_OWN_DATA})"
        )
    names = ("background", *(f"class_{v}" for v in found[1:]))
    rule = f"one class per value found in the masks: {mapping_text(names, tuple(found))}"
    return names, tuple(found), rule + void_note(tuple(found))


# The scan cache


def cache_dir() -> Path:
    """Where scans and prepared masks are kept: $UNET_CACHE_DIR, else $XDG_CACHE_HOME/unet-segmentation
    (~/.cache/unet-segmentation). Never beside the data, which may be read-only."""
    if os.environ.get("UNET_CACHE_DIR"):
        return Path(os.environ["UNET_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "unet-segmentation"


def files_stamp(groups: Iterable[Iterable[Path]], salt: str = "") -> str:
    """A hash of the paths, sizes and modification times of the files: changes when any file does."""
    digest = hashlib.sha256(salt.encode())
    for group in groups:
        for path in group:
            try:
                stat = os.stat(path)
            except OSError:
                digest.update(f"{path}:missing\n".encode())
                continue
            digest.update(f"{os.path.abspath(path)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


def cached(name: str, groups: list[tuple[Path, ...]], compute: Callable[[], np.ndarray], salt: str = ""):
    """compute(), or the array it returned for the same files (paths, sizes, times) before: kept in
    cache_dir() as <name>-<stamp>.npy, written atomically (a killed run leaves no half file). A cache that
    cannot be written is skipped (a read-only home), never an error."""
    path = cache_dir() / f"{name}-{files_stamp(groups, salt)}.npy"
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        pass
    result = compute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with replaced_atomically(path, tag=f".{os.getpid()}") as tmp:
            with open(tmp, "wb") as f:
                np.save(f, result, allow_pickle=False)
    except OSError:
        pass
    return result


# Class lists


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
