import numpy as np
import scipy.io
from PIL import Image

from layouts import IGNORE_INDEX, VOC_NUM_CLASSES
from tools.demo_data import make_demo_data


def read_list(path):
    return path.read_text().split()


def test_writes_the_raw_voc_and_sbd_tree(tmp_path):
    root = make_demo_data(tmp_path, seed=0, train=20, val=6) / "VOCdevkit"
    voc, sbd = root / "VOC2012", root / "VOCaug" / "dataset"
    voc_ids = read_list(voc / "ImageSets/Segmentation/train.txt") + read_list(
        voc / "ImageSets/Segmentation/val.txt"
    )
    sbd_ids = read_list(sbd / "train.txt") + read_list(sbd / "val.txt")
    for i in set(voc_ids) | set(sbd_ids):
        assert (voc / "JPEGImages" / f"{i}.jpg").is_file()
    assert sorted(p.stem for p in (voc / "SegmentationClass").iterdir()) == sorted(voc_ids)
    assert sorted(p.stem for p in (sbd / "cls").iterdir()) == sorted(sbd_ids)


def test_voc_masks_are_palette_pngs_with_a_void_border(tmp_path):
    voc = make_demo_data(tmp_path, train=8, val=4) / "VOCdevkit/VOC2012"
    for path in (voc / "SegmentationClass").iterdir():
        with Image.open(path) as mask:
            assert mask.mode == "P"
            values = np.unique(np.array(mask))
        assert IGNORE_INDEX in values and values[values != IGNORE_INDEX].max() < VOC_NUM_CLASSES


def test_sbd_mats_have_the_real_gtcls_layout(tmp_path):
    sbd = make_demo_data(tmp_path, train=8, val=4) / "VOCdevkit/VOCaug/dataset/cls"
    path = next(sbd.iterdir())
    gt = scipy.io.loadmat(path)["GTcls"][0, 0]
    assert gt.dtype.names == ("Boundaries", "Segmentation", "CategoriesPresent")
    segmentation = gt["Segmentation"]
    assert segmentation.dtype == np.uint8 and IGNORE_INDEX not in segmentation
    assert gt["Boundaries"].shape == (20, 1)
    present = sorted(set(np.unique(segmentation)) - {0})
    assert gt["CategoriesPresent"].ravel().tolist() == present


def test_sbd_shares_ids_with_voc_train_and_val_like_the_real_sets(tmp_path):
    root = make_demo_data(tmp_path, train=30, val=9) / "VOCdevkit"
    voc_train = set(read_list(root / "VOC2012/ImageSets/Segmentation/train.txt"))
    voc_val = set(read_list(root / "VOC2012/ImageSets/Segmentation/val.txt"))
    sbd = set(read_list(root / "VOCaug/dataset/train.txt") + read_list(root / "VOCaug/dataset/val.txt"))
    assert sbd & voc_train and sbd & voc_val and sbd - voc_train - voc_val
    assert len((sbd | voc_train) - voc_val) == 30 and len(voc_val) == 9


def test_same_seed_gives_the_same_files_and_another_seed_does_not(tmp_path):
    a, b, c = (
        make_demo_data(tmp_path / name, seed=s, train=6, val=3) for name, s in (("a", 1), ("b", 1), ("c", 2))
    )
    files = sorted(p.relative_to(a) for p in a.rglob("*.jpg"))
    assert files and all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    assert sorted(p.relative_to(c) for p in c.rglob("*.jpg")) != files or any(
        (a / f).read_bytes() != (c / f).read_bytes() for f in files
    )


def test_images_vary_in_size_and_orientation_and_cover_every_class(tmp_path):
    voc = make_demo_data(tmp_path, train=60, val=20) / "VOCdevkit/VOC2012"
    sizes = [Image.open(p).size for p in (voc / "JPEGImages").iterdir()]
    assert any(w > h for w, h in sizes) and any(h > w for w, h in sizes)
    assert any(w % 16 or h % 16 for w, h in sizes)
    classes = set()
    for path in (voc / "SegmentationClass").iterdir():
        classes |= set(np.unique(np.array(Image.open(path))).tolist())
    assert classes - {IGNORE_INDEX} == set(range(VOC_NUM_CLASSES))
