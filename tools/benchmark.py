"""Throughput figures, measured side by side in one run; prints a table and one JSON line.

python tools/benchmark.py voc [--files 2000]       tools/voc.py against the reference converter
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.io
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dataset import VOCSegmentation  # noqa: E402
from tools.demo_data import draw_sample, save_sbd_mat  # noqa: E402
from tools.voc import prepare  # noqa: E402


def print_table(rows: list[dict]) -> None:
    keys = list(rows[0])
    widths = [max(len(k), *(len(str(r[k])) for r in rows)) for k in keys]
    print("  ".join(k.ljust(w) for k, w in zip(keys, widths, strict=True)))
    for row in rows:
        print("  ".join(str(row[k]).ljust(w) for k, w in zip(keys, widths, strict=True)))


def fake_sbd_tree(root: Path, files: int, seed: int = 0) -> Path:
    """`files` SBD masks of VOC's usual size (500x375, a few ellipses) in the raw layout of tools/voc.py."""
    rng = np.random.default_rng(seed)
    voc, sbd = root / "VOCdevkit/VOC2012", root / "VOCdevkit/VOCaug/dataset"
    (voc / "SegmentationClass").mkdir(parents=True)
    (voc / "ImageSets/Segmentation").mkdir(parents=True)
    (sbd / "cls").mkdir(parents=True)
    yy, xx = np.mgrid[:375, :500]
    ids = [f"2008_{i:06d}" for i in range(files)]
    for image_id in ids:
        mask = np.zeros((375, 500), dtype=np.uint8)
        for c in rng.integers(1, 21, size=rng.integers(1, 4)):
            cy, cx, ry, rx = (
                rng.uniform(50, 325),
                rng.uniform(50, 450),
                rng.uniform(20, 150),
                rng.uniform(20, 200),
            )
            mask[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1] = c
        save_sbd_mat(sbd / "cls" / f"{image_id}.mat", mask)
    (sbd / "train.txt").write_text("\n".join(ids) + "\n")
    for name in (
        sbd / "val.txt",
        voc / "ImageSets/Segmentation/train.txt",
        voc / "ImageSets/Segmentation/val.txt",
    ):
        name.write_text("")
    return root


def reference_convert(root: Path, out: Path) -> None:
    """The plain approach: one process, scipy.io.loadmat and a PIL save per file."""
    out.mkdir(exist_ok=True)
    for path in sorted((root / "VOCdevkit/VOCaug/dataset/cls").iterdir()):
        segmentation = scipy.io.loadmat(path)["GTcls"][0, 0]["Segmentation"]
        Image.fromarray(segmentation).save(out / f"{path.stem}.png")


def bench_voc(args: argparse.Namespace) -> dict:
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        root = fake_sbd_tree(Path(tmp), args.files)
        rows = []

        def timed(name: str, processes: int, run) -> None:
            start = time.perf_counter()
            run()
            seconds = time.perf_counter() - start
            rate = args.files / seconds
            rows.append(
                {
                    "converter": name,
                    "processes": processes,
                    "seconds": round(seconds, 2),
                    "files/s": round(rate, 1),
                    "files/s per process": round(rate / processes, 1),
                }
            )

        timed("reference (loadmat + PIL save)", 1, lambda: reference_convert(root, Path(tmp) / "reference"))
        timed("tools/voc.py --workers 1", 1, lambda: prepare(root, workers=1, force=True, progress=False))
        timed(
            f"tools/voc.py --workers {cores}",
            cores,
            lambda: prepare(root, workers=cores, force=True, progress=False),
        )
        timed(
            "tools/voc.py re-run (all up to date)",
            cores,
            lambda: prepare(root, workers=cores, progress=False),
        )
    print_table(rows)
    return {"benchmark": "voc", "files": args.files, "cores": cores, "rows": rows}


def fake_voc_tree(root: Path, images: int, seed: int = 0) -> Path:
    """A prepared tree (JPEGImages, SegmentationClassAug, trainaug.txt) of VOC-sized (500x375) images."""
    rng = np.random.default_rng(seed)
    voc = root / "VOCdevkit/VOC2012"
    for folder in ("JPEGImages", "SegmentationClassAug", "ImageSets/Segmentation"):
        (voc / folder).mkdir(parents=True)
    ids = [f"2008_{i:06d}" for i in range(images)]
    for image_id in ids:
        image, mask = draw_sample(rng, [int(c) for c in rng.integers(1, 21, size=3)])
        size = (500, 375) if rng.random() < 0.7 else (375, 500)  # landscape or portrait, like VOC
        Image.fromarray(image).resize(size, Image.BILINEAR).save(
            voc / f"JPEGImages/{image_id}.jpg", quality=90
        )
        Image.fromarray(mask).resize(size, Image.NEAREST).save(voc / f"SegmentationClassAug/{image_id}.png")
    (voc / "ImageSets/Segmentation/trainaug.txt").write_text("\n".join(ids) + "\n")
    return root


def reference_sample(image_path: Path, mask_path: Path, rng: np.random.Generator, crop: int, scale: tuple):
    """torchvision references/segmentation style: PIL resize of the whole image, pad, crop, flip,
    to-tensor and normalise in the worker."""
    import torchvision.transforms.functional as TF

    image, mask = Image.open(image_path).convert("RGB"), Image.open(mask_path)
    s = rng.uniform(*scale)
    size = (round(image.height * s), round(image.width * s))
    image = TF.resize(image, size, interpolation=TF.InterpolationMode.BILINEAR)
    mask = TF.resize(mask, size, interpolation=TF.InterpolationMode.NEAREST)
    pad_h, pad_w = max(crop - size[0], 0), max(crop - size[1], 0)
    image = TF.pad(image, [0, 0, pad_w, pad_h], fill=0)
    mask = TF.pad(mask, [0, 0, pad_w, pad_h], fill=255)
    top, left = rng.integers(0, image.height - crop + 1), rng.integers(0, image.width - crop + 1)
    image, mask = TF.crop(image, top, left, crop, crop), TF.crop(mask, top, left, crop, crop)
    if rng.random() < 0.5:
        image, mask = TF.hflip(image), TF.hflip(mask)
    image = TF.normalize(TF.to_tensor(image), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    return image, torch.as_tensor(np.array(mask), dtype=torch.int64)


def bench_data(args: argparse.Namespace) -> dict:
    """Images/s of one process (the work of one loader worker) at the training crop."""
    torch.set_num_threads(1)  # a loader worker runs single-threaded
    with tempfile.TemporaryDirectory() as tmp:
        root = fake_voc_tree(Path(tmp), args.images)
        ds = VOCSegmentation(root, "trainaug", train=True, crop_size=args.crop_size)
        rng = np.random.default_rng(0)

        def reference() -> None:
            for image_path, mask_path in zip(ds.images, ds.masks, strict=True):
                reference_sample(image_path, mask_path, rng, args.crop_size, (0.5, 2.0))

        def ours() -> None:
            for i in range(len(ds)):
                ds[i]

        rows = []
        for name, run in (("torchvision-references style", reference), ("dataset.py", ours)):
            run()  # warm the file cache and the code paths
            seconds = min(timed_seconds(run) for _ in range(args.repeats))
            rows.append(
                {
                    "pipeline": name,
                    "crop": args.crop_size,
                    "images/s per worker": round(args.images / seconds, 1),
                }
            )
    rows[1]["speed-up"] = round(rows[1]["images/s per worker"] / rows[0]["images/s per worker"], 2)
    rows[0]["speed-up"] = 1.0
    print_table(rows)
    return {"benchmark": "data", "images": args.images, "rows": rows}


def timed_seconds(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    voc = sub.add_parser("voc", help="tools/voc.py against the reference converter")
    voc.add_argument("--files", type=int, default=2000, help="number of generated 500x375 SBD masks")
    data = sub.add_parser("data", help="dataset.py against a torchvision-references pipeline")
    data.add_argument("--images", type=int, default=200, help="number of generated 500x375 images")
    data.add_argument("--crop_size", type=int, default=320)
    data.add_argument("--repeats", type=int, default=3, help="best of this many passes")
    args = parser.parse_args()
    result = {"voc": bench_voc, "data": bench_data}[args.command](args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
