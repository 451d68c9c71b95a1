"""Shared test helpers: running the scripts, and small data sets in the formats of VOC, labelme, CVAT and
the plain layout (the demo data sets themselves are fixtures, in conftest.py)."""

import contextlib
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"  # the real files, where the machine has them
CAMVID = SHARED / "camvid"
ISBI = SHARED / "isbi2012"
TORCHRUN = [sys.executable, *"-m torch.distributed.run --nproc_per_node 2 --master_port 29517".split()]


def copy_tree(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest)
    return dest


def run_script(
    *args: str, cwd: Path = ROOT, timeout: float = 300, env: dict | None = None
) -> subprocess.CompletedProcess:
    command = [sys.executable, *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def prepared_tree(root: Path, samples: dict, splits: dict) -> Path:
    """A prepared tree (what tools/voc.py leaves) from arrays: samples maps id -> (RGB HxWx3, mask HxW)."""
    voc = root / "VOCdevkit" / "VOC2012"
    for folder in ("JPEGImages", "SegmentationClassAug", "ImageSets/Segmentation"):
        (voc / folder).mkdir(parents=True, exist_ok=True)
    for image_id, (image, mask) in samples.items():
        Image.fromarray(np.asarray(image, dtype=np.uint8)).save(
            voc / "JPEGImages" / f"{image_id}.jpg", quality=95
        )
        Image.fromarray(np.asarray(mask, dtype=np.uint8), mode="L").save(
            voc / "SegmentationClassAug" / f"{image_id}.png"
        )
    for split, ids in splits.items():
        (voc / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return root


# Exports of the annotation tools, written the way the tools write them.

OWN_CLASSES = ("_background_", "road", "potted plant", "tv/monitor")  # labelme keeps spaces and slashes
CVAT_COLORS = ((0, 0, 0), (250, 50, 83), (36, 179, 83), (61, 61, 245))


def own_sample(rng: np.random.Generator, size=(48, 64)) -> tuple[np.ndarray, np.ndarray]:
    """An RGB image HxWx3 and its class mask HxW: rectangles whose colour tells their class."""
    height, width = size
    mask = np.zeros(size, dtype=np.uint8)
    for c in range(1, len(OWN_CLASSES)):
        y, x = rng.integers(0, height - 12), rng.integers(0, width - 12)
        mask[y : y + rng.integers(8, 20), x : x + rng.integers(8, 24)] = c
    image = (np.array(CVAT_COLORS, dtype=np.uint8)[mask] // 2 + 60).astype(np.uint8)
    return image, mask


def labelme_export(root: Path, count: int = 12, newer: bool = False, seed: int = 0) -> Path:
    """What labelme's examples/semantic_segmentation/labelme2voc.py writes: JPEGImages/<id>.jpg (the
    image bytes as labelme stored them, so some are PNGs behind a .jpg name), palette PNGs with the VOC
    colour map in SegmentationClassPNG/ (SegmentationClass/ in newer labelme) beside .npy arrays,
    255 = __ignore__, and class_names.txt without a final newline."""
    from layouts import VOC_PALETTE

    rng = np.random.default_rng(seed)
    masks = root / ("SegmentationClass" if newer else "SegmentationClassPNG")
    for folder in ("JPEGImages", "SegmentationClass", masks.name):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "class_names.txt").write_text("\n".join(OWN_CLASSES))
    for k in range(count):
        image, mask = own_sample(rng)
        mask[:2] = 255  # an __ignore__ stripe
        Image.fromarray(image).save(
            root / "JPEGImages" / f"img_{k:03d}.jpg", format="PNG" if k % 3 else "JPEG"
        )
        label = Image.fromarray(mask, mode="P")
        label.putpalette(VOC_PALETTE.tobytes())
        label.save(masks / f"img_{k:03d}.png")
        np.save(
            root / "SegmentationClass" / f"img_{k:03d}.npy", np.where(mask == 255, -1, mask).astype(np.int32)
        )
    return root


def cvat_export(root: Path, count: int = 12, seed: int = 1) -> Path:
    """CVAT's "Segmentation mask 1.1" export saved with its images: labelmap.txt, RGB class masks in
    SegmentationClass/, instance masks in SegmentationObject/, ImageSets/Segmentation/default.txt."""
    rng = np.random.default_rng(seed)
    for folder in ("JPEGImages", "SegmentationClass", "SegmentationObject", "ImageSets/Segmentation"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    names = ["background", *OWN_CLASSES[1:]]
    (root / "labelmap.txt").write_text(
        "# label:color_rgb:parts:actions\n"
        + "".join(f"{n}:{r},{g},{b}::\n" for n, (r, g, b) in zip(names, CVAT_COLORS, strict=True))
    )
    ids = [f"frame_{k:06d}" for k in range(count)]
    for image_id in ids:
        image, mask = own_sample(rng)
        Image.fromarray(image).save(root / "JPEGImages" / f"{image_id}.jpg", quality=95)
        Image.fromarray(np.array(CVAT_COLORS, dtype=np.uint8)[mask]).save(
            root / "SegmentationClass" / f"{image_id}.png"
        )
        Image.fromarray((mask > 0).astype(np.uint8) * 255).save(
            root / "SegmentationObject" / f"{image_id}.png"
        )
    (root / "ImageSets/Segmentation/default.txt").write_text("".join(f"{i}\n" for i in ids))
    return root


def plain_layout(root: Path, splits: dict[str, int], seed: int = 2) -> Path:
    """The project's plain layout: classes.txt (name: r,g,b), images/, masks/ (index PNGs), splits/."""
    rng = np.random.default_rng(seed)
    for folder in ("images", "masks", "splits"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text(
        "".join(f"{n}: {r},{g},{b}\n" for n, (r, g, b) in zip(OWN_CLASSES, CVAT_COLORS, strict=True))
    )
    for split, count in splits.items():
        ids = [f"{split}{k}" for k in range(count)]
        for image_id in ids:
            image, mask = own_sample(rng)
            Image.fromarray(image).save(root / "images" / f"{image_id}.png")
            Image.fromarray(mask, mode="L").save(root / "masks" / f"{image_id}.png")
        (root / "splits" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return root


def binary_layout(
    root: Path,
    count: int = 12,
    suffix: str = ".png",
    values: tuple[int, int] = (0, 255),
    tag: str = "",
    classes: str | None = None,
    splits: dict[str, list[int]] | None = None,
    seed: int = 3,
) -> Path:
    """Binary data as U-Net users store it: grayscale images/<id>.png (bright blobs on a dark, noisy
    field) and masks/<id><tag><suffix> holding values[0] (background) and values[1] (blobs), 16-bit where
    a value exceeds 255 (PNG, GIF, TIFF or BMP, as PIL writes them); classes.txt with the given text, and
    splits/<split>.txt listing the given sample numbers."""
    rng = np.random.default_rng(seed)
    for folder in ("images", "masks"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    dtype = np.uint16 if max(values) > 255 else np.uint8
    for k in range(count):
        blobs = np.zeros((48, 64), dtype=bool)
        for _ in range(3):
            y, x = rng.integers(6, 42), rng.integers(6, 58)
            yy, xx = np.ogrid[:48, :64]
            blobs |= (yy - y) ** 2 + (xx - x) ** 2 < rng.integers(16, 60)
        image = np.where(blobs, 190, 50) + rng.integers(0, 30, blobs.shape)
        Image.fromarray(image.astype(np.uint8), mode="L").save(root / "images" / f"s{k:02d}.png")
        mask = np.where(blobs, values[1], values[0]).astype(dtype)
        Image.fromarray(mask).save(root / "masks" / f"s{k:02d}{tag}{suffix}")
    if classes is not None:
        (root / "classes.txt").write_text(classes)
    for split, numbers in (splits or {}).items():
        (root / "splits").mkdir(exist_ok=True)
        (root / "splits" / f"{split}.txt").write_text("".join(f"s{k:02d}\n" for k in numbers))
    return root


# COCO instances exports (Roboflow "COCO Segmentation", CVAT "COCO 1.0") and Roboflow's mask export.

SHAPE_CLASSES = ("circle", "square")
SHAPE_COLORS = ((40, 40, 40), (220, 60, 60), (60, 200, 90))  # background, circle, square


def shape_objects(rng: np.random.Generator, height: int = 48, width: int = 64) -> list[tuple[int, list]]:
    """Two or three objects as (class 1 or 2, polygon [x0, y0, x1, y1, ...]): a square and a 12-gon circle,
    the square sometimes drawn as two polygons (an object in two parts)."""
    objects = []
    for _ in range(rng.integers(2, 4)):
        kind = int(rng.integers(1, 3))
        cx, cy, r = rng.uniform(12, width - 12), rng.uniform(12, height - 12), rng.uniform(5, 11)
        if kind == 1:
            angles = np.linspace(0, 2 * np.pi, 12, endpoint=False)
            polygon = (
                np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], 1).ravel().round(1).tolist()
            )
            objects.append((kind, [polygon]))
        else:
            square = [cx - r, cy - r, cx + r, cy - r, cx + r, cy + r, cx - r, cy + r]
            parts = [square]
            if rng.random() < 0.5:  # a second part, apart from the first
                parts.append([cx - r, cy + r + 2, cx, cy + r + 2, cx, cy + r + 5, cx - r, cy + r + 5])
            objects.append((kind, [[round(v, 1) for v in part] for part in parts]))
    return objects


def coco_annotation(number: int, image_id: int, category: int, segmentation, height: int, width: int) -> dict:
    """An annotation as the tools write it, with area and bbox from pycocotools."""
    from pycocotools import mask as mask_utils

    rle = (
        mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
        if isinstance(segmentation, list)
        else mask_utils.frPyObjects(segmentation, height, width)
    )
    return {
        "id": number, "image_id": image_id, "category_id": category, "segmentation": segmentation,
        "area": float(mask_utils.area(rle)), "bbox": mask_utils.toBbox(rle).round(2).tolist(),
        "iscrowd": int(isinstance(segmentation, dict)),
    }  # fmt: skip


def paint_objects(annotations: list[dict], height: int, width: int, category_to_index: dict) -> np.ndarray:
    """The expected mask, through pycocotools' COCO API (annToMask): larger objects first."""
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = {
        "images": [{"id": 0, "height": height, "width": width}],
        "annotations": [],
        "categories": [],
    }
    with contextlib.redirect_stdout(io.StringIO()):  # its "creating index..." lines
        coco.createIndex()
    mask = np.zeros((height, width), dtype=np.uint8)
    for a in sorted(annotations, key=lambda a: -a["area"]):
        mask[coco.annToMask({**a, "image_id": 0}) > 0] = category_to_index[a["category_id"]]
    return mask


def shapes_image(objects: list, rng: np.random.Generator, height: int = 48, width: int = 64) -> np.ndarray:
    """An RGB picture of the objects, each in its class colour (larger ones first), with noise."""
    annotations = [
        coco_annotation(k, 0, kind, parts, height, width) for k, (kind, parts) in enumerate(objects)
    ]
    classes = paint_objects(annotations, height, width, {1: 1, 2: 2})
    noise = rng.integers(0, 20, (height, width, 3))
    return (np.array(SHAPE_COLORS)[classes] + noise).clip(0, 255).astype(np.uint8)


def roboflow_coco_export(root: Path, counts: dict[str, int] | None = None, seed: int = 4) -> Path:
    """Roboflow's "COCO Segmentation" export: train/, valid/, test/, each with its images (renamed
    <name>_jpg.rf.<hash>.jpg) and _annotations.coco.json, whose category 0 is the project (no annotation)."""
    rng = np.random.default_rng(seed)
    categories = [{"id": 0, "name": "shapes-x1y2", "supercategory": "none"}] + [
        {"id": k + 1, "name": name, "supercategory": "shapes-x1y2"} for k, name in enumerate(SHAPE_CLASSES)
    ]
    for split, count in (counts or {"train": 10, "valid": 3, "test": 2}).items():
        (root / split).mkdir(parents=True, exist_ok=True)
        images, annotations = [], []
        for k in range(count):
            name = f"{split}{k:03d}_jpg.rf.{rng.integers(1 << 40):x}.jpg"
            objects = shape_objects(rng)
            Image.fromarray(shapes_image(objects, rng)).save(root / split / name, quality=95)
            images.append({"id": k, "license": 1, "file_name": name, "height": 48, "width": 64,
                           "date_captured": "2026-01-01T00:00:00+00:00"})  # fmt: skip
            for kind, parts in objects:
                annotations.append(coco_annotation(len(annotations), k, kind, parts, 48, 64))
        coco = {"info": {"description": "Exported from roboflow.com"}, "licenses": [],
                "categories": categories, "images": images, "annotations": annotations}  # fmt: skip
        (root / split / "_annotations.coco.json").write_text(json.dumps(coco))
    return root


def cvat_coco_export(root: Path, count: int = 12, seed: int = 5) -> Path:
    """CVAT's "COCO 1.0" export saved with its images: annotations/instances_default.json and images/;
    polygons as polygons, brush masks as uncompressed RLE with iscrowd 1 (as CVAT writes them)."""
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(seed)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "images").mkdir(exist_ok=True)
    images, annotations = [], []
    for k in range(count):
        name = f"frame_{k:06d}.jpg"
        objects = shape_objects(rng)
        Image.fromarray(shapes_image(objects, rng)).save(root / "images" / name, quality=95)
        images.append({"id": k + 1, "width": 64, "height": 48, "file_name": name, "license": 0,
                       "flickr_url": "", "coco_url": "", "date_captured": 0})  # fmt: skip
        for index, (kind, parts) in enumerate(objects):
            segmentation = parts
            if index == 0 and k % 2:  # a brush mask: CVAT's uncompressed RLE, column-major runs
                binary = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(parts, 48, 64)))
                flat = binary.ravel(order="F")
                edges = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
                segmentation = {"counts": np.diff(np.concatenate([[0], edges])).tolist(), "size": [48, 64]}
            annotation = coco_annotation(len(annotations) + 1, k + 1, kind, segmentation, 48, 64)
            annotations.append({**annotation, "attributes": {"occluded": False}})
    categories = [{"id": k + 1, "name": n, "supercategory": ""} for k, n in enumerate(SHAPE_CLASSES)]
    coco = {"licenses": [{"name": "", "id": 0, "url": ""}], "info": {"contributor": "", "version": ""},
            "categories": categories, "images": images, "annotations": annotations}  # fmt: skip
    (root / "annotations" / "instances_default.json").write_text(json.dumps(coco))
    return root


def roboflow_mask_export(root: Path, counts: dict[str, int] | None = None, seed: int = 6) -> Path:
    """Roboflow's "Semantic Segmentation Masks" export: train/, valid/, test/, each with the images,
    <name>_mask.png (8-bit, pixel = the class's value) beside each, and _classes.csv."""
    rng = np.random.default_rng(seed)
    for split, count in (counts or {"train": 10, "valid": 3, "test": 2}).items():
        (root / split).mkdir(parents=True, exist_ok=True)
        (root / split / "_classes.csv").write_text(
            "Pixel Value, Class\n0, background\n"
            + "".join(f"{k + 1}, {n}\n" for k, n in enumerate(SHAPE_CLASSES))
        )
        for k in range(count):
            name = f"{split}{k:03d}_png.rf.{rng.integers(1 << 40):x}"
            objects = shape_objects(rng)
            Image.fromarray(shapes_image(objects, rng)).save(root / split / f"{name}.jpg", quality=95)
            annotations = [
                coco_annotation(j, 0, kind, parts, 48, 64) for j, (kind, parts) in enumerate(objects)
            ]
            mask = paint_objects(annotations, 48, 64, {1: 1, 2: 2})
            Image.fromarray(mask, mode="L").save(root / split / f"{name}_mask.png")
    return root


def scientific_layout(root: Path, kind: str, count: int = 12, seed: int = 7) -> Path:
    """The plain layout of scientific images, as microscopes and satellites write them: kind "grey16"
    (16-bit grayscale PNGs holding a 12-bit signal), "bands4" (4-band uint16 TIFFs, band-interleaved by
    tifffile) or "float" (1-band float32 TIFFs); masks/<id>.png 0/255, bright where the signal is."""
    import tifffile

    rng = np.random.default_rng(seed)
    for folder in ("images", "masks"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    yy, xx = np.ogrid[:48, :64]
    for k in range(count):
        blobs = np.zeros((48, 64), dtype=bool)
        for _ in range(3):
            y, x = rng.integers(6, 42), rng.integers(6, 58)
            blobs |= (yy - y) ** 2 + (xx - x) ** 2 < rng.integers(16, 60)
        signal = np.where(blobs, 3000, 400) + rng.integers(0, 300, blobs.shape)  # 12-bit counts
        if kind == "grey16":
            Image.fromarray(signal.astype(np.uint16)).save(root / "images" / f"s{k:02d}.png")
        elif kind == "bands4":
            bands = np.stack([signal, signal // 2, 4095 - signal, rng.integers(0, 4096, blobs.shape)], -1)
            tifffile.imwrite(
                root / "images" / f"s{k:02d}.tif",
                bands.astype(np.uint16),
                photometric="minisblack",
                planarconfig="contig",
            )
        else:
            tifffile.imwrite(root / "images" / f"s{k:02d}.tif", (signal / 4095).astype(np.float32))
        Image.fromarray(np.where(blobs, 255, 0).astype(np.uint8)).save(root / "masks" / f"s{k:02d}.png")
    return root


# Running main.py in the tests

# 24 train images / batch 4 = 6 steps an epoch (one pass: --min_epoch_images 0); a 4-channel U-Net: a
# few seconds an epoch on a CPU.
SMALL = "--epochs 2 --batch_size 4 --crop_size 48 --base_channels 4 --num_workers 0 --print_freq 2"
SMALL = [*SMALL.split(), "--min_epoch_images", "0"]


def main_command(data, tmp_path, *extra, name="run"):
    """main.py's arguments for a SMALL run named `name` that writes under tmp_path."""
    output = ["--save_dir", str(tmp_path / "exp"), "--tensorboard_dir", str(tmp_path / "tb")]
    return ["main.py", "--data_dir", str(data), *output, "--name", name, *SMALL, *extra]


def train(data, tmp_path, *extra, name="run"):
    return run_script(*main_command(data, tmp_path, *extra, name=name))


def last_json(stdout):
    return json.loads(stdout.strip().splitlines()[-1])


def assert_user_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("error: ")
    for fragment in fragments:
        assert fragment in message


# Real and turned files


def small_camvid_src(src: Path, root: Path, per_split: int) -> Path:
    """The real CamVid folder with each split list cut to its first `per_split` lines."""
    root.mkdir()
    for split in ("train", "val", "test"):
        (root / split).symlink_to(src / split)
        (root / f"{split}annot").symlink_to(src / f"{split}annot")
        lines = (src / f"{split}.txt").read_text().splitlines()[:per_split]
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def turned_jpeg(path, upright: np.ndarray, orientation: int = 6):
    """A JPEG whose stored pixels are `upright` turned, with the EXIF orientation that shows it upright."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(np.rot90(upright)).save(path, exif=exif, quality=95)
    return path


def start_until_progress_in_epoch(command, epoch):
    """Start main.py in the background; return once its progress bar shows steps done in `epoch` (read
    from the bar on stderr, so the return lands inside the epoch whatever the machine's speed)."""
    process = subprocess.Popen(
        [sys.executable, *command], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    seen = b""
    pattern = re.compile(rf"train {epoch}/\d+:\s+[1-9]\d?%".encode())
    while not pattern.search(seen[-200:]):
        chunk = process.stderr.read1(4096)
        if not chunk:
            break  # ended
        seen += chunk
    return process


def assert_same_weights(a_path, b_path):
    a, b = torch.load(a_path, weights_only=True), torch.load(b_path, weights_only=True)
    assert b["epoch"] == a["epoch"] and b["step"] == a["step"] and b["epoch_step"] == 0
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
