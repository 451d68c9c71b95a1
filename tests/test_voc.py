import shutil

import numpy as np
import pytest
from PIL import Image

from layouts import IGNORE_INDEX, VOC_PALETTE
from tests.helpers import ROOT, copy_tree, run_script
from tools.voc import prepare


def read_list(path):
    return path.read_text().split()


def mask(path):
    with Image.open(path) as image:
        assert image.mode == "L"
        return np.array(image)


@pytest.fixture
def raw(tmp_path, demo_raw):
    """A writable copy of a small raw demo tree."""
    return copy_tree(demo_raw, tmp_path / "data")


def voc_dir(root):
    return root / "VOCdevkit" / "VOC2012"


def test_real_sbd_mats_give_the_published_segmentationclassaug_pngs(tmp_path, samples):
    voc, sbd = tmp_path / "VOCdevkit/VOC2012", tmp_path / "VOCdevkit/benchmark_RELEASE/dataset"
    (voc / "ImageSets/Segmentation").mkdir(parents=True)
    (sbd / "cls").mkdir(parents=True)
    shutil.copytree(samples / "VOC2012/SegmentationClass", voc / "SegmentationClass")
    for name in ("2008_000051", "2008_000195"):
        shutil.copy(samples / f"sbd/cls/{name}.mat", sbd / "cls")
    (voc / "ImageSets/Segmentation/train.txt").write_text("2007_000032\n")
    (voc / "ImageSets/Segmentation/val.txt").write_text("")
    (sbd / "train.txt").write_text("2008_000051\n2007_000032\n")
    (sbd / "val.txt").write_text("2008_000195\n")

    report = prepare(tmp_path, workers=1, progress=False)

    assert report["errors"] == [] and report["written"] == 3
    for name in ("2008_000051", "2008_000195", "2007_000032"):
        reference = np.array(Image.open(samples / f"SegmentationClassAug-reference/{name}.png"))
        np.testing.assert_array_equal(mask(voc / f"SegmentationClassAug/{name}.png"), reference)
    assert IGNORE_INDEX in mask(voc / "SegmentationClassAug/2007_000032.png")  # VOC's void border kept
    assert read_list(voc / "ImageSets/Segmentation/trainaug.txt") == [
        "2007_000032",
        "2008_000051",
        "2008_000195",
    ]


def test_demo_tree_end_to_end(raw):
    voc, sbd = voc_dir(raw), raw / "VOCdevkit/VOCaug/dataset"
    voc_train, voc_val = (
        read_list(voc / "ImageSets/Segmentation/train.txt"),
        read_list(voc / "ImageSets/Segmentation/val.txt"),
    )
    sbd_train, sbd_val = read_list(sbd / "train.txt"), read_list(sbd / "val.txt")

    report = prepare(raw, workers=2, progress=False)

    expected_trainaug = sorted(set(sbd_train + sbd_val + voc_train) - set(voc_val))
    assert read_list(voc / "ImageSets/Segmentation/trainaug.txt") == expected_trainaug
    assert len(expected_trainaug) == 24 and not set(expected_trainaug) & set(voc_val)
    every_id = set(voc_train + voc_val + sbd_train + sbd_val)
    assert {p.stem for p in (voc / "SegmentationClassAug").glob("*.png")} == every_id
    assert report["written"] == len(every_id) and report["errors"] == []


def test_voc_mask_wins_for_ids_that_both_annotate(raw):
    voc, sbd = voc_dir(raw), raw / "VOCdevkit/VOCaug/dataset"
    prepare(raw, workers=1, progress=False)
    voc_ids = set(
        read_list(voc / "ImageSets/Segmentation/train.txt")
        + read_list(voc / "ImageSets/Segmentation/val.txt")
    )
    sbd_ids = set(read_list(sbd / "train.txt") + read_list(sbd / "val.txt"))
    shared, sbd_only = voc_ids & sbd_ids, sbd_ids - voc_ids
    assert shared and sbd_only
    for i in shared:  # VOC's mask, void border and all
        np.testing.assert_array_equal(
            mask(voc / f"SegmentationClassAug/{i}.png"),
            np.array(Image.open(voc / f"SegmentationClass/{i}.png")),
        )
    for i in sbd_only:  # SBD masks have no void
        assert IGNORE_INDEX not in mask(voc / f"SegmentationClassAug/{i}.png")


def test_sbd_folder_may_be_named_benchmark_release(raw):
    (raw / "VOCdevkit/VOCaug").rename(raw / "VOCdevkit/benchmark_RELEASE")
    report = prepare(raw, workers=1, progress=False)
    assert report["errors"] == [] and report["trainaug"] == 24


def test_rerun_leaves_correct_outputs_untouched_and_force_rewrites(raw):
    first = prepare(raw, workers=1, progress=False)
    out = voc_dir(raw) / "SegmentationClassAug"
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = prepare(raw, workers=1, progress=False)
    assert again["written"] == 0 and again["unchanged"] == first["written"]
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps
    forced = prepare(raw, workers=1, force=True, progress=False)
    assert forced["written"] == first["written"]


def test_a_wrong_existing_output_is_rewritten(raw):
    prepare(raw, workers=1, progress=False)
    target = next((voc_dir(raw) / "SegmentationClassAug").iterdir())
    good = mask(target)
    target.write_bytes(target.read_bytes()[:40])  # a truncated PNG, as an old killed converter might leave
    report = prepare(raw, workers=1, progress=False)
    assert report["written"] == 1
    np.testing.assert_array_equal(mask(target), good)


@pytest.mark.slow
def test_corrupt_inputs_are_reported_and_the_rest_converted(raw):
    voc, sbd = voc_dir(raw), raw / "VOCdevkit/VOCaug/dataset"
    bad_mat = sbd / "cls" / f"{read_list(sbd / 'train.txt')[0]}.mat"
    bad_png = voc / "SegmentationClass" / f"{read_list(voc / 'ImageSets/Segmentation/val.txt')[0]}.png"
    if bad_mat.stem in {bad_png.stem}:
        pytest.skip("the chosen ids coincide")
    bad_mat.write_bytes(b"not a MAT file")
    bad_png.write_bytes(bad_png.read_bytes()[:30])

    result = run_script("tools/voc.py", "--data_dir", str(raw), "--workers", "2")

    assert result.returncode == 1
    assert str(bad_mat) in result.stderr and str(bad_png) in result.stderr
    assert "Traceback" not in result.stderr
    written = {p.stem for p in (voc / "SegmentationClassAug").glob("*.png")}
    every_id = set(
        read_list(voc / "ImageSets/Segmentation/train.txt")
        + read_list(voc / "ImageSets/Segmentation/val.txt")
    )
    every_id |= set(read_list(sbd / "train.txt") + read_list(sbd / "val.txt"))
    assert written == every_id - {bad_mat.stem, bad_png.stem}
    assert not list((voc / "SegmentationClassAug").glob(".*"))  # no temporary files left


def test_rgb_voc_masks_are_mapped_back_through_the_colour_map(raw):
    voc = voc_dir(raw)
    path = next((voc / "SegmentationClass").iterdir())
    indices = np.array(Image.open(path))
    Image.fromarray(VOC_PALETTE[indices]).save(path)  # as some other tool may have re-saved it
    report = prepare(raw, workers=1, progress=False)
    assert report["errors"] == []
    np.testing.assert_array_equal(mask(voc / "SegmentationClassAug" / path.name), indices)


def test_a_colour_outside_the_voc_map_is_an_error_naming_the_file(raw):
    path = next((voc_dir(raw) / "SegmentationClass").iterdir())
    rgb = VOC_PALETTE[np.array(Image.open(path))]
    rgb[0, 0] = (1, 2, 3)
    Image.fromarray(rgb).save(path)
    report = prepare(raw, workers=1, progress=False)
    assert [p for p, _ in report["errors"]] == [str(path)]
    assert "(1, 2, 3)" in report["errors"][0][1]


def test_mask_values_outside_the_classes_are_reported(raw):
    path = next((voc_dir(raw) / "SegmentationClass").iterdir())
    values = np.array(Image.open(path))
    values[0, 0] = 30
    image = Image.fromarray(values).convert("P")
    image.putpalette(VOC_PALETTE.tobytes())
    image.save(path)
    report = prepare(raw, workers=1, progress=False)
    assert [p for p, _ in report["errors"]] == [str(path)]
    assert "[30]" in report["errors"][0][1]


@pytest.mark.slow
def test_missing_data_set_exits_2_with_a_message(tmp_path):
    result = run_script("tools/voc.py", "--data_dir", str(tmp_path / "nowhere"))
    assert result.returncode == 2
    assert "VOCdevkit/VOC2012" in result.stderr and "VOCtrainval_11-May-2012.tar" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_missing_sbd_exits_2_naming_both_folder_names(raw):
    shutil.rmtree(raw / "VOCdevkit/VOCaug")
    result = run_script("tools/voc.py", "--data_dir", str(raw))
    assert result.returncode == 2
    assert "benchmark_RELEASE" in result.stderr and "benchmark.tgz" in result.stderr


@pytest.mark.slow
def test_runs_from_any_directory_and_prints_counts(raw, tmp_path):
    result = run_script(str(ROOT / "tools/voc.py"), "--data_dir", str(raw), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "masks written" in result.stdout and "24 ids" in result.stdout
