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
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools.demo_data import save_sbd_mat  # noqa: E402
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    voc = sub.add_parser("voc", help="tools/voc.py against the reference converter")
    voc.add_argument("--files", type=int, default=2000, help="number of generated 500x375 SBD masks")
    args = parser.parse_args()
    result = {"voc": bench_voc}[args.command](args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
