"""Your own data: a labelme export, a CVAT export and CamVid train, evaluate and predict with only
--data_dir changed; metrics, checkpoints and colours follow the data set's classes."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from layouts import describe
from metrics import ConfusionMatrix
from tests.helpers import (
    CAMVID,
    ISBI,
    OWN_CLASSES,
    SHAPE_CLASSES,
    assert_user_error,
    binary_layout,
    cvat_coco_export,
    cvat_export,
    labelme_export,
    last_json,
    plain_layout,
    roboflow_coco_export,
    roboflow_mask_export,
    run_script,
    small_camvid_src,
    train,
)

pytestmark = pytest.mark.slow  # whole runs of the scripts


def train_evaluate_predict(data, tmp_path, *extra, predict_flags=()):
    """A 2-epoch run, --eval_only of its checkpoint, and tools/predict.py on its val images."""
    result = train(data, tmp_path, *extra)
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "exp" / "run"
    evaluated = run_script(
        "main.py", "--data_dir", str(data), "--resume", str(run_dir / "last.pth"), "--eval_only", *extra
    )
    assert evaluated.returncode == 0, evaluated.stderr
    layout = describe(data)
    val_ids = (run_dir / "splits" / "val.txt").read_text().split()
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for image_id in val_ids:
        (inputs / layout.image_path(image_id).name).symlink_to(layout.image_path(image_id))
    predicted = run_script(
        "tools/predict.py", "--checkpoint", str(run_dir / "best.pth"), "--input", str(inputs),
        "--output", str(tmp_path / "predictions"), *predict_flags,
    )  # fmt: skip
    assert predicted.returncode == 0, predicted.stderr
    return result, last_json(evaluated.stdout), val_ids


@pytest.mark.parametrize("export", [labelme_export, cvat_export])
def test_an_export_trains_evaluates_and_predicts_in_its_own_classes(tmp_path, export):
    data = export(tmp_path / "data", count=20)
    layout = describe(data)
    result, printed, val_ids = train_evaluate_predict(data, tmp_path)

    run_dir = tmp_path / "exp" / "run"
    assert f"{len(val_ids)} val images (val held out by hash)" in result.stdout
    train_ids = (run_dir / "splits" / "train.txt").read_text().split()
    assert sorted(train_ids + val_ids) == sorted(layout.all_ids()) and len(val_ids) >= 1
    logged = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    assert list(logged["iou"]) == list(printed["iou"]) == list(layout.class_names)
    assert printed["mean_iou"] == pytest.approx(logged["mean_iou"], abs=1e-9)
    checkpoint = torch.load(run_dir / "best.pth", weights_only=True)
    assert checkpoint["classes"] == layout.class_table()
    assert checkpoint["model_config"]["num_classes"] == len(OWN_CLASSES)
    for image_id in val_ids:
        with Image.open(tmp_path / "predictions" / f"{image_id}.png") as mask:
            assert mask.getpalette()[: 3 * len(OWN_CLASSES)] == layout.colors.ravel().tolist()
            assert np.array(mask).max() < len(OWN_CLASSES)


def test_camvid_trains_evaluates_a_test_list_and_predicts(tmp_path):
    if not CAMVID.is_dir():
        pytest.skip(f"real CamVid files not found at {CAMVID}")
    src = small_camvid_src(CAMVID, tmp_path / "src", per_split=4)
    data = tmp_path / "camvid"
    converted = run_script("tools/camvid.py", "--src", str(src), "--data_dir", str(data))
    assert converted.returncode == 0, converted.stderr
    _, printed, _ = train_evaluate_predict(data, tmp_path, "--epochs", "1")
    assert list(printed["iou"]) == list(describe(data).class_names)
    tested = run_script(
        "main.py", "--data_dir", str(data), "--resume", str(tmp_path / "exp/run/last.pth"),
        "--eval_only", "--val_split", "test",
    )  # fmt: skip
    assert tested.returncode == 0, tested.stderr
    assert 0 <= last_json(tested.stdout)["pixel_accuracy"] <= 1
    colors = describe(data).colors
    predicted = np.array(Image.open(next((tmp_path / "predictions").iterdir())).convert("RGB"))
    assert {tuple(c) for c in predicted.reshape(-1, 3)} <= {tuple(c) for c in colors}


def test_resuming_with_another_data_sets_classes_names_both(tmp_path, tmp_path_factory):
    labelme = labelme_export(tmp_path / "labelme", count=12)
    assert train(labelme, tmp_path, "--epochs", "1").returncode == 0
    cvat = cvat_export(tmp_path / "cvat", count=12)
    result = train(cvat, tmp_path, "--resume", str(tmp_path / "exp/run/last.pth"), name="other")
    assert_user_error(result, "last.pth", "_background_", str(cvat), "background, road")


def test_a_bad_mask_exits_2_before_anything_is_written(tmp_path):
    data = labelme_export(tmp_path / "data", count=12)
    path = data / "SegmentationClassPNG" / "img_007.png"
    with Image.open(path) as mask:
        values = np.array(mask)
        palette = mask.getpalette()
    values[3, 3] = 9
    bad = Image.fromarray(values, mode="P")
    bad.putpalette(palette)
    bad.save(path)
    assert_user_error(train(data, tmp_path), str(path), "[9]")
    assert not (tmp_path / "exp").exists() and not (tmp_path / "tb").exists()


@pytest.mark.parametrize("resize", [[], ["--resize", "48"]])
def test_eval_only_scores_exactly_what_predict_writes(tmp_path, resize):
    data = plain_layout(tmp_path / "data", {"train": 8, "val": 6})
    assert train(data, tmp_path, "--epochs", "1", *resize).returncode == 0
    evaluated = run_script(
        *"main.py --batch_size 4 --eval_only --data_dir".split(), str(data),
        "--resume", str(tmp_path / "exp/run/last.pth"),
    )  # fmt: skip
    predicted = run_script(
        *"tools/predict.py --batch_size 1 --checkpoint".split(), str(tmp_path / "exp/run/last.pth"),
        "--input", str(data / "images"), "--output", str(tmp_path / "predictions"),
    )  # fmt: skip
    assert evaluated.returncode == 0 and predicted.returncode == 0, evaluated.stderr + predicted.stderr
    confusion = ConfusionMatrix(len(OWN_CLASSES))
    for image_id in (data / "splits" / "val.txt").read_text().split():
        prediction = np.array(Image.open(tmp_path / "predictions" / f"{image_id}.png"))
        truth = np.array(Image.open(data / "masks" / f"{image_id}.png"))
        confusion.update(torch.from_numpy(prediction), torch.from_numpy(truth))
    from_pngs = confusion.compute()
    printed = last_json(evaluated.stdout)
    assert printed["pixel_accuracy"] == from_pngs["pixel_accuracy"]
    assert (
        printed["mean_iou"] == from_pngs["mean_iou"]
        and printed["mean_accuracy"] == from_pngs["mean_accuracy"]
    )
    assert list(printed["iou"].values()) == [None if np.isnan(v) else v for v in from_pngs["iou"]]


def test_binary_gif_masks_named_like_carvanas_train_evaluate_and_predict_as_stored(tmp_path):
    data = binary_layout(tmp_path / "data", count=20, suffix=".gif", tag="_mask")
    result, printed, val_ids = train_evaluate_predict(data, tmp_path, predict_flags=["--overlay"])
    lines = result.stdout.splitlines()
    assert (
        lines[1]
        == "mask values: no classes.txt, the masks hold two values: 0 -> background, 255 -> foreground"
    )
    assert lines[2].startswith("train pixels: background ") and lines[2].endswith("void 0.0%")
    assert "foreground IoU" in result.stdout and " Dice " in result.stdout
    assert list(printed["dice"]) == ["background", "foreground"] and 0 <= printed["mean_dice"] <= 1
    checkpoint = torch.load(tmp_path / "exp/run/best.pth", weights_only=True)
    assert checkpoint["classes"]["values"] == [0, 255]
    for image_id in val_ids:
        with Image.open(tmp_path / "predictions" / f"{image_id}.png") as mask:
            assert mask.mode == "L" and set(np.unique(mask)) <= {0, 255}
        assert (tmp_path / "predictions" / f"{image_id}_overlay.png").is_file()


def test_the_isbi_slices_train_as_stored_and_predict_0_and_255(tmp_path):
    if not ISBI.is_dir():
        pytest.skip(f"real ISBI 2012 slices not found at {ISBI}")
    data = tmp_path / "isbi"
    for folder, source in (("images", "image"), ("masks", "label")):
        (data / folder).mkdir(parents=True)
        for k in range(6):
            (data / folder / f"{k}.png").symlink_to(ISBI / "train" / source / f"{k}.png")
    (data / "classes.txt").write_text("membrane\ncell\n")
    result, printed, val_ids = train_evaluate_predict(data, tmp_path, "--epochs", "1", "--crop_size", "64")
    assert "0 -> membrane, 255 -> cell" in result.stdout.splitlines()[1]
    assert list(printed["iou"]) == ["membrane", "cell"]
    with Image.open(tmp_path / "predictions" / f"{val_ids[0]}.png") as mask:
        assert mask.size == (512, 512) and set(np.unique(mask)) <= {0, 255}


def test_a_training_set_of_one_class_exits_2_before_anything_is_written(tmp_path):
    data = binary_layout(tmp_path / "data", count=6, values=(0, 1), classes="background\ncell\n")
    data = binary_layout(data, count=4, values=(0, 0))  # overwrite s00-s03: no cell left in them
    (data / "splits").mkdir()
    (data / "splits" / "train.txt").write_text("s00\ns01\ns02\ns03\n")
    (data / "splits" / "val.txt").write_text("s04\ns05\n")
    assert_user_error(train(data, tmp_path), "train masks in", "hold only class ['background']")
    assert not (tmp_path / "exp").exists() and not (tmp_path / "tb").exists()


def test_a_mask_value_of_no_class_exits_2_before_anything_is_written(tmp_path):
    data = binary_layout(tmp_path / "data", count=8, classes="background = 0\nforeground = 255\n")
    path = data / "masks" / "s05.png"
    mask = np.array(Image.open(path))
    mask[0, :4] = 128
    Image.fromarray(mask).save(path)
    assert_user_error(train(data, tmp_path), str(path), "[128]", "no class")
    assert not (tmp_path / "exp").exists() and not (tmp_path / "tb").exists()


@pytest.mark.parametrize("export", [roboflow_coco_export, cvat_coco_export, roboflow_mask_export])
def test_coco_and_roboflow_exports_train_evaluate_and_predict_in_their_own_classes(tmp_path, export):
    data = export(tmp_path / "export")
    if export is not roboflow_mask_export:  # COCO: converted first; the mask export loads as it is
        converted = run_script("tools/coco.py", "--src", str(data), "--data_dir", str(tmp_path / "data"))
        assert converted.returncode == 0, converted.stderr
        data = tmp_path / "data"
    result, printed, val_ids = train_evaluate_predict(data, tmp_path)
    assert list(printed["iou"]) == ["background", *SHAPE_CLASSES]
    checkpoint = torch.load(tmp_path / "exp/run/best.pth", weights_only=True)
    assert checkpoint["classes"]["names"] == ["background", *SHAPE_CLASSES]
    with Image.open(tmp_path / "predictions" / f"{val_ids[0]}.png") as mask:
        assert mask.mode == "P" and np.array(mask).max() <= len(SHAPE_CLASSES)
