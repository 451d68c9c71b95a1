"""Public releases as downloaded: each is recognised from the folder a user unpacked, its masks read as
the release means them (pixel for pixel), its splits as it ships them; partial downloads are named."""

import numpy as np
import pytest
import torch
from PIL import Image

from dataset import SegmentationDataset
from layouts import describe
from tests import releases
from tests.helpers import ROOT, assert_user_error, last_json, main_command, run_script
from utils import UserError

SHARED = ROOT.parent / "shared" / "data"

# builder, kind, class names, mask values, {split: number of ids} (val: held out by hash)
RELEASES = {
    "kvasir": (releases.kvasir_seg, "Kvasir-SEG", ("background", "polyp"), (0, 255), {}),
    "isic": (releases.isic_2018, "ISIC 2018", ("background", "lesion"), (0, 255), {"train": 10, "val": 3}),
    "carvana": (releases.carvana, "Carvana", ("background", "foreground"), (0, 1), {}),
    "milesial": (releases.milesial, "milesial imgs/masks", ("background", "foreground"), (0, 1), {}),
    "pet": (releases.oxford_pet, "Oxford-IIIT Pet", ("background", "pet"), (2, 1), {"test": 3}),
    "dsb": (releases.dsb_2018, "Data Science Bowl 2018", ("background", "nucleus"), (0, 255), {}),
    "drive": (releases.drive, "DRIVE", ("background", "vessel"), (0, 255), {"test": 3}),
    "cityscapes": (releases.cityscapes, "Cityscapes", None, None, {"train": 10, "val": 3}),
    "ade20k": (releases.ade20k, "ADE20K", None, tuple(range(1, 151)), {"train": 10, "val": 3}),
    "loveda": (releases.loveda, "LoveDA", None, tuple(range(1, 8)), {"train": 10, "val": 3}),
    "isbi": (releases.isbi_stacks, "ISBI 2012 stacks", ("membrane", "cell"), (0, 255), {}),
    "busi": (releases.busi, "paired by name", ("background", "foreground"), (0, 255), {}),
}
BINARY = ("background", "foreground"), (0, 255)
PAIRED = {  # releases no format lists, paired by name (layouts/paired.py)
    "chase_db1": (releases.chase_db1, "paired by name", *BINARY, {}),
    "stare": (releases.stare, "paired by name", *BINARY, {}),
    "hrf": (releases.hrf, "paired by name", *BINARY, {}),
    "montgomery": (releases.montgomery, "paired by name", ("background", "leftMask", "rightMask"), (0, 1, 2),
                   {}),
    "deepglobe": (releases.deepglobe_road, "paired by name", *BINARY, {}),
    "camvid": (releases.camvid_cambridge, "paired by name", ("Sky", "Road", "Car"), (0, 1, 2), {}),
    "glas": (releases.glas, "paired by name", *BINARY, {}),
    "ph2": (releases.ph2, "paired by name", *BINARY, {}),
    "isic2017": (releases.isic_2017, "paired by name", *BINARY, {}),
    "colours": (releases.colour_masks, "paired by name", ("background", "color_0_0_255", "color_255_0_0"),
                (0, 1, 2), {}),
}  # fmt: skip
RELEASES |= PAIRED


@pytest.fixture(params=list(RELEASES))
def release(request, tmp_path):
    build, *expected = RELEASES[request.param]
    data, truth = build(tmp_path / "download")
    return data, truth, expected


def test_a_release_is_recognised_with_its_classes_values_and_splits(release):
    data, truth, (kind, names, values, splits) = release
    layout = describe(data)
    assert layout.kind == kind
    assert names is None or layout.class_names == names
    assert values is None or layout.mask_values == values
    for split, count in splits.items():
        assert len(layout.split_ids(split)) == count
    if layout.hold_out:
        train, val = layout.split_ids("train"), layout.split_ids("val")
        assert val and not set(train) & set(val)
    every = {i for split in layout.splits for i in layout.split_ids(split)} | set(layout.split_ids("val"))
    assert every == set(truth)


def test_a_release_s_masks_read_as_it_means_them(release):
    data, truth, _ = release
    layout = describe(data)
    for image_id, expected in truth.items():
        mask = layout.read_mask(image_id)
        if layout.kind == "Kvasir-SEG":  # JPEG moves a few edge pixels across the threshold
            assert (mask == expected).mean() > 0.98
        else:
            np.testing.assert_array_equal(mask, expected, err_msg=image_id)


def test_a_release_loads_through_the_dataset(release):
    data, truth, _ = release
    val = SegmentationDataset(data, "val", train=False)
    image, mask = val[0]
    assert image.shape == (3, *releases.SIZE) and image.dtype == mask.dtype == torch.uint8
    np.testing.assert_array_equal(mask.numpy(), truth[val.ids[0]])
    assert val.scan_masks().classes.sum() == sum(int((truth[i] != 255).sum()) for i in val.ids)


def test_cityscapes_label_ids_become_the_19_evaluation_classes(tmp_path):
    layout = describe(releases.cityscapes(tmp_path / "cs")[0])
    assert (
        layout.num_classes == 19 and layout.class_names[0] == "road" and layout.class_names[18] == "bicycle"
    )
    assert layout.mask_values[:3] == (7, 8, 11) and layout.colors[13].tolist() == [0, 0, 142]


def test_cityscapes_train_ids_are_read_where_a_user_made_them(tmp_path):
    data, truth = releases.cityscapes(tmp_path / "cs")
    for path in data.glob("gtFine/*/*/*_labelIds.png"):
        stem = path.name.removesuffix("_gtFine_labelIds.png")
        Image.fromarray(truth[stem]).save(path.with_name(f"{stem}_gtFine_labelTrainIds.png"))
        path.write_bytes(b"")  # only the train ids are read
    layout = describe(data)
    assert layout.mask_values == tuple(range(19)) and "labelTrainIds" in layout.value_rule
    stem = next(iter(truth))
    np.testing.assert_array_equal(layout.read_mask(stem), truth[stem])


def test_ade20k_takes_its_class_names_from_object_info(tmp_path):
    layout = describe(releases.ade20k(tmp_path / "ade")[0])
    assert layout.num_classes == 150 and layout.class_names[:2] == ("wall", "building")


def test_the_carvana_hq_images_are_used_when_present(tmp_path):
    data, _ = releases.carvana(tmp_path / "carvana")
    (data / "train").rename(data / "train_hq")
    layout = describe(data)
    assert layout.image_path(layout.all_ids()[0]).parent.name == "train_hq"


def test_milesial_masks_without_the_mask_tag_pair_by_name(tmp_path):
    data, truth = releases.milesial(tmp_path / "m", tag="")
    layout = describe(data)
    np.testing.assert_array_equal(layout.read_mask("car03"), truth["car03"])


def test_the_busi_pairs_are_printed_and_numbered_masks_united(tmp_path):
    data, _ = releases.busi(tmp_path / "busi")
    layout = describe(data)
    assert layout.notes[0] == "masks: <name>_mask.png beside <name>.png, 12 pairs"
    assert "2 image(s) have several numbered masks" in layout.notes[1]


def test_a_mask_two_images_could_own_is_an_error_naming_both(tmp_path):
    data, _ = releases.busi(tmp_path / "busi")
    image = data / "benign" / "benign (2).png"
    image.with_suffix(".bmp").write_bytes(image.read_bytes())
    with pytest.raises(UserError, match=r"benign \(2\)_mask\.png could be the mask of .*benign \(2\)\.bmp"):
        describe(data)


def test_an_image_without_its_mask_in_a_paired_folder_is_left_out_and_named(tmp_path):
    data, _ = releases.busi(tmp_path / "busi")
    (data / "malignant" / "malignant (3)_mask.png").unlink()
    layout = describe(data)
    assert "malignant/malignant (3)" not in layout.all_ids() and len(layout.all_ids()) == 11
    assert any(
        n.startswith("left out 1 images without a mask: malignant/malignant (3).png") for n in layout.notes
    )


def test_most_images_without_a_mask_stop_the_run(tmp_path):
    data, _ = releases.busi(tmp_path / "busi")
    for mask in [*sorted(data.glob("benign/*_mask.png"))[1:], *sorted(data.glob("malignant/*_mask.png"))[1:]]:
        mask.unlink()
    with pytest.raises(UserError, match=r"most images of .* lack a mask: 2 pair by .*, 10 do not"):
        describe(data)


@pytest.mark.parametrize(
    "build, remove, named",
    [
        (
            releases.drive,
            "DRIVE/training/1st_manual/23_manual1.gif",
            "23_manual1.gif not found: this looks like DRIVE",
        ),
        (releases.cityscapes, "gtFine/train/bochum", "bochum_000000_000019_gtFine_labelIds.png not found"),
        (
            releases.isic_2018,
            "ISIC2018_Task1_Training_GroundTruth/ISIC_0000004_segmentation.png",
            "ISIC_0000004_segmentation.png not found: this looks like ISIC 2018",
        ),
        (releases.oxford_pet, "annotations/trimaps/basset_hound_3.png", "basset_hound_3.png not found"),
        (releases.isbi_stacks, "train-labels.tif", "train-labels.tif not found: this looks like ISBI 2012"),
        (releases.ade20k, "ADEChallengeData2016/objectInfo150.txt", "objectInfo150.txt not found"),
    ],
)
def test_a_partial_download_names_the_missing_file(tmp_path, build, remove, named):
    build(tmp_path)
    path = tmp_path / remove
    if path.is_dir():
        for child in path.iterdir():
            child.unlink()
        path.rmdir()
    else:
        path.unlink()
    data = tmp_path / "ADEChallengeData2016" if build is releases.ade20k else tmp_path
    with pytest.raises(UserError, match=named):
        describe(data)


def notes_of(layout) -> str:
    return "\n".join(layout.notes)


def test_two_annotators_read_the_first_and_name_the_flag_for_the_other(tmp_path):
    data, truth = releases.chase_db1(tmp_path / "CHASEDB1")
    layout = describe(data)
    assert layout.notes[0] == "masks: <name>_1stHO.png beside <name>.jpg, 6 pairs"
    assert "mark the same objects (annotators)" in notes_of(layout) and "--masks _2ndHO" in notes_of(layout)
    assert "left out 6 masks of another kind" in notes_of(layout)


def test_masks_chooses_the_second_annotator_by_suffix_or_folder(tmp_path):
    data, second = releases.chase_db1(tmp_path / "CHASEDB1", annotator=2)
    layout = describe(data, masks="_2ndHO")
    for image_id, expected in second.items():
        np.testing.assert_array_equal(layout.read_mask(image_id), expected)
    stare, _ = releases.stare(tmp_path / "stare")
    assert (
        describe(stare, masks="labels-vk").notes[0]
        == "masks: labels-vk/<name>.vk.ppm for stare-images/<name>.ppm, 6 pairs"
    )


def test_masks_naming_no_masks_lists_the_choices(tmp_path):
    data, _ = releases.chase_db1(tmp_path / "CHASEDB1")
    with pytest.raises(UserError, match=r"--masks _3rdHO: no masks .* --masks _1stHO .*--masks _2ndHO"):
        describe(data, masks="_3rdHO")


def test_masks_is_refused_for_a_release_of_fixed_masks(tmp_path):
    data, _ = releases.kvasir_seg(tmp_path / "k")
    with pytest.raises(UserError, match=r"--masks _mask: .* recognised as Kvasir-SEG, whose masks are fixed"):
        describe(data, masks="_mask")


def test_a_field_of_view_beside_the_labels_is_not_read_as_labels_unless_chosen(tmp_path):
    data, _ = releases.hrf(tmp_path / "hrf")
    assert "mask/<name>_mask.* for images/<name>.*: the same region in every image" in notes_of(
        describe(data)
    )
    fov = describe(data, masks="mask")
    np.testing.assert_array_equal(fov.read_mask("images/01_g"), releases.disc().astype(np.uint8))


def test_two_kinds_of_masks_that_neither_agree_nor_part_stop_naming_the_flag(tmp_path):
    data, _ = releases.hrf(tmp_path / "hrf")
    for k, path in enumerate(sorted((data / "mask").iterdir())):  # regions that differ from image to image
        region = np.zeros(releases.SIZE, bool)
        region[: 20 + 3 * k, 10:] = True
        releases.save_binary(region, path)
    with pytest.raises(
        UserError, match=r"several kinds of masks .* choose the labels with --masks manual1 or --masks _mask"
    ):
        describe(data)


def test_masks_of_parts_that_never_overlap_become_one_class_each(tmp_path):
    data, _ = releases.montgomery(tmp_path / "MontgomerySet")
    assert "mark parts: one class each (leftMask, rightMask)" in notes_of(describe(data))
    left = describe(data, masks="leftMask")
    assert left.class_names == ("background", "foreground")
    assert (left.read_mask("CXR_png/MCUCXR_0001_0") == 1).sum() > 0


def test_folders_of_images_only_are_left_out_for_prediction(tmp_path):
    data, _ = releases.deepglobe_road(tmp_path / "road")
    layout = describe(data)
    assert layout.notes[0] == "masks: <name>_mask.png beside <name>_sat.jpg, 8 pairs"
    assert (
        "left out 6 image files of folders without masks (not trained on): test/ (3), valid/ (3)"
        in layout.notes
    )


def test_derived_files_beside_the_images_are_left_out(tmp_path):
    data, _ = releases.isic_2017(tmp_path / "isic")
    assert "left out 6 files named after an image plus another suffix" in notes_of(describe(data))


def test_colour_masks_take_their_classes_from_the_colour_table_and_void(tmp_path):
    data, _ = releases.camvid_cambridge(tmp_path / "camvid")
    layout = describe(data)
    assert layout.value_rule.endswith(
        "(128,128,128) Sky, (128,64,128) Road, (64,0,128) Car, (0,0,0) Void = void"
    )
    assert layout.colors.tolist() == [[128, 128, 128], [128, 64, 128], [64, 0, 128]]


def test_a_colour_the_table_lacks_names_the_mask_and_the_colour(tmp_path):
    data, _ = releases.camvid_cambridge(tmp_path / "camvid")
    path = data / "LabeledApproved_full" / "0001TP_006720_L.png"
    rgb = np.array(Image.open(path))
    rgb[0, 0] = (1, 2, 3)
    Image.fromarray(rgb).save(path)
    with pytest.raises(
        UserError, match=r"0001TP_006720_L\.png holds colour \(1, 2, 3\), which .*label_colors\.txt"
    ):
        describe(data).read_mask("701_StillsRaw_full/0001TP_006720")


def test_colour_masks_without_a_table_are_one_class_per_colour(tmp_path):
    data, _ = releases.colour_masks(tmp_path / "aerial")
    assert "one class per colour found (no colour table beside them)" in describe(data).value_rule


def test_colour_masks_in_the_plain_layout_without_a_class_list_are_read_by_colour(tmp_path):
    data, truth = releases.colour_masks(tmp_path / "aerial", mask_folder="masks")
    layout = describe(data)
    assert layout.kind == "paired by name" and layout.num_classes == 3
    np.testing.assert_array_equal(layout.read_mask("images/tile_0"), truth["images/tile_0"])


def test_instance_id_masks_are_read_as_foreground_and_said_so(tmp_path):
    data, _ = releases.glas(tmp_path / "glas")
    assert (
        describe(data).value_rule
        == "per-image instance ids (each mask 0..k, k from 2 to 9): foreground where above 0"
    )


def test_folders_named_after_each_image_pair(tmp_path):
    data, _ = releases.ph2(tmp_path / "ph2")
    layout = describe(data)
    assert (
        layout.notes[0]
        == "masks: <name>_lesion/<name>_lesion.bmp for <name>_Dermoscopic_Image/<name>.bmp, 6 pairs"
    )
    note = "left out 2 image files of folders without masks (not trained on): PH2 Dataset images/IMD002/"
    assert note in notes_of(layout)


def test_when_nothing_pairs_the_error_describes_the_folder(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "drawn").mkdir()
    for k in range(3):
        image, blobs = releases.blob_sample(np.random.default_rng(k))
        Image.fromarray(image).save(tmp_path / "photos" / f"img{k:02d}.jpg")
        releases.save_binary(blobs, tmp_path / "drawn" / f"lbl{k:02d}.png")
    with pytest.raises(UserError) as error:
        describe(tmp_path)
    message = str(error.value)
    assert "no images and masks pair by name" in message and "6 image files (3 .jpg, 3 .png)" in message
    assert "in drawn/ (3), photos/ (3); closest names: drawn/lbl00.png ~ photos/img00.jpg" in message
    assert "VOC" not in message and "Kvasir" not in message


def test_a_folder_without_images_says_so_and_names_no_format(tmp_path):
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(UserError, match=r"no image files in .* \(searched 4 folders deep\)") as error:
        describe(tmp_path)
    assert "Kvasir" not in str(error.value) and "labelmap" not in str(error.value)


def test_a_missing_folder_is_named(tmp_path):
    with pytest.raises(UserError, match=r"--data_dir .*nowhere not found"):
        describe(tmp_path / "nowhere")


def test_a_second_scan_reads_no_mask_and_a_changed_mask_is_read_again(tmp_path, monkeypatch):
    data, truth = releases.ade20k(tmp_path / "ade")
    first = SegmentationDataset(data, "train").scan_masks().classes
    monkeypatch.setattr(SegmentationDataset, "_count_pixels", lambda self, threads: pytest.fail("re-read"))
    np.testing.assert_array_equal(SegmentationDataset(data, "train").scan_masks().classes, first)
    monkeypatch.undo()
    path = data / "annotations" / "training" / "ADE_train_00000001.png"
    Image.fromarray(np.full(releases.SIZE, 3, np.uint8)).save(path)
    again = SegmentationDataset(data, "train").scan_masks().classes
    assert again[0].tolist() == [0, 0, 48 * 64] + [0] * 147 and (again[1:] == first[1:]).all()


# The real releases in ../shared/data (a user's clone does not have them).


def shared(name):
    if not (SHARED / name).is_dir():
        pytest.skip(f"real {name} files not found at {SHARED / name}")
    return SHARED / name


def test_the_real_drive_release_reads_vessels_inside_the_field_of_view():
    layout = describe(shared("drive"))
    assert layout.kind == "DRIVE" and len(layout.all_ids()) == 20 and len(layout.split_ids("test")) == 20
    image_id = layout.split_ids("test")[0]
    manual = np.array(Image.open(layout.mask_files(image_id)[0]))
    fov = np.array(Image.open(layout.mask_files(image_id)[1]))
    expected = np.where(fov == 0, 255, manual // 255)
    np.testing.assert_array_equal(layout.read_mask(image_id), expected)
    assert 0.08 < (expected == 1).sum() / (fov > 0).sum() < 0.16  # vessels: about 12% of the field of view


def test_the_drive_all_20_lists_train_on_every_training_image_and_keep_the_held_out_val():
    layout = describe(shared("drive"))
    lists = layout.with_split_lists(ROOT / "recipes" / "splits" / "drive-train-20")
    assert sorted(lists.split_ids("train")) == sorted(layout.all_ids())
    assert lists.split_ids("val") == layout.split_ids("val")  # the 4 by hash, now also trained on
    assert lists.split_ids("test") == layout.split_ids("test")


def test_the_real_segnet_camvid_folders_pair_in_every_split():
    layout = describe(shared("camvid"))
    assert layout.notes[0] == "masks: <dir>annot/<name>.png for <dir>/<name>.png, 701 pairs"
    image_id = "val/0016E5_07959"
    expected = np.array(Image.open(SHARED / "camvid" / "valannot" / "0016E5_07959.png"))
    np.testing.assert_array_equal(layout.read_mask(image_id), expected)


def test_the_real_isbi_copy_pairs_its_slices_and_leaves_out_the_unlabelled_test_folder():
    layout = describe(shared("isbi2012"))
    assert layout.notes[0] == "masks: label/<name>.png for image/<name>.png, 30 pairs"
    assert "left out 30 image files of folders without masks (not trained on): test/ (30)" in layout.notes


def test_the_real_kvasir_release_reads_polyps_by_the_threshold():
    layout = describe(shared("kvasir-seg"))
    assert layout.kind == "Kvasir-SEG" and len(layout.all_ids()) == 200
    for image_id in layout.all_ids()[:5]:
        grey = np.array(Image.open(layout.mask_path(image_id)).convert("L"))
        np.testing.assert_array_equal(layout.read_mask(image_id), (grey >= 128).astype(np.uint8))


@pytest.mark.slow
@pytest.mark.parametrize("name", list(RELEASES))
def test_a_release_trains_evaluates_and_predicts_in_its_own_values(tmp_path, name):
    data, truth = RELEASES[name][0](tmp_path / "download")
    layout = describe(data)
    trained = run_script(*main_command(data, tmp_path, "--epochs", "1", "--batch_size", "2"))
    assert trained.returncode == 0, trained.stderr
    assert f"run: {layout.kind} data set, {layout.num_classes} classes" in trained.stdout
    assert f"mask values: {layout.value_rule}" in trained.stdout
    checkpoint = tmp_path / "exp" / "run" / "last.pth"
    recorded = torch.load(checkpoint, weights_only=True)
    assert recorded["data"]["format"] == layout.kind and recorded["data"]["value_rule"] == layout.value_rule
    assert recorded["classes"]["values"] == list(layout.mask_values)
    evaluated = run_script("main.py", "--data_dir", str(data), "--resume", str(checkpoint), "--eval_only")
    assert evaluated.returncode == 0, evaluated.stderr
    assert list(last_json(evaluated.stdout)["iou"]) == list(layout.class_names)
    image = layout.image_path(layout.split_ids("val")[0])
    predicted = run_script(
        "tools/predict.py",
        "--checkpoint",
        str(checkpoint),
        "--input",
        str(image),
        "--output",
        str(tmp_path / "out"),
    )
    assert predicted.returncode == 0, predicted.stderr
    with Image.open(tmp_path / "out" / f"{image.stem}.png") as mask:
        assert mask.size == Image.open(image).size
        assert set(np.unique(np.array(mask)).tolist()) <= set(layout.mask_values)


def test_split_lists_of_ones_own_replace_a_release_s_held_out_val(tmp_path):
    data, truth = releases.kvasir_seg(tmp_path / "k")
    ids = sorted(truth)
    lists = tmp_path / "lists"
    lists.mkdir()
    for split, part in (("train", ids[:8]), ("val", ids[8:10]), ("test", ids[10:])):
        (lists / f"{split}.txt").write_text("".join(f"{i}\n" for i in part))
    layout = describe(data).with_split_lists(lists)
    assert not layout.hold_out
    assert [layout.split_ids(s) for s in ("train", "val", "test")] == [ids[:8], ids[8:10], ids[10:]]


def test_a_split_list_naming_an_id_the_release_lacks_is_refused(tmp_path):
    data, _ = releases.kvasir_seg(tmp_path / "k")
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "train.txt").write_text("no_such_polyp\n")
    with pytest.raises(
        UserError, match=r"train\.txt lists 1 id\(s\) that .* does not hold, e\.g\. no_such_polyp"
    ):
        describe(data).with_split_lists(tmp_path / "lists")


@pytest.mark.slow
def test_a_partial_download_stops_main_with_exit_2_before_anything_is_written(tmp_path):
    data, _ = releases.drive(tmp_path / "download")
    (data / "DRIVE" / "training" / "1st_manual" / "25_manual1.gif").unlink()
    result = run_script(*main_command(data, tmp_path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "25_manual1.gif not found: this looks like DRIVE" in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "exp").exists() and not (tmp_path / "tb").exists()


@pytest.mark.slow
def test_main_reads_the_masks_that_masks_names(tmp_path):
    data, _ = releases.chase_db1(tmp_path / "CHASEDB1")
    result = run_script(
        *main_command(data, tmp_path, "--masks", "_2ndHO", "--epochs", "1", "--batch_size", "2")
    )
    assert result.returncode == 0, result.stderr
    assert "masks: <name>_2ndHO.png beside <name>.jpg, 6 pairs" in result.stdout


def test_main_stops_on_unclear_masks_with_one_line_naming_the_flag(tmp_path):
    data, _ = releases.hrf(tmp_path / "hrf")
    for k, path in enumerate(sorted((data / "mask").iterdir())):
        region = np.zeros(releases.SIZE, bool)
        region[: 20 + 3 * k, 10:] = True
        releases.save_binary(region, path)
    result = run_script(*main_command(data, tmp_path))
    assert_user_error(result, "several kinds of masks", "--masks manual1 or --masks _mask")
    assert not (tmp_path / "exp").exists()
