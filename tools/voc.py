"""Turn the raw PASCAL VOC 2012 and SBD downloads into training-ready masks and the trainaug list.

    python tools/voc.py [--data_dir data] [--workers N] [--force]

Reads   <data_dir>/VOCdevkit/VOC2012/{SegmentationClass/*.png, ImageSets/Segmentation/{train,val}.txt}
        <data_dir>/VOCdevkit/{VOCaug or benchmark_RELEASE}/dataset/{cls/*.mat, train.txt, val.txt}
Writes  <data_dir>/VOCdevkit/VOC2012/SegmentationClassAug/<id>.png   8-bit grayscale, 0-20, 255 = void
        <data_dir>/VOCdevkit/VOC2012/ImageSets/Segmentation/trainaug.txt

An id that VOC annotates (VOC train or val) takes VOC's mask with its void border; every other id
takes its SBD mask. trainaug = (SBD train + SBD val + VOC train) - VOC val: 10,582 ids on the full sets.
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import nullcontext
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from layouts import IGNORE_INDEX, VOC_NUM_CLASSES, VOC_PALETTE, indices_from_colors, invalid_labels  # noqa: E402
from utils import UserError, exit_status, holds_mask, save_image_atomically, write_text_atomically  # noqa: E402

VOC_INDICES = [*range(VOC_NUM_CLASSES), IGNORE_INDEX]  # what a VOC annotation may hold

SBD_FOLDER_NAMES = ("VOCaug", "benchmark_RELEASE")
FULL_SIZES = {"voc_train": 1464, "voc_val": 1449, "sbd_train": 8498, "sbd_val": 2857}
TRAINAUG_SIZE = 10582
VOC_URL = "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar"
SBD_URL = "http://www.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/semantic_contours/benchmark.tgz"


class BadMask(Exception):
    """An input mask that cannot be converted; the message says why."""


def find_sources(data_dir: Path) -> dict[str, Path]:
    """Locate the raw folders and lists, or raise UserError naming what is missing and where it comes from."""
    devkit = data_dir / "VOCdevkit"
    voc = devkit / "VOC2012"
    if not (voc / "SegmentationClass").is_dir():
        raise UserError(
            f"{voc / 'SegmentationClass'} not found: download {VOC_URL} and unpack it in {data_dir}/ "
            f"(it creates VOCdevkit/VOC2012), or pass --data_dir"
        )
    sbd = next((devkit / name / "dataset" for name in SBD_FOLDER_NAMES if (devkit / name).is_dir()), None)
    if sbd is None:
        raise UserError(
            f"SBD not found: neither {devkit / 'VOCaug'} nor {devkit / 'benchmark_RELEASE'} exists. "
            f"Download {SBD_URL} and unpack it in {devkit}/ (it creates benchmark_RELEASE)"
        )
    sources = {
        "voc_masks": voc / "SegmentationClass",
        "voc_train": voc / "ImageSets" / "Segmentation" / "train.txt",
        "voc_val": voc / "ImageSets" / "Segmentation" / "val.txt",
        "sbd_masks": sbd / "cls",
        "sbd_train": sbd / "train.txt",
        "sbd_val": sbd / "val.txt",
    }
    for name, path in sources.items():
        if not path.exists():
            download = VOC_URL if name.startswith("voc") else SBD_URL
            raise UserError(f"{path} not found: the download is incomplete; unpack {download} again")
    return sources


def read_ids(path: Path) -> list[str]:
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def read_voc_mask(path: Path) -> np.ndarray:
    """VOC annotation PNG -> HxW uint8 class indices. Palette and grayscale PNGs hold the indices;
    RGB ones (re-saved by some other tool) are mapped back through the VOC colour map."""
    with Image.open(path) as image:
        if image.mode in ("P", "L"):
            return np.array(image)
        if image.mode not in ("RGB", "RGBA"):
            raise BadMask(f"unexpected PNG mode {image.mode} (want palette, grayscale or RGB)")
        rgb = np.array(image.convert("RGB"))
    mask, unknown = indices_from_colors(rgb, VOC_PALETTE[VOC_INDICES], VOC_INDICES)
    if unknown:
        raise BadMask(f"colour {unknown} is not in the VOC colour map")
    return mask


def read_sbd_mask(path: Path) -> np.ndarray:
    """SBD class annotation (.mat, struct GTcls) -> HxW uint8 class indices."""
    data = scipy.io.loadmat(path, variable_names=["GTcls"], squeeze_me=True, struct_as_record=False)
    if "GTcls" not in data:
        raise BadMask("no GTcls variable (is it an SBD cls/ file?)")
    return np.asarray(data["GTcls"].Segmentation)


def check_values(mask: np.ndarray) -> np.ndarray:
    if mask.ndim != 2:
        raise BadMask(f"expected a 2-D mask, got shape {mask.shape}")
    bad = invalid_labels(mask, VOC_NUM_CLASSES)
    if bad:
        raise BadMask(f"values {bad} outside 0-{VOC_NUM_CLASSES - 1} and {IGNORE_INDEX}")
    return mask.astype(np.uint8, copy=False)


def convert(job: tuple[str, Path, Path, bool]) -> tuple[str, str, str]:
    """One mask: (kind, source, out, force) -> (status, source path, reason); status is
    'written', 'unchanged' or 'error'."""
    kind, source, out, force = job
    try:
        mask = check_values(read_voc_mask(source) if kind == "voc" else read_sbd_mask(source))
        if not force and holds_mask(out, mask):
            return "unchanged", str(source), ""
        save_image_atomically(Image.fromarray(mask, mode="L"), out, compress_level=1)
        return "written", str(source), ""
    except FileNotFoundError:
        return "error", str(source), "file not found"
    except BadMask as error:
        return "error", str(source), str(error)
    except Exception as error:  # any unreadable input is reported, and the others are still converted
        return "error", str(source), f"{type(error).__name__}: {error}"


def trainaug_ids(lists: dict[str, list[str]]) -> list[str]:
    return sorted(set(lists["sbd_train"] + lists["sbd_val"] + lists["voc_train"]) - set(lists["voc_val"]))


def prepare(data_dir: Path | str, workers: int = 0, force: bool = False, progress: bool = True) -> dict:
    """Convert every mask and write trainaug.txt. Returns counts and the list of (path, reason) errors."""
    data_dir = Path(data_dir)
    sources = find_sources(data_dir)
    lists = {name: read_ids(sources[name]) for name in FULL_SIZES}
    out_dir = sources["voc_masks"].parent / "SegmentationClassAug"
    out_dir.mkdir(exist_ok=True)

    voc_ids = set(lists["voc_train"] + lists["voc_val"])
    all_ids = sorted(voc_ids | set(lists["sbd_train"] + lists["sbd_val"]))
    jobs = [
        ("voc", sources["voc_masks"] / f"{i}.png", out_dir / f"{i}.png", force)
        if i in voc_ids
        else ("sbd", sources["sbd_masks"] / f"{i}.mat", out_dir / f"{i}.png", force)
        for i in all_ids
    ]
    workers = workers or os.cpu_count() or 1
    with Pool(workers) if workers > 1 else nullcontext() as pool:
        mapped = pool.imap_unordered(convert, jobs, chunksize=16) if pool else map(convert, jobs)
        results = list(tqdm(mapped, total=len(jobs), desc="masks", unit="file", disable=not progress))

    trainaug = trainaug_ids(lists)
    trainaug_path = sources["voc_train"].with_name("trainaug.txt")
    write_text_atomically(trainaug_path, "".join(f"{i}\n" for i in trainaug))

    counts = {status: sum(r[0] == status for r in results) for status in ("written", "unchanged", "error")}
    errors = sorted((path, reason) for status, path, reason in results if status == "error")
    full_size = all(len(lists[name]) == size for name, size in FULL_SIZES.items())
    return {
        **counts,
        "errors": errors,
        "trainaug": len(trainaug),
        "trainaug_path": trainaug_path,
        "out_dir": out_dir,
        "full_size": full_size,
        "lists": {k: len(v) for k, v in lists.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data_dir", default="data", help="folder holding VOCdevkit/ (default: data)")
    parser.add_argument("--workers", type=int, default=0, help="processes (default: 0 = one per core)")
    parser.add_argument("--force", action="store_true", help="rewrite masks that are already correct")
    args = parser.parse_args()
    report = prepare(args.data_dir, args.workers, args.force)

    sizes = report["lists"]
    print(
        f"read VOC train {sizes['voc_train']}, VOC val {sizes['voc_val']}, "
        f"SBD train {sizes['sbd_train']}, SBD val {sizes['sbd_val']} ids"
    )
    print(
        f"{report['out_dir']}: {report['written']} masks written, {report['unchanged']} already up to date, "
        f"{len(report['errors'])} failed"
    )
    print(f"{report['trainaug_path']}: {report['trainaug']} ids")
    if report["full_size"] and report["trainaug"] != TRAINAUG_SIZE:
        print(
            f"warning: full-size VOC 2012 + SBD should give {TRAINAUG_SIZE} trainaug ids, "
            f"got {report['trainaug']}: check the split lists",
            file=sys.stderr,
        )
    for path, reason in report["errors"]:
        print(f"error: {path}: {reason}", file=sys.stderr)
    if report["errors"]:
        print(
            f"{len(report['errors'])} input(s) could not be converted; fix or re-download them and run "
            f"again (correct outputs are kept)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(exit_status(main))
