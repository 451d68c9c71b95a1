import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from dataset import (
    PixelCounts,
    SameSizeBatches,
    ShardSampler,
    VOCSegmentation,
    check_masks,
    elastic_deform,
    make_loader,
    pixel_report,
    set_epoch,
    to_device,
)
from images import ImageFormat
from layouts import IGNORE_INDEX, VOC_PALETTE, describe
from tests.helpers import binary_layout, prepared_tree, turned_jpeg
from utils import IMAGENET_MEAN, IMAGENET_STD, UserError

STRIPE_CLASSES = (1, 2, 4, 6, 13)  # classes whose VOC colours are far apart


def stripes(height, width, offset=0):
    """A mask of vertical class stripes (asymmetric, so a lost flip shows) with a void column."""
    mask = np.zeros((height, width), dtype=np.uint8)
    bounds = np.linspace(0, width, len(STRIPE_CLASSES) + 2).astype(int)
    for k, c in enumerate(STRIPE_CLASSES):
        mask[:, bounds[k + 1] : bounds[k + 2]] = c
    mask[: height // 3, bounds[1] - 3 : bounds[1] + 3] = IGNORE_INDEX
    return np.roll(mask, offset, axis=1)


@pytest.fixture
def striped(tmp_path):
    """Images whose colour encodes the class of their mask: the VOC colour of each pixel's class."""
    samples = {}
    for k, (h, w) in enumerate([(120, 170), (190, 97), (75, 75)]):
        mask = stripes(h, w, offset=7 * k)
        samples[f"img{k}"] = (VOC_PALETTE[np.where(mask == IGNORE_INDEX, 0, mask)], mask)
    return prepared_tree(tmp_path, samples, {"trainaug": list(samples), "val": list(samples)})


def class_from_colour(image):
    """3xHxW uint8 -> HxW class index of the nearest stripe colour."""
    colours = VOC_PALETTE[[0, *STRIPE_CLASSES]].astype(np.float32)
    pixels = image.permute(1, 2, 0).numpy().astype(np.float32)
    nearest = np.argmin(((pixels[:, :, None, :] - colours) ** 2).sum(-1), axis=-1)
    return np.array([0, *STRIPE_CLASSES])[nearest]


def interior(mask, margin=2):
    """Pixels whose whole (2*margin+1)^2 neighbourhood holds one class: away from edges and resampling."""
    m = mask.numpy().astype(np.int32)
    keep = np.ones_like(m, dtype=bool)
    padded = np.pad(m, margin, mode="edge")
    for dy in range(2 * margin + 1):
        for dx in range(2 * margin + 1):
            keep &= padded[dy : dy + m.shape[0], dx : dx + m.shape[1]] == m
    return keep & (m != IGNORE_INDEX)


@pytest.mark.parametrize("scale", [(0.5, 2.0), (0.2, 0.45)])  # the second uses reduced JPEG decoding
def test_augmented_image_and_mask_stay_aligned(striped, scale):
    ds = VOCSegmentation(striped, "trainaug", train=True, crop_size=96, scale=scale, seed=3)
    checked = 0
    for epoch in range(6):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            image, mask = ds[i]
            keep = interior(mask)
            agree = class_from_colour(image)[keep] == mask.numpy()[keep]
            assert np.count_nonzero(~agree) <= 0.01 * agree.size, (epoch, i)
            checked += keep.sum()
    assert checked > 2_000  # enough interior pixels were compared


def test_masks_hold_only_classes_of_the_source_and_void(striped):
    ds = VOCSegmentation(striped, "trainaug", train=True, crop_size=64, seed=0)
    for epoch in range(5):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            assert set(ds[i][1].unique().tolist()) <= {0, *STRIPE_CLASSES, IGNORE_INDEX}


def test_items_are_uint8_crops(prepared_demo):
    ds = VOCSegmentation(prepared_demo, "trainaug", train=True, crop_size=80)
    image, mask = ds[0]
    assert image.shape == (3, 80, 80) and image.dtype == torch.uint8
    assert mask.shape == (80, 80) and mask.dtype == torch.uint8


def test_crop_larger_than_the_image_is_padded_with_void_and_black(tmp_path):
    image = np.full((30, 40, 3), 200, dtype=np.uint8)
    root = prepared_tree(tmp_path, {"a": (image, np.full((30, 40), 5))}, {"trainaug": ["a"]})
    ds = VOCSegmentation(root, "trainaug", train=True, crop_size=64, scale=(1.0, 1.0))
    image, mask = ds[0]
    content = mask != IGNORE_INDEX
    assert content.sum() == 30 * 40 and set(mask[content].unique().tolist()) == {5}
    assert (image[:, ~content] == 0).all() and (image[:, content] > 150).all()


def test_a_resize_format_trains_on_the_whole_image_resized_to_its_size(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, (30, 70))
    root = prepared_tree(tmp_path, {"a": (rng.integers(0, 256, (30, 70, 3)), labels)}, {"trainaug": ["a"]})
    ds = VOCSegmentation(root, "trainaug", crop_size=16, scale=(1.0, 1.0), image_format=ImageFormat(size=16))
    rows, cols = ((np.arange(16) + 0.5) * 30 / 16).astype(int), ((np.arange(16) + 0.5) * 70 / 16).astype(int)
    expected = labels[np.ix_(rows, cols)]
    for epoch in range(4):  # flipped or not, never cropped: the mask's nearest pixels at 16 x 16
        ds.set_epoch(epoch)
        image, mask = ds[0]
        assert image.shape == (3, 16, 16)
        assert (mask.numpy() == expected).all() or (mask.numpy() == expected[:, ::-1]).all()


def test_flip_mirrors_image_and_mask_together(striped):
    ds = VOCSegmentation(striped, "trainaug", train=True, crop_size=75, scale=(1.0, 1.0))
    reference = torch.from_numpy(stripes(75, 75, offset=14))
    outcomes = set()
    for epoch in range(12):
        ds.set_epoch(epoch)
        image, mask = ds[2]  # 75x75 with crop 75 at scale 1: the whole image, flipped or not
        flipped = torch.equal(mask, reference.flip(-1))
        assert flipped or torch.equal(mask, reference)
        keep = interior(mask)
        assert (class_from_colour(image)[keep] == mask.numpy()[keep]).all()
        outcomes.add(flipped)
    assert outcomes == {True, False}


def test_draws_depend_on_seed_epoch_and_index_only(prepared_demo):
    root = prepared_demo
    a = VOCSegmentation(root, "trainaug", train=True, crop_size=64, seed=1)
    b = VOCSegmentation(root, "trainaug", train=True, crop_size=64, seed=1)
    b.set_epoch(5)
    b[3], b[0]  # noqa: B018 -- other draws in between must not matter
    a.set_epoch(5)
    assert all(torch.equal(x, y) for x, y in zip(a[3], b[3], strict=True))
    a.set_epoch(6)
    assert not torch.equal(a[3][0], b[3][0])


def test_color_jitter_scales_brightness_within_its_range_and_leaves_mask_and_padding(tmp_path):
    # A grey image: contrast and saturation leave it as it is, so only the brightness factor shows.
    image = np.full((30, 40, 3), 100, dtype=np.uint8)
    root = prepared_tree(tmp_path, {"a": (image, np.full((30, 40), 5))}, {"trainaug": ["a"]})
    plain = VOCSegmentation(root, "trainaug", train=True, crop_size=64, scale=(1.0, 1.0))
    jittered = VOCSegmentation(root, "trainaug", train=True, crop_size=64, scale=(1.0, 1.0), color_jitter=0.2)
    values = set()
    for epoch in range(20):
        plain.set_epoch(epoch)
        jittered.set_epoch(epoch)
        plain_mask, (image, mask) = plain[0][1], jittered[0]
        content = mask != IGNORE_INDEX
        assert torch.equal(mask, plain_mask) and (image[:, ~content] == 0).all()
        assert len(image[:, content].unique()) == 1  # one factor for the whole crop
        values.add(int(image[0, content][0]))
    assert all(80 <= v <= 120 for v in values) and len(values) >= 10


def test_color_jitter_changes_colour_but_keeps_image_and_mask_aligned(striped):
    plain = VOCSegmentation(striped, "trainaug", train=True, crop_size=96, seed=3)
    jittered = VOCSegmentation(striped, "trainaug", train=True, crop_size=96, seed=3, color_jitter=0.4)
    changed = 0
    for epoch in range(4):
        plain.set_epoch(epoch)
        jittered.set_epoch(epoch)
        for i in range(len(plain)):
            (plain_image, plain_mask), (image, mask) = plain[i], jittered[i]
            assert torch.equal(mask, plain_mask)  # same crop, scale and flip as without jitter
            changed += not torch.equal(image, plain_image)
    assert changed == 4 * len(plain)


def batches(loader, epoch):
    set_epoch(loader, epoch)
    return [(images.clone(), masks.clone()) for images, masks in loader]


def test_loader_batches_are_the_same_for_any_number_of_workers(prepared_demo):
    root = prepared_demo
    loaders = [
        make_loader(VOCSegmentation(root, "trainaug", train=True, crop_size=48, seed=2), 4, workers, seed=2)
        for workers in (0, 2)
    ]
    for epoch in (0, 1):  # epoch 1 checks that persistent workers see set_epoch
        plain, parallel = (batches(loader, epoch) for loader in loaders)
        assert len(plain) == 24 // 4
        for (i0, m0), (i1, m1) in zip(plain, parallel, strict=True):
            assert torch.equal(i0, i1) and torch.equal(m0, m1)
    assert not torch.equal(batches(loaders[0], 0)[0][0], batches(loaders[0], 1)[0][0])


def test_training_loader_drops_the_last_partial_batch(prepared_demo):
    ds = VOCSegmentation(prepared_demo, "trainaug", train=True, crop_size=32)
    assert [len(images) for images, _ in make_loader(ds, 5, 0)] == [5] * (24 // 5)


def test_train_shards_are_disjoint_and_equal_and_reshuffle_each_epoch():
    shards = [ShardSampler(23, rank, 3, seed=0) for rank in range(3)]
    seen = [list(s) for s in shards]
    assert [len(s) for s in seen] == [7, 7, 7] == [len(s) for s in shards]
    assert len(set().union(*seen)) == 21
    for s in shards:
        s.set_epoch(1)
    assert [list(s) for s in shards] != seen


def test_val_batches_hold_equal_sizes_and_cover_every_image_exactly_once():
    sizes = [(5, 7), (6, 6), (5, 7), (5, 7), (6, 6), (9, 1), (5, 7), (5, 7), (6, 6), (5, 7)]
    shards = [list(SameSizeBatches(sizes, 3, rank, 2)) for rank in range(2)]
    batches = shards[0] + shards[1]
    assert sorted(i for batch in batches for i in batch) == list(range(10))
    assert all(len(batch) <= 3 and len({sizes[i] for i in batch}) == 1 for batch in batches)
    assert len(batches) == 2 + 1 + 1  # six (5, 7), three (6, 6), one (9, 1)


def test_validation_items_are_whole_images_at_their_own_size(tmp_path):
    pixels = np.full((30, 45, 3), 120, dtype=np.uint8)
    root = prepared_tree(tmp_path, {"a": (pixels, np.full((30, 45), 3))}, {"val": ["a"]})
    image, mask = VOCSegmentation(root, "val", train=False)[0]
    assert image.shape == (3, 30, 45) and mask.shape == (30, 45) and (mask == 3).all()
    assert (image.int() - 120).abs().max() <= 2  # JPEG


def test_validation_loader_batches_images_of_equal_size(tmp_path):
    samples = {
        f"s{k}": (np.zeros((20, 30 if k % 2 else 40, 3)), np.zeros((20, 30 if k % 2 else 40)))
        for k in range(7)
    }
    root = prepared_tree(tmp_path, samples, {"val": list(samples)})
    loader = make_loader(VOCSegmentation(root, "val", train=False), 3, 0)
    shapes = [tuple(images.shape) for images, _ in loader]
    assert sorted(shapes) == [(1, 3, 20, 40), (3, 3, 20, 30), (3, 3, 20, 40)]


def test_missing_split_file_points_to_tools_voc(tmp_path):
    with pytest.raises(UserError, match=r"no image files in .*tools/voc\.py --data_dir"):
        VOCSegmentation(tmp_path, "trainaug")


def test_missing_files_are_listed_with_their_count_before_loading(tmp_path):
    samples = {f"i{k}": (np.zeros((20, 20, 3)), np.zeros((20, 20))) for k in range(5)}
    root = prepared_tree(tmp_path, samples, {"trainaug": list(samples)})
    voc = root / "VOCdevkit/VOC2012"
    (voc / "JPEGImages/i1.jpg").unlink()
    (voc / "SegmentationClassAug/i3.png").unlink()
    with pytest.raises(UserError, match=r"2 file\(s\).*i1\.jpg.*i3\.png"):
        VOCSegmentation(root, "trainaug")


def test_unreadable_image_is_named(tmp_path):
    root = prepared_tree(tmp_path, {"a": (np.zeros((20, 20, 3)), np.zeros((20, 20)))}, {"trainaug": ["a"]})
    (root / "VOCdevkit/VOC2012/JPEGImages/a.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(UserError, match=r"a\.jpg"):
        VOCSegmentation(root, "trainaug", crop_size=16)[0]


def test_truncated_image_is_named(tmp_path):
    rng = np.random.default_rng(0)
    root = prepared_tree(
        tmp_path, {"a": (rng.integers(0, 255, (60, 60, 3)), np.zeros((60, 60)))}, {"val": ["a"]}
    )
    path = root / "VOCdevkit/VOC2012/JPEGImages/a.jpg"
    path.write_bytes(path.read_bytes()[:400])
    with pytest.raises(UserError, match=r"a\.jpg"):
        VOCSegmentation(root, "val", train=False)[0]


def test_image_and_mask_size_mismatch_is_named(tmp_path):
    root = prepared_tree(tmp_path, {"a": (np.zeros((20, 30, 3)), np.zeros((20, 31)))}, {"trainaug": ["a"]})
    with pytest.raises(UserError, match=r"a\.png.*a\.jpg"):
        VOCSegmentation(root, "trainaug", crop_size=16)[0]


def test_mask_values_outside_the_classes_are_named(tmp_path):
    mask = np.zeros((20, 20))
    mask[3, 3] = 40
    root = prepared_tree(tmp_path, {"a": (np.zeros((20, 20, 3)), mask)}, {"trainaug": ["a"]})
    with pytest.raises(UserError, match=r"a\.png.*\[40\]"):
        VOCSegmentation(root, "trainaug", crop_size=16)[0]


def test_to_device_normalises_on_the_device():
    images = torch.tensor([0, 128, 255], dtype=torch.uint8).view(1, 3, 1, 1).expand(2, 3, 4, 5).contiguous()
    masks = torch.full((2, 4, 5), 255, dtype=torch.uint8)
    x, y = to_device(images, masks, torch.device("cpu"), channels_last=True)
    expected = [(v / 255 - m) / s for v, m, s in zip((0, 128, 255), IMAGENET_MEAN, IMAGENET_STD, strict=True)]
    torch.testing.assert_close(x[0, :, 0, 0], torch.tensor(expected))
    assert x.dtype == torch.float32 and x.is_contiguous(memory_format=torch.channels_last)
    assert y.dtype == torch.int64 and (y == 255).all()


def test_real_voc_and_sbd_samples_load(tmp_path, samples):
    voc = tmp_path / "VOCdevkit/VOC2012"
    (voc / "JPEGImages").mkdir(parents=True)
    (voc / "ImageSets/Segmentation").mkdir(parents=True)
    shutil.copytree(samples / "SegmentationClassAug-reference", voc / "SegmentationClassAug")
    shutil.copy(samples / "VOC2012/JPEGImages/2007_000129.jpg", voc / "JPEGImages")
    for name in ("2008_000051", "2008_000195"):
        shutil.copy(samples / f"sbd/img/{name}.jpg", voc / "JPEGImages")
    (voc / "ImageSets/Segmentation/val.txt").write_text("2007_000129\n")
    (voc / "ImageSets/Segmentation/trainaug.txt").write_text("2008_000051\n2008_000195\n")

    image, mask = VOCSegmentation(tmp_path, "val", train=False)[0]
    reference = np.array(Image.open(samples / "SegmentationClassAug-reference/2007_000129.png"))
    assert image.shape == (3, 500, 334) and (image > 0).any()
    np.testing.assert_array_equal(mask.numpy(), reference)
    train = VOCSegmentation(tmp_path, "trainaug", train=True, crop_size=320)
    for i, image_id in enumerate(train.ids):
        image, mask = train[i]
        labelled = np.unique(np.array(Image.open(voc / f"SegmentationClassAug/{image_id}.png")))
        assert image.shape == (3, 320, 320)
        assert set(mask.unique().tolist()) <= {*labelled.tolist(), 255}  # the crop's classes, padding void


# The U-Net paper's augmentations, and small data sets


@pytest.mark.parametrize(
    "augmentations",
    [{"vflip": True, "rot90": True}, {"elastic": 10.0}, {"vflip": True, "rot90": True, "elastic": 10.0}],
)
def test_microscopy_augmentations_keep_image_and_mask_aligned(striped, augmentations):
    ds = VOCSegmentation(striped, "trainaug", train=True, crop_size=96, seed=3, **augmentations)
    checked = 0
    for epoch in range(4):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            image, mask = ds[i]
            assert image.shape == (3, 96, 96) and image.dtype == mask.dtype == torch.uint8
            keep = interior(mask)
            agree = class_from_colour(image)[keep] == mask.numpy()[keep]
            assert np.count_nonzero(~agree) <= 0.01 * agree.size, (epoch, i)
            checked += keep.sum()
    assert checked > 2_000


def test_vflip_and_rot90_turn_the_crop_that_plain_training_draws(striped):
    plain = VOCSegmentation(striped, "trainaug", train=True, crop_size=64, seed=1)
    turned = VOCSegmentation(striped, "trainaug", train=True, crop_size=64, seed=1, vflip=True, rot90=True)
    outcomes = set()
    for epoch in range(10):
        plain.set_epoch(epoch)
        turned.set_epoch(epoch)
        _, mask = plain[0]
        _, other = turned[0]
        variants = [torch.rot90(m, k) for m in (mask, mask.flip(0)) for k in range(4)]
        match = [k for k, v in enumerate(variants) if torch.equal(v, other)]
        assert match, epoch  # the same crop and flip, only turned
        outcomes.add(match[0] > 0)
    assert outcomes == {True, False}


def test_elastic_deformation_moves_pixels_and_marks_what_comes_from_outside_as_void():
    mask = torch.zeros(64, 64, dtype=torch.uint8)
    mask[16:48, 20:40] = 1
    image = (mask * 200 + 20).expand(3, -1, -1).contiguous()
    same_image, same_mask = elastic_deform(image, mask, 0.0, np.random.default_rng(0))
    assert torch.equal(same_image, image) and torch.equal(same_mask, mask)
    moved_image, moved_mask = elastic_deform(image, mask, 10.0, np.random.default_rng(0))
    assert not torch.equal(moved_mask, mask)
    assert set(moved_mask.unique().tolist()) <= {0, 1, IGNORE_INDEX}
    inside = moved_mask != IGNORE_INDEX
    assert ((moved_image[0] > 120) == (moved_mask == 1))[inside].float().mean() > 0.99


def test_a_small_training_set_is_repeated_until_an_epoch_holds_min_images():
    sampler = ShardSampler(20, seed=0, min_images=256)
    indices = list(sampler)
    assert sampler.passes == 13 and len(indices) == len(sampler) == 260
    assert sorted(i % 20 for i in indices) == sorted(list(range(20)) * 13)  # every image in every pass
    assert list(ShardSampler(20, seed=0))[:20] == indices[:20]  # the first pass is one pass's order
    assert list(ShardSampler(300, seed=0, min_images=256)) == list(ShardSampler(300, seed=0))


def test_a_repeated_pass_draws_new_augmentation(prepared_demo):
    ds = VOCSegmentation(prepared_demo, "trainaug", train=True, crop_size=64, elastic=10.0)
    first, again = ds[3], ds[3 + len(ds)]
    assert not torch.equal(first[0], again[0])
    assert torch.equal(ds[3][0], first[0])  # and the draws stay a function of the index


def test_pixel_report_gives_each_class_share_and_warns_about_an_absent_class_and_void(tmp_path):
    root = binary_layout(tmp_path, count=3, values=(0, 1), classes="background\ncell\nnucleus\n")
    layout = describe(root)
    counts = PixelCounts(np.array([[60, 20, 0], [40, 20, 0]]), np.array([120, 140]))
    line, *warnings = pixel_report(layout, counts, "train")
    assert line == "train pixels: background 25.0%, cell 10.0%, nucleus 0.0%, void 65.0%"
    assert "class 'nucleus' is in no train mask" in warnings[0] and "value 2" in warnings[0]
    assert "65% of the train pixels are void (255)" in warnings[1]
    assert pixel_report(layout, PixelCounts(np.array([[60, 20, 5]]), np.array([0])), "train")[1:] == []


def test_masks_of_one_class_only_are_refused(tmp_path):
    layout = describe(binary_layout(tmp_path, count=3, values=(0, 1), classes="background\ncell\n"))
    with pytest.raises(UserError, match=r"train masks in .* hold only class \['background'\]"):
        check_masks(layout, PixelCounts(np.array([[60, 0]]), np.array([3])), "train")
    check_masks(layout, PixelCounts(np.array([[60, 1]]), np.array([3])), "train")  # two classes: fine


def test_a_photo_with_exif_orientation_is_read_upright_like_its_mask(tmp_path):

    root = binary_layout(tmp_path, count=3, values=(0, 1), classes="background\ncell\n")
    upright = np.array(Image.open(root / "images/s01.png").convert("RGB"))  # 48 high, 64 wide
    (root / "images/s01.png").unlink()
    turned_jpeg(root / "images/s01.jpg", upright)
    ds = VOCSegmentation(root, "train", train=False)
    index = ds.ids.index("s01")
    image, mask = ds[index]
    assert image.shape == (3, 48, 64) and ds.image_sizes()[index] == (48, 64)
    assert ((image[0] > 120).numpy() == (mask.numpy() == 1)).mean() > 0.98
    train = VOCSegmentation(root, "train", train=True, crop_size=32)
    assert train[index][0].shape == (3, 32, 32)


def test_a_mask_drawn_on_the_stored_pixels_of_a_turned_photo_names_exif(tmp_path):

    root = binary_layout(tmp_path, count=3, values=(0, 1), classes="background\ncell\n")
    upright = np.array(Image.open(root / "images/s01.png").convert("RGB"))
    (root / "images/s01.png").unlink()
    turned_jpeg(root / "images/s01.jpg", upright)
    Image.fromarray(np.rot90(np.array(Image.open(root / "masks/s01.png")))).save(root / "masks/s01.png")
    with pytest.raises(
        UserError, match=r"s01\.png is 64x48 but image .*s01\.jpg is 48x64 upright \(its EXIF"
    ):
        VOCSegmentation(root, "train", train=False).scan_masks()


def test_a_resumed_epoch_gives_the_rest_of_the_same_order():
    sampler = ShardSampler(40, seed=3, min_images=100)
    sampler.set_epoch(5)
    whole = list(sampler)
    sampler.set_epoch(5, skip=24)
    assert list(sampler) == whole[24:] and len(whole) == 120
