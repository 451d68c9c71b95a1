"""Data set layouts: each export is recognised from its folder, read in its own format, and split."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dataset import SegmentationDataset
from layouts import IGNORE_INDEX, VOC_PALETTE, describe, held_out
from tests.helpers import (
    CAMVID,
    CVAT_COLORS,
    ISBI,
    OWN_CLASSES,
    binary_layout,
    cvat_export,
    labelme_export,
    plain_layout,
    roboflow_mask_export,
    run_script,
    small_camvid_src,
)
from utils import UserError


def source_mask(layout, image_id):
    """The class indices of one id straight from the export's own mask file."""
    with Image.open(layout.mask_path(image_id)) as mask:
        if layout.kind == "cvat":
            rgb = np.array(mask.convert("RGB"))
            return np.argmax((rgb[:, :, None, :] == np.array(CVAT_COLORS)).all(-1), axis=-1)
        return np.array(mask)


def test_voc_aug_keeps_its_classes_and_lists(prepared_demo):
    layout = describe(prepared_demo)
    assert layout.kind == "voc-aug" and layout.num_classes == 21 and layout.class_names[15] == "person"
    assert (layout.colors == VOC_PALETTE[:21]).all()
    assert len(layout.split_ids("trainaug")) == 24 and len(layout.split_ids("val")) == 8


@pytest.mark.parametrize("newer", [False, True])
def test_labelme_export_is_read_with_its_class_names_and_ignore_value(tmp_path, newer):
    layout = describe(labelme_export(tmp_path, newer=newer))
    assert layout.kind == "labelme" and layout.class_names == OWN_CLASSES
    assert (layout.colors == VOC_PALETTE[:4]).all()  # labelme's label colormap is VOC's
    ids = layout.split_ids("train") + layout.split_ids("val")
    assert sorted(ids) == [f"img_{k:03d}" for k in range(12)]  # the .npy files are not images
    val = SegmentationDataset(layout, "val", train=False)
    for i, image_id in enumerate(val.ids):
        image, mask = val[i]
        assert image.shape == (3, 48, 64)
        np.testing.assert_array_equal(mask.numpy(), source_mask(layout, image_id))
        assert (mask[:2] == IGNORE_INDEX).all()  # __ignore__ stays void


def test_labelme_png_bytes_behind_a_jpg_name_load(tmp_path):
    layout = describe(labelme_export(tmp_path))
    path = layout.image_path("img_001")
    assert path.name == "img_001.jpg" and Image.open(path).format == "PNG"
    split = "val" if "img_001" in layout.split_ids("val") else "train"
    dataset = SegmentationDataset(layout, split, train=False)
    image, _ = dataset[dataset.ids.index("img_001")]
    expected = np.array(Image.open(path).convert("RGB"))
    np.testing.assert_array_equal(image.permute(1, 2, 0).numpy(), expected)


def test_cvat_rgb_masks_become_labelmap_indices(tmp_path):
    layout = describe(cvat_export(tmp_path))
    assert layout.kind == "cvat" and layout.class_names == ("background", *OWN_CLASSES[1:])
    assert layout.colors.tolist() == [list(c) for c in CVAT_COLORS]
    for image_id in layout.split_ids("val") + layout.split_ids("train")[:3]:
        mask = layout.read_mask(image_id)
        np.testing.assert_array_equal(mask, source_mask(layout, image_id))
        assert set(np.unique(mask)) <= {0, 1, 2, 3}


def test_cvat_colour_missing_from_labelmap_names_the_mask_and_the_colour(tmp_path):
    layout = describe(cvat_export(tmp_path))
    path = layout.mask_path("frame_000003")
    rgb = np.array(Image.open(path))
    rgb[5, 5] = (1, 2, 3)
    Image.fromarray(rgb).save(path)
    with pytest.raises(UserError, match=r"frame_000003\.png holds colour \(1, 2, 3\).*labelmap\.txt"):
        layout.read_mask("frame_000003")


def test_plain_layout_uses_its_split_lists_and_colours(tmp_path):
    layout = describe(plain_layout(tmp_path, {"train": 5, "val": 2, "test": 3}))
    assert layout.kind == "plain" and layout.class_names == OWN_CLASSES
    assert layout.colors.tolist() == [list(c) for c in CVAT_COLORS]
    assert layout.split_ids("test") == ["test0", "test1", "test2"] and not layout.hold_out


def test_plain_classes_without_colours_take_the_voc_colour_map(tmp_path):
    root = plain_layout(tmp_path, {"train": 2, "val": 1})
    (root / "classes.txt").write_text("background\nroad: 1,2,3\nperson\n")
    layout = describe(root)
    assert layout.colors.tolist() == [[0, 0, 0], [1, 2, 3], VOC_PALETTE[2].tolist()]


def test_held_out_val_is_a_tenth_and_adding_images_moves_no_old_one(tmp_path):
    root = labelme_export(tmp_path, count=60)
    before = {split: set(describe(root).split_ids(split)) for split in ("train", "val")}
    assert 2 <= len(before["val"]) <= 12 and not before["train"] & before["val"]
    assert len(before["train"] | before["val"]) == 60
    more = labelme_export(tmp_path / "more", count=90, seed=5)
    for path in (more / "JPEGImages").iterdir():
        if int(path.stem[4:]) >= 60:
            shutil.copy(path, root / "JPEGImages" / path.name)
            shutil.copy(more / "SegmentationClassPNG" / f"{path.stem}.png", root / "SegmentationClassPNG")
    after = {split: set(describe(root).split_ids(split)) for split in ("train", "val")}
    assert len(after["train"] | after["val"]) == 90
    assert before["val"] <= after["val"] and before["train"] <= after["train"]


def test_held_out_keeps_at_least_one_image():
    assert len(held_out(["a", "b"])) == 1
    assert held_out(["a", "b"]) == held_out(["b", "a"])


def test_images_without_masks_are_listed(tmp_path):
    root = labelme_export(tmp_path)
    for k in (2, 5):
        (root / "SegmentationClassPNG" / f"img_{k:03d}.png").unlink()
    with pytest.raises(UserError, match=r"2 image\(s\) without a mask.*img_002, img_005"):
        describe(root).split_ids("train")


def test_masks_without_images_are_listed(tmp_path):
    root = labelme_export(tmp_path)
    (root / "JPEGImages" / "img_004.jpg").unlink()
    with pytest.raises(UserError, match=r"1 mask\(s\) without a image.*img_004"):
        describe(root).split_ids("val")


def test_duplicate_class_names_are_refused(tmp_path):
    root = labelme_export(tmp_path)
    (root / "class_names.txt").write_text("_background_\ncar\ncar\n")
    with pytest.raises(UserError, match=r"class_names\.txt names \['car'\] more than once"):
        describe(root)


def test_a_folder_without_a_class_list_says_what_is_expected(tmp_path):
    root = labelme_export(tmp_path)
    (root / "class_names.txt").unlink()
    with pytest.raises(
        UserError, match=r"JPEGImages/ .* neither its class list class_names\.txt .* labelmap\.txt"
    ):
        describe(root)


def test_mask_value_outside_the_classes_names_the_file(tmp_path):
    root = plain_layout(tmp_path, {"train": 2, "val": 1})
    path = root / "masks" / "val0.png"
    mask = np.array(Image.open(path))
    mask[0, 0] = 9
    Image.fromarray(mask, mode="L").save(path)
    with pytest.raises(UserError, match=r"val0\.png holds values \[9\] outside 0-3 and 255"):
        SegmentationDataset(root, "val", train=False).scan_masks()


def test_a_missing_split_list_names_the_file(tmp_path):
    root = plain_layout(tmp_path, {"train": 2, "val": 1})
    with pytest.raises(UserError, match=r"splits/test\.txt not found"):
        SegmentationDataset(root, "test", train=False)


@pytest.mark.parametrize("mode", ["L", "RGBA", "I;16"])
def test_images_of_any_mode_load_as_rgb(tmp_path, mode):
    root = plain_layout(tmp_path, {"train": 2, "val": 1})
    rgb = np.array(Image.open(root / "images/val0.png"))
    grey = rgb.mean(-1).astype(np.uint8)
    image = {
        "L": Image.fromarray(grey),
        "RGBA": Image.fromarray(np.dstack([rgb, np.full(grey.shape, 7, np.uint8)])),
        "I;16": Image.fromarray(grey.astype(np.uint16) * 257),
    }[mode]
    (root / "images/val0.png").unlink()
    image.save(root / "images/val0.tif" if mode == "I;16" else root / "images/val0.png")
    loaded, _ = SegmentationDataset(root, "val", train=False)[0]
    expected = rgb if mode == "RGBA" else np.repeat(grey[..., None], 3, -1)
    np.testing.assert_array_equal(loaded.permute(1, 2, 0).numpy(), expected)


def test_scan_counts_the_pixels_of_each_class(tmp_path):
    root = plain_layout(tmp_path, {"train": 3, "val": 1})
    counts = SegmentationDataset(root, "train").scan_masks()
    masks = [np.array(Image.open(root / f"masks/train{k}.png")) for k in range(3)]
    assert counts.classes.tolist() == [[int((m == c).sum()) for c in range(4)] for m in masks]


@pytest.fixture
def camvid_src():
    if not CAMVID.is_dir():
        pytest.skip(f"real CamVid files not found at {CAMVID}")
    return CAMVID


@pytest.mark.slow
def test_camvid_converts_with_its_counts_classes_and_void(camvid_src, tmp_path):
    out = tmp_path / "camvid"
    result = run_script("tools/camvid.py", "--src", str(camvid_src), "--data_dir", str(out))
    assert result.returncode == 0, result.stderr
    assert "train 367, val 101, test 233" in result.stdout
    layout = describe(out)
    assert layout.kind == "plain" and layout.num_classes == 11
    assert layout.class_names[0] == "Sky" and layout.class_names[-1] == "Bicyclist"
    assert layout.colors[3].tolist() == [128, 64, 128]  # Road
    assert [len(layout.split_ids(s)) for s in ("train", "val", "test")] == [367, 101, 233]
    name = layout.split_ids("test")[0]
    source = np.array(Image.open(camvid_src / "testannot" / f"{name}.png"))
    converted = np.array(Image.open(out / "masks" / f"{name}.png"))
    np.testing.assert_array_equal(converted, np.where(source == 11, IGNORE_INDEX, source))
    assert (out / "images" / f"{name}.png").read_bytes() == (camvid_src / "test" / f"{name}.png").read_bytes()


@pytest.mark.slow
def test_camvid_label_outside_the_classes_stops_before_writing(camvid_src, tmp_path):
    src = small_camvid_src(camvid_src, tmp_path / "src", per_split=2)
    (src / "valannot").unlink()
    (src / "valannot").mkdir()
    for line in (src / "val.txt").read_text().splitlines():
        name = Path(line.split()[1]).name
        mask = np.array(Image.open(camvid_src / "valannot" / name))
        mask[0, 0] = 12
        Image.fromarray(mask).save(src / "valannot" / name)
    out = tmp_path / "out"
    result = run_script("tools/camvid.py", "--src", str(src), "--data_dir", str(out))
    assert result.returncode == 2 and "[12]" in result.stderr and "valannot" in result.stderr
    assert not out.exists()


# Binary masks as stored: the value rule of layouts.py


def blobs_of(root, image_id):
    """Where the generated image is bright: the blobs that binary_layout's masks mark."""
    return np.array(Image.open(root / "images" / f"{image_id}.png")) > 120


@pytest.mark.parametrize(
    "suffix, values, tag",
    [
        (".png", (0, 255), ""),
        (".png", (0, 1), ""),
        (".gif", (0, 255), "_mask"),  # Carvana's names
        (".tif", (0, 65535), ""),  # 16-bit
        (".png", (0, 65535), "_mask"),
        (".bmp", (0, 255), ""),
    ],
)
def test_binary_masks_without_a_class_list_load_as_background_and_foreground(tmp_path, suffix, values, tag):
    root = binary_layout(tmp_path, count=4, suffix=suffix, values=values, tag=tag)
    layout = describe(root)
    assert layout.class_names == ("background", "foreground") and layout.mask_values == values
    assert layout.all_ids() == ["s00", "s01", "s02", "s03"]
    assert layout.mask_path("s02").name == f"s02{tag}{suffix}"
    mask = layout.read_mask("s02")
    assert mask.dtype == np.uint8 and np.array_equal(mask, blobs_of(root, "s02"))
    assert f"{values[0]} -> background, {values[1]} -> foreground" in layout.value_rule


def test_two_listed_classes_with_masks_of_0_and_255_take_255_as_the_second(tmp_path):
    root = binary_layout(tmp_path, count=3, classes="membrane\ncell\n")
    layout = describe(root)
    assert (
        layout.mask_values == (0, 255) and "only 0 and 255: 0 -> membrane, 255 -> cell" in layout.value_rule
    )
    assert np.array_equal(layout.read_mask("s01"), blobs_of(root, "s01"))


def test_two_listed_classes_with_masks_of_0_1_and_255_keep_255_as_void(tmp_path):
    root = binary_layout(tmp_path, count=3, values=(0, 1), classes="background\nnucleus\n")
    path = root / "masks" / "s00.png"
    mask = np.array(Image.open(path))
    mask[:2] = 255
    Image.fromarray(mask).save(path)
    layout = describe(root)
    assert layout.mask_values == (0, 1)
    assert (layout.read_mask("s00")[:2] == IGNORE_INDEX).all()


def test_values_stated_in_classes_txt_decide_the_classes(tmp_path):
    root = binary_layout(tmp_path, count=3, classes="cell = 255: 255,255,255\nmembrane = 0\n")
    layout = describe(root)
    assert layout.class_names == ("cell", "membrane") and layout.mask_values == (255, 0)
    assert layout.colors[0].tolist() == [255, 255, 255]
    assert np.array_equal(layout.read_mask("s00"), ~blobs_of(root, "s00"))
    assert layout.class_table()["values"] == [255, 0]


def test_more_than_two_values_without_a_class_list_are_classes_and_255_is_void(tmp_path):
    root = binary_layout(tmp_path, count=2)
    for k, value in enumerate((2, 7)):
        path = root / "masks" / f"s0{k}.png"
        mask = np.array(Image.open(path))
        mask[:3], mask[-1] = value, 0
        Image.fromarray(mask).save(path)
    layout = describe(root)
    assert layout.class_names == ("background", "class_2", "class_7") and layout.mask_values == (0, 2, 7)
    assert "255 = void" in layout.value_rule
    assert set(np.unique(layout.read_mask("s00"))) == {0, 1, IGNORE_INDEX}


def test_a_jpeg_mask_of_more_than_two_levels_is_refused_as_lossy(tmp_path):
    root = binary_layout(tmp_path, count=3)
    mask = np.array(Image.open(root / "masks" / "s01.png"))
    mask[:, :20] = 128  # a third class: JPEG blurs its edges into values of no class
    Image.fromarray(mask).convert("RGB").save(root / "masks" / "s01.jpg")
    (root / "masks" / "s01.png").unlink()
    with pytest.raises(
        UserError, match=r"mask .*s01\.jpg is a JPG whose pixels are not two levels.*save the masks as PNG"
    ):
        describe(root)


def test_a_binary_jpeg_mask_is_read_by_its_threshold_and_the_rule_says_so(tmp_path):
    root = binary_layout(tmp_path, count=3)
    blobs = np.array(Image.open(root / "masks" / "s01.png")) > 0
    Image.open(root / "masks" / "s01.png").convert("RGB").save(root / "masks" / "s01.jpg", quality=75)
    (root / "masks" / "s01.png").unlink()
    layout = describe(root)
    assert layout.mask_values == (0, 255) and "JPEG masks: grey >= 128" in layout.value_rule
    assert (layout.read_mask("s01") == blobs).mean() > 0.99  # JPEG moves a few edge pixels


def test_a_value_that_no_class_has_names_the_mask_and_the_rule(tmp_path):
    root = binary_layout(tmp_path, count=3, classes="background = 0\nforeground = 255\n")
    path = root / "masks" / "s02.png"
    mask = np.array(Image.open(path))
    mask[5, 5] = 128  # an anti-aliased edge
    Image.fromarray(mask).save(path)
    with pytest.raises(UserError, match=r"s02\.png holds values \[128\], which are no class \(as classes"):
        SegmentationDataset(root, "train").scan_masks()


def test_masks_holding_one_value_are_refused_naming_the_folder(tmp_path):
    root = binary_layout(tmp_path, count=2, values=(0, 0))
    with pytest.raises(UserError, match=r"masks in .*masks hold only the value 0: that is one class"):
        describe(root)


def test_classes_txt_stating_some_values_only_is_refused(tmp_path):
    root = binary_layout(tmp_path, count=2, classes="background = 0\nforeground\n")
    with pytest.raises(UserError, match=r"states the mask value of some classes only"):
        describe(root)


def test_two_masks_of_one_id_are_refused(tmp_path):
    root = binary_layout(tmp_path, count=2)
    shutil.copy(root / "masks" / "s00.png", root / "masks" / "s00_mask.png")
    with pytest.raises(UserError, match=r"s00\.png and .*s00_mask\.png are masks of the same id"):
        describe(root)


def test_the_isbi_2012_labels_load_as_stored_as_membrane_and_cell(tmp_path):
    if not ISBI.is_dir():
        pytest.skip(f"real ISBI 2012 slices not found at {ISBI}")
    (tmp_path / "classes.txt").write_text("membrane\ncell\n")
    (tmp_path / "images").symlink_to(ISBI / "train" / "image")
    (tmp_path / "masks").symlink_to(ISBI / "train" / "label")
    layout = describe(tmp_path)
    assert layout.mask_values == (0, 255) and len(layout.all_ids()) == 30
    counts = SegmentationDataset(layout, "train", train=True).scan_masks()
    pixels = np.append(counts.classes.sum(0), counts.void.sum())
    membrane, cell, void = pixels / pixels.sum()
    assert 0.15 < membrane < 0.3 and cell == pytest.approx(1 - membrane) and void == 0  # README: about 22%


def test_a_roboflow_mask_export_is_recognised_with_its_splits_and_classes(tmp_path):
    root = roboflow_mask_export(tmp_path, counts={"train": 4, "valid": 2, "test": 1})
    layout = describe(root)
    assert layout.kind == "roboflow" and layout.class_names == ("background", "circle", "square")
    assert [len(layout.split_ids(s)) for s in ("train", "val", "test")] == [4, 2, 1]
    assert not layout.hold_out
    image_id = layout.split_ids("val")[0]
    assert layout.image_path(image_id).parent.name == "valid"
    assert layout.mask_path(image_id).name == f"{image_id}_mask.png"
    mask = layout.read_mask(image_id)
    assert np.array_equal(mask, np.array(Image.open(layout.mask_path(image_id))))


def test_a_roboflow_mask_export_with_other_pixel_values_maps_them(tmp_path):
    root = roboflow_mask_export(tmp_path, counts={"train": 3})
    (root / "train/_classes.csv").write_text("Pixel Value, Class\n0, background\n128, circle\n255, square\n")
    for path in (root / "train").glob("*_mask.png"):
        values = np.array(Image.open(path))
        Image.fromarray(np.array([0, 128, 255], dtype=np.uint8)[values]).save(path)
    layout = describe(root)
    assert layout.mask_values == (0, 128, 255) and layout.hold_out  # no valid/: val held out by hash
    image_id = next((root / "train").glob("*_mask.png")).stem.removesuffix("_mask")
    assert set(np.unique(layout.read_mask(image_id))) <= {0, 1, 2}


def test_images_in_any_raster_format_pil_opens_are_found(tmp_path):
    root = plain_layout(tmp_path, {"train": 3, "val": 1})
    for k, path in enumerate(sorted((root / "images").glob("*.png"))):
        suffix = (".pgm", ".jp2", ".tga", ".png")[k]  # grey PGM, JPEG 2000, Targa, and a PNG left
        image = Image.open(path)
        (image.convert("L") if suffix == ".pgm" else image).save(path.with_suffix(suffix))
        if suffix != ".png":
            path.unlink()
    layout = describe(root)
    assert sorted(p.suffix for p in layout.images.values()) == [".jp2", ".pgm", ".png", ".tga"]
    assert SegmentationDataset(layout, "train").scan_masks().classes.sum() > 0
