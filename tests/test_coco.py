"""tools/coco.py: COCO instances exports (Roboflow, CVAT, any JSON) become the plain layout, with masks
equal to what pycocotools' COCO API paints, and every bad input stops it before anything is written."""

import json

import numpy as np
import pytest
from PIL import Image

from layouts import describe
from tests.helpers import assert_user_error, cvat_coco_export, paint_objects, roboflow_coco_export, run_script


def convert(*args):
    return run_script("tools/coco.py", *map(str, args))


def edit_json(src, change):
    path = src / "annotations/instances_default.json"
    coco = json.loads(path.read_text())
    change(coco)
    path.write_text(json.dumps(coco))
    return path


def assert_masks_as_painted(json_path, out):
    """Every mask tools/coco.py wrote to `out` equals what the COCO API paints from `json_path`."""
    for stem, mask in expected_masks(json_path).items():
        assert np.array_equal(np.array(Image.open(out / "masks" / f"{stem}.png")), mask), stem


def expected_masks(json_path):
    """image stem -> the mask painted from the JSON by pycocotools' COCO API (larger objects first)."""
    coco = json.loads(json_path.read_text())
    used = sorted({a["category_id"] for a in coco["annotations"]})
    index = {c: k + 1 for k, c in enumerate(used)}
    masks = {}
    for image in coco["images"]:
        annotations = [a for a in coco["annotations"] if a["image_id"] == image["id"]]
        stem = image["file_name"].rsplit(".", 1)[0]
        masks[stem] = paint_objects(annotations, image["height"], image["width"], index)
    return masks


@pytest.mark.slow
def test_a_roboflow_export_keeps_its_splits_names_and_masks(tmp_path):
    src = roboflow_coco_export(tmp_path / "export")
    out = tmp_path / "data"
    result = convert("--src", src, "--data_dir", out)
    assert result.returncode == 0, result.stderr
    assert (out / "classes.txt").read_text() == "background\ncircle\nsquare\n"
    assert "left out (no annotation): shapes-x1y2" in result.stdout  # Roboflow's project category
    assert "15 images, 3 classes, train 10, val 3, test 2; pixels: background" in result.stdout
    layout = describe(out)
    assert [len(layout.split_ids(s)) for s in ("train", "val", "test")] == [10, 3, 2]
    for split in ("train", "valid", "test"):
        for stem, mask in expected_masks(src / split / "_annotations.coco.json").items():
            assert np.array_equal(np.array(Image.open(out / "masks" / f"{stem}.png")), mask), stem
            assert (out / "images" / f"{stem}.jpg").read_bytes() == (src / split / f"{stem}.jpg").read_bytes()


@pytest.mark.slow
def test_a_cvat_export_paints_rle_and_polygons_and_holds_val_out(tmp_path):
    src = cvat_coco_export(tmp_path / "export")
    coco = json.loads((src / "annotations/instances_default.json").read_text())
    assert any(a["iscrowd"] and isinstance(a["segmentation"]["counts"], list) for a in coco["annotations"])
    out = tmp_path / "data"
    result = convert("--src", src, "--data_dir", out)
    assert result.returncode == 0, result.stderr
    assert "12 images, 3 classes, val held out by hash" in result.stdout and not (out / "splits").exists()
    assert_masks_as_painted(src / "annotations/instances_default.json", out)


@pytest.mark.slow
def test_any_coco_json_converts_with_annotations_and_images(tmp_path):
    from pycocotools import mask as mask_utils

    def compress_an_rle(coco):
        rle = next(a for a in coco["annotations"] if a["iscrowd"])
        compressed = mask_utils.frPyObjects(rle["segmentation"], 48, 64)
        rle["segmentation"] = {"size": compressed["size"], "counts": compressed["counts"].decode()}

    src = cvat_coco_export(tmp_path / "export", count=4)
    json_path = edit_json(src, compress_an_rle)
    out = tmp_path / "data"
    result = convert("--annotations", json_path, "--images", src / "images", "--data_dir", out)
    assert result.returncode == 0, result.stderr
    assert_masks_as_painted(json_path, out)


@pytest.mark.slow
def test_a_smaller_object_on_a_larger_one_stays_visible(tmp_path):
    small = [10, 10, 14, 10, 14, 14, 10, 14]
    big = [2, 2, 40, 2, 40, 40, 2, 40]
    src = cvat_coco_export(tmp_path / "export", count=1)
    edit_json(src, lambda coco: coco.update(annotations=[  # the small one first: JSON order must not decide
        {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [small], "area": 16.0, "iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id": 2, "segmentation": [big], "area": 1444.0, "iscrowd": 0},
    ]))  # fmt: skip
    assert convert("--src", src, "--data_dir", tmp_path / "data").returncode == 0
    mask = np.array(Image.open(tmp_path / "data/masks/frame_000000.png"))
    assert mask[12, 12] == 1 and mask[30, 30] == 2 and mask[45, 60] == 0


@pytest.mark.slow
def test_a_rerun_leaves_correct_files_alone_and_mends_a_wrong_one(tmp_path):
    src = roboflow_coco_export(tmp_path / "export", counts={"train": 4, "valid": 2})
    out = tmp_path / "data"
    assert convert("--src", src, "--data_dir", out).returncode == 0
    masks = sorted((out / "masks").iterdir())
    before = {p: p.stat().st_mtime_ns for p in masks}
    Image.fromarray(np.zeros((48, 64), np.uint8)).save(masks[0])
    again = convert("--src", src, "--data_dir", out, "--workers", "1")
    assert again.returncode == 0 and "; 1 file(s) written" in again.stdout
    assert all(p.stat().st_mtime_ns == before[p] for p in masks[1:])
    assert np.array(Image.open(masks[0])).max() > 0


def first_polygon(coco):
    return next(a for a in coco["annotations"] if isinstance(a["segmentation"], list))


@pytest.mark.slow
@pytest.mark.parametrize(
    "case, change, fragments",
    [
        ("missing image", None, ["frame_000002.jpg not found"]),
        ("not an image", None, ["frame_000002.jpg is not an image"]),
        (
            "unknown category",
            lambda c: first_polygon(c).update(category_id=9),
            ["category id 9", "do not list"],
        ),
        (
            "two points",
            lambda c: first_polygon(c).update(segmentation=[[1, 1, 5, 5]]),
            ["2 point(s)", "three"],
        ),
        (
            "outside",
            lambda c: first_polygon(c).update(segmentation=[[70, 1, 90, 1, 90, 9]]),
            ["wholly outside its 64x48 image"],
        ),
        ("one name twice", lambda c: c["categories"][1].update(name="circle"), ["category 'circle' twice"]),
        ("unlisted image", lambda c: first_polygon(c).update(image_id=99), ["image id 99"]),
    ],
)
def test_bad_input_exits_2_naming_the_file_before_anything_is_written(tmp_path, case, change, fragments):
    src = cvat_coco_export(tmp_path / "export", count=4)
    named = str(src / "annotations/instances_default.json")
    if case == "missing image":
        (src / "images/frame_000002.jpg").unlink()
        named = str(src / "images/frame_000002.jpg")
    elif case == "not an image":
        (src / "images/frame_000002.jpg").write_bytes(b"not a jpeg")
        named = str(src / "images/frame_000002.jpg")
    else:
        edit_json(src, change)
    result = convert("--src", src, "--data_dir", tmp_path / "data")
    assert_user_error(result, named, *fragments)
    assert not (tmp_path / "data").exists()


@pytest.mark.slow
def test_an_image_turned_by_exif_is_checked_upright_against_the_json(tmp_path):
    src = cvat_coco_export(tmp_path / "export", count=2)
    path = src / "images/frame_000001.jpg"
    upright = np.array(Image.open(path))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned: viewers and labelling tools show it upright (64x48, as the JSON says)
    Image.fromarray(np.rot90(upright)).save(path, exif=exif, quality=95)
    assert convert("--src", src, "--data_dir", tmp_path / "data").returncode == 0
    exif[0x0112] = 1  # the same stored pixels without the tag: 48x64, not the JSON's size
    Image.fromarray(np.rot90(upright)).save(path, exif=exif, quality=95)
    assert_user_error(convert("--src", src, "--data_dir", tmp_path / "other"), str(path), "48x64 upright")
    assert not (tmp_path / "other").exists()
