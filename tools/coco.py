"""Convert a COCO instances export (Roboflow, CVAT, Label Studio, ...) to this project's plain layout.

    python tools/coco.py --src my_roboflow_export --data_dir data/my_set      # train/ valid/ test/
    python tools/coco.py --src my_cvat_export --data_dir data/my_set          # annotations/ images/
    python tools/coco.py --annotations instances.json --images photos/ --data_dir data/my_set
    python main.py --data_dir data/my_set ...

Reads   Roboflow "COCO Segmentation": <src>/<split>/_annotations.coco.json beside the split's images
        (train, valid, test; valid becomes the val list);
        CVAT "COCO 1.0": <src>/annotations/instances_<subset>.json with the images in <src>/images/
        (or <src>/images/<subset>/); one subset ("default") is held out by hash, several get a list each;
        any COCO instances JSON: --annotations FILE --images DIR (held out by hash).
Writes  <data_dir>/classes.txt        background, then the categories in the order of their ids
        <data_dir>/images/<id>.<ext>  the images, byte for byte (EXIF orientation is applied on reading)
        <data_dir>/masks/<id>.png     8-bit grayscale, pixel = class index (0 = background)
        <data_dir>/splits/<split>.txt the ids of each split, when the export has splits

Masks are rasterised with pycocotools: polygons (several per object), RLE (compressed or not), crowd
and non-crowd annotations alike (a crowd region is its category's pixels: CVAT exports brush masks as
crowd RLE). Where objects overlap, larger objects are painted first, so a small object on a large one
stays visible. A category that no annotation uses is left out of classes.txt and named in the summary
(Roboflow lists its project as category 0 with no annotations). Images without annotations are kept:
all background.

Everything is checked before anything is written: an annotation whose image is missing, an image file
that is not an image, a category id that the categories do not list, a polygon with fewer than three
points, a segmentation wholly outside its image, two categories with one name, and an image whose size
differs from the JSON's each exit with status 2 and one line naming the file and the fix. Masks and
images are written atomically in parallel (--workers), and a re-run leaves correct files alone.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from layouts import IGNORE_INDEX, held_out, upright_size  # noqa: E402
from utils import (  # noqa: E402
    UserError,
    exit_status,
    holds_mask,
    replaced_atomically,
    save_image_atomically,
    write_text_atomically,
)

ROBOFLOW_JSON = "_annotations.coco.json"
SPLIT_NAMES = {"train": "train", "valid": "val", "val": "val", "validation": "val", "test": "test"}


@dataclass
class Subset:
    """One COCO JSON of an export and the folder its image file names are relative to."""

    split: str  # the split list it becomes ("default": none, held out by hash)
    json_path: Path
    image_dir: Path


@dataclass
class Job:
    """One image to write: its source and outputs, size, and its annotations in painting order."""

    image_id: str
    source: Path
    image_out: Path
    mask_out: Path
    height: int
    width: int
    segmentations: list  # (class index, COCO segmentation) pairs


def find_subsets(src: Path | None, annotations: Path | None, images: Path | None) -> list[Subset]:
    """The export's JSON files: Roboflow split folders, CVAT's annotations/, or --annotations/--images."""
    if annotations is not None:
        if images is None:
            raise UserError("--annotations needs --images DIR, the folder its file names are relative to")
        if not annotations.is_file():
            raise UserError(f"--annotations {annotations} not found: pass the COCO instances JSON")
        return [Subset("default", annotations, images)]
    if src is None or not src.is_dir():
        raise UserError(f"--src {src} is not a folder: pass the unzipped export (or --annotations/--images)")
    roboflow = sorted(p for p in src.iterdir() if (p / ROBOFLOW_JSON).is_file())
    if (src / ROBOFLOW_JSON).is_file():
        return [Subset("default", src / ROBOFLOW_JSON, src)]
    if roboflow:
        return [
            Subset(SPLIT_NAMES.get(p.name.lower(), p.name.lower()), p / ROBOFLOW_JSON, p) for p in roboflow
        ]
    cvat = sorted((src / "annotations").glob("instances_*.json"))
    if cvat:
        subsets = []
        for path in cvat:
            name = path.stem.removeprefix("instances_")
            folder = src / "images" / name
            split = "default" if len(cvat) == 1 else SPLIT_NAMES.get(name.lower(), name.lower())
            subsets.append(Subset(split, path, folder if folder.is_dir() else src / "images"))
        return subsets
    raise UserError(
        f"no COCO export found in {src}: expected Roboflow's <split>/{ROBOFLOW_JSON} or CVAT's "
        "annotations/instances_<subset>.json (or pass --annotations FILE --images DIR)"
    )


def read_json(path: Path) -> dict:
    try:
        coco = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise UserError(f"cannot read {path}: {error}; export the COCO JSON again") from None
    if not isinstance(coco, dict) or not {"images", "annotations", "categories"} <= coco.keys():
        raise UserError(f"{path} is not a COCO instances JSON (images, annotations, categories)")
    return coco


def read_categories(coco_files: list[tuple[Subset, dict]]) -> dict[int, str]:
    """Category id -> name, the same in every JSON; UserError for two categories with one name."""
    categories: dict[int, str] = {}
    for subset, coco in coco_files:
        these = {int(c["id"]): str(c["name"]) for c in coco["categories"]}
        names = list(these.values())
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise UserError(
                f"{subset.json_path} names category {twice[0]!r} twice: merge or rename the two in the "
                "labelling tool and export again"
            )
        if categories and these != categories:
            raise UserError(
                f"{subset.json_path} lists other categories than {coco_files[0][0].json_path}: export every "
                "split from one project"
            )
        categories = these
    return categories


def check_segmentation(segmentation, height: int, width: int, where: str) -> None:
    """UserError for a polygon of fewer than three points, a shape wholly outside the image, or an RLE
    of another size than its image."""
    if isinstance(segmentation, dict):
        size = [int(v) for v in segmentation.get("size", [])]
        if size != [height, width]:
            raise UserError(f"{where}: its RLE is {size}, not the image's [{height}, {width}]: export again")
        return
    if not isinstance(segmentation, list) or not segmentation:
        raise UserError(f"{where} has no segmentation (polygons or RLE): draw a mask or polygon for it")
    points = []
    for polygon in segmentation:
        if len(polygon) < 6:
            raise UserError(
                f"{where} has a polygon of {len(polygon) // 2} point(s): a polygon needs three or more; "
                "delete or redraw it"
            )
        points.extend(polygon)
    xs, ys = np.asarray(points[0::2], dtype=float), np.asarray(points[1::2], dtype=float)
    if xs.max() <= 0 or xs.min() >= width or ys.max() <= 0 or ys.min() >= height:
        raise UserError(f"{where} lies wholly outside its {width}x{height} image: delete or redraw it")


def plan(
    subsets: list[Subset], data_dir: Path
) -> tuple[list[Job], tuple[str, ...], dict[str, list[str]], list]:
    """Read and check every JSON and image header; returns the jobs, the class names, the split lists and
    the categories left out (no annotation). Writes nothing."""
    coco_files = [(subset, read_json(subset.json_path)) for subset in subsets]
    categories = read_categories(coco_files)
    used = {int(a["category_id"]) for _, coco in coco_files for a in coco["annotations"]}
    kept = [c for c in sorted(categories) if c in used]
    if len(kept) + 1 > IGNORE_INDEX:
        raise UserError(f"{len(kept)} categories: at most {IGNORE_INDEX - 1} fit an 8-bit mask")
    class_of = {c: k + 1 for k, c in enumerate(kept)}
    jobs, splits, seen = [], {}, {}
    for subset, coco in coco_files:
        records = {int(image["id"]): image for image in coco["images"]}
        by_image: dict[int, list] = {i: [] for i in records}
        for a in coco["annotations"]:
            where = f"{subset.json_path}: annotation {a.get('id')}"
            if int(a["image_id"]) not in records:
                raise UserError(
                    f"{where} is of image id {a['image_id']}, which the JSON's images do not list"
                )
            if int(a["category_id"]) not in categories:
                raise UserError(
                    f"{where} has category id {a['category_id']}, which the JSON's categories do not list: "
                    "export again with every label of the project"
                )
            image = records[int(a["image_id"])]
            check_segmentation(a.get("segmentation"), int(image["height"]), int(image["width"]), where)
            by_image[int(a["image_id"])].append(a)
        for number, image in records.items():
            source = subset.image_dir / image["file_name"]
            image_id = Path(image["file_name"]).stem
            if image_id in seen:
                raise UserError(f"{source} and {seen[image_id]} have the same name: rename one of them")
            seen[image_id] = source
            ordered = sorted(by_image[number], key=lambda a: -float(a.get("area") or 0))  # larger first
            jobs.append(
                Job(
                    image_id, source, data_dir / "images" / f"{image_id}{source.suffix.lower()}",
                    data_dir / "masks" / f"{image_id}.png", int(image["height"]), int(image["width"]),
                    [(class_of[int(a["category_id"])], a["segmentation"]) for a in ordered],
                )
            )  # fmt: skip
            splits.setdefault(subset.split, []).append(image_id)
    check_images(jobs)
    names = ("background", *(categories[c] for c in kept))
    return jobs, names, split_lists(splits), [categories[c] for c in sorted(categories) if c not in used]


def check_images(jobs: list[Job], threads: int = 8) -> None:
    """UserError naming the first image that is missing, is not an image, or whose upright size is not
    the JSON's (only its header is read)."""

    def check(job: Job) -> str:
        if not job.source.is_file():
            return f"{job.source} not found (an image of the JSON): put the export's images beside it"
        try:
            with Image.open(job.source) as image:
                size, stored = upright_size(image), image.size
        except OSError as error:
            return f"{job.source} is not an image ({error}): replace it or remove it from the JSON"
        if size != (job.width, job.height):
            turned = " (its EXIF orientation turns it)" if stored != size else ""
            return (
                f"{job.source} is {size[0]}x{size[1]} upright{turned} but the JSON says {job.width}x"
                f"{job.height}: export the images and the JSON together"
            )
        return ""

    with ThreadPoolExecutor(threads) as pool:
        problems = [p for p in pool.map(check, jobs) if p]
    if problems:
        raise UserError(problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))


def split_lists(splits: dict[str, list[str]]) -> dict[str, list[str]]:
    """The lists to write: none for one unnamed subset (main.py holds val out by hash); a val list held
    out of train by hash when the export has splits but no val."""
    if list(splits) == ["default"]:
        return {}
    if "val" not in splits and "train" in splits:
        val = held_out(splits["train"])
        splits["val"] = [i for i in splits["train"] if i in val]
        splits["train"] = [i for i in splits["train"] if i not in val]
    order = {"train": 0, "val": 1, "test": 2}
    return {split: sorted(splits[split]) for split in sorted(splits, key=lambda s: (order.get(s, 3), s))}


def rasterise(job: Job) -> np.ndarray:
    """uint8 HxW class indices: the job's segmentations painted in order (0 where none is)."""
    mask = np.zeros((job.height, job.width), dtype=np.uint8)
    for index, segmentation in job.segmentations:
        if isinstance(segmentation, list):  # polygons: one RLE each, merged
            rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, job.height, job.width))
        elif isinstance(segmentation["counts"], list):  # uncompressed RLE
            rle = mask_utils.frPyObjects(segmentation, job.height, job.width)
        else:
            rle = segmentation
        mask[mask_utils.decode(rle).astype(bool)] = index
    return mask


def same_bytes(a: Path, b: Path) -> bool:
    return b.is_file() and a.stat().st_size == b.stat().st_size and a.read_bytes() == b.read_bytes()


def convert(job: Job) -> tuple[np.ndarray, int]:
    """Write one image and its mask (each only when it differs from what is there); returns the mask's
    pixel count per value (256) and the number of files written."""
    mask = rasterise(job)
    written = 0
    if not holds_mask(job.mask_out, mask):
        save_image_atomically(Image.fromarray(mask, mode="L"), job.mask_out, compress_level=1)
        written += 1
    if not same_bytes(job.source, job.image_out):
        with replaced_atomically(job.image_out, tag=f".{os.getpid()}") as tmp:
            shutil.copyfile(job.source, tmp)
        written += 1
    return np.bincount(mask.ravel(), minlength=256), written


def convert_all(jobs: list[Job], workers: int, progress: bool) -> Iterator[tuple[np.ndarray, int]]:
    with Pool(workers) if workers > 1 else nullcontext() as pool:
        mapped = pool.imap_unordered(convert, jobs, chunksize=8) if pool else map(convert, jobs)
        yield from tqdm(mapped, total=len(jobs), desc="coco", unit="img", disable=not progress)


def write(subsets: list[Subset], data_dir: Path, workers: int = 0, progress: bool = True) -> dict:
    """Check the export, then write the plain layout; returns what was written (for the summary)."""
    jobs, names, splits, unused = plan(subsets, data_dir)
    for folder in ("images", "masks", *(["splits"] if splits else [])):
        (data_dir / folder).mkdir(parents=True, exist_ok=True)
    pixels, written = np.zeros(256, dtype=np.int64), 0
    for counts, files in convert_all(jobs, workers or os.cpu_count() or 1, progress):
        pixels += counts
        written += files
    write_text_atomically(data_dir / "classes.txt", "".join(f"{name}\n" for name in names))
    for split, ids in splits.items():
        write_text_atomically(data_dir / "splits" / f"{split}.txt", "".join(f"{i}\n" for i in ids))
    return {"images": len(jobs), "names": names, "splits": splits, "unused": unused,
            "pixels": pixels[: len(names)], "written": written}  # fmt: skip


def summary(data_dir: Path, report: dict) -> str:
    shares = report["pixels"] / max(1, report["pixels"].sum())
    splits = (
        ", ".join(f"{split} {len(ids)}" for split, ids in report["splits"].items()) or "val held out by hash"
    )
    line = (
        f"{data_dir}: {report['images']} images, {len(report['names'])} classes, {splits}; pixels: "
        + ", ".join(f"{name} {share:.1%}" for name, share in zip(report["names"], shares, strict=True))
        + f"; {report['written']} file(s) written"
    )
    if report["unused"]:
        line += f"; left out (no annotation): {', '.join(report['unused'])}"
    return line


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--src", help="the unzipped export: Roboflow split folders or CVAT's COCO 1.0")
    parser.add_argument("--annotations", help="a COCO instances JSON (instead of --src)")
    parser.add_argument("--images", help="the folder --annotations' file names are relative to")
    parser.add_argument("--data_dir", required=True, help="where to write the plain layout")
    parser.add_argument("--workers", type=int, default=0, help="processes (default: 0 = one per core)")
    args = parser.parse_args()
    subsets = find_subsets(
        Path(args.src) if args.src else None,
        Path(args.annotations) if args.annotations else None,
        Path(args.images) if args.images else None,
    )
    data_dir = Path(args.data_dir)
    print(summary(data_dir, write(subsets, data_dir, args.workers)))
    return 0


if __name__ == "__main__":
    sys.exit(exit_status(main))
