"""Small copies of public segmentation releases in their own on-disk forms (folder and file names,
extensions, palettes, bit depths and the junk files they ship), for the tests of layouts/.

Each builder returns (the folder a user passes as --data_dir, {id: the class indices the release means})
so that tests can check the masks pixel for pixel.
"""

from pathlib import Path

import numpy as np
from PIL import Image

SIZE = (48, 64)  # height, width


def blob_sample(rng: np.random.Generator, size=SIZE) -> tuple[np.ndarray, np.ndarray]:
    """An RGB photograph HxWx3 with bright discs, and the boolean HxW mask of the discs."""
    height, width = size
    yy, xx = np.ogrid[:height, :width]
    blobs = np.zeros(size, dtype=bool)
    for _ in range(2):
        y, x = rng.integers(8, height - 8), rng.integers(8, width - 8)
        blobs |= (yy - y) ** 2 + (xx - x) ** 2 < rng.integers(20, 70)
    image = np.where(blobs[..., None], [200, 120, 90], [60, 40, 30]) + rng.integers(0, 25, (*size, 3))
    return image.astype(np.uint8), blobs


def junk(folder: Path, *names: str) -> None:
    """Files a download carries beside the data: macOS's ._ twins, licences, readmes."""
    for name in names:
        (folder / name).write_bytes(b"\x00\x05\x16\x07 not an image")


def kvasir_seg(root: Path, count: int = 12, seed: int = 0, nested: bool = True):
    """Kaggle's Kvasir-SEG/Kvasir-SEG/: images/<id>.jpg, masks/<id>.jpg (JPEG, 3 equal channels, white =
    polyp), kavsir_bboxes.json."""
    rng = np.random.default_rng(seed)
    data = root / "Kvasir-SEG" / "Kvasir-SEG" if nested else root
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    (data / "kavsir_bboxes.json").write_text("{}")
    truth = {}
    for k in range(count):
        image, blobs = blob_sample(rng)
        image_id = f"cju{k:04d}qz8b2x0abc"
        Image.fromarray(image).save(data / "images" / f"{image_id}.jpg", quality=90)
        grey = np.where(blobs, 255, 0).astype(np.uint8)
        Image.fromarray(np.dstack([grey] * 3)).save(data / "masks" / f"{image_id}.jpg", quality=75)
        truth[image_id] = blobs.astype(np.uint8)
    return root / "Kvasir-SEG", truth


def isic_2018(root: Path, counts=(("Training", 10), ("Validation", 3)), seed: int = 1):
    """ISIC2018_Task1-2_<Split>_Input/ISIC_<n>.jpg (+ LICENSE.txt, ATTRIBUTION.txt) and
    ISIC2018_Task1_<Split>_GroundTruth/ISIC_<n>_segmentation.png (0/255, + LICENSE.txt)."""
    rng = np.random.default_rng(seed)
    truth, number = {}, 0
    for split, count in counts:
        inputs, gt = root / f"ISIC2018_Task1-2_{split}_Input", root / f"ISIC2018_Task1_{split}_GroundTruth"
        inputs.mkdir(parents=True)
        gt.mkdir()
        junk(inputs, "LICENSE.txt", "ATTRIBUTION.txt")
        junk(gt, "LICENSE.txt")
        for _ in range(count):
            image, blobs = blob_sample(rng)
            image_id = f"ISIC_{number:07d}"
            number += 1
            Image.fromarray(image).save(inputs / f"{image_id}.jpg", quality=90)
            Image.fromarray(np.where(blobs, 255, 0).astype(np.uint8)).save(
                gt / f"{image_id}_segmentation.png"
            )
            truth[image_id] = blobs.astype(np.uint8)
    return root, truth


def binary_gif(mask: np.ndarray, path: Path) -> None:
    """A GIF of palette indices 0/1 behind a black/white palette, as Carvana's train_masks are."""
    gif = Image.fromarray(mask.astype(np.uint8), mode="P")
    gif.putpalette([0, 0, 0, 255, 255, 255])
    gif.save(path)


def carvana(root: Path, cars: int = 4, views: int = 3, seed: int = 2):
    """train/<car>_<view>.jpg + train_masks/<car>_<view>_mask.gif (0/1), train_masks.csv, metadata.csv."""
    rng = np.random.default_rng(seed)
    (root / "train").mkdir(parents=True)
    (root / "train_masks").mkdir()
    junk(root, "train_masks.csv", "metadata.csv")
    truth = {}
    for car in range(cars):
        for view in range(1, views + 1):
            image, blobs = blob_sample(rng)
            image_id = f"0cdf5b5d0c{car:02d}_{view:02d}"
            Image.fromarray(image).save(root / "train" / f"{image_id}.jpg", quality=90)
            binary_gif(blobs, root / "train_masks" / f"{image_id}_mask.gif")
            truth[image_id] = blobs.astype(np.uint8)
    return root, truth


def milesial(root: Path, count: int = 12, tag: str = "_mask", seed: int = 3):
    """milesial/Pytorch-UNet's data/imgs/<id>.jpg + data/masks/<id><tag>.gif (palette 0/1)."""
    rng = np.random.default_rng(seed)
    data = root / "data"
    (data / "imgs").mkdir(parents=True)
    (data / "masks").mkdir()
    truth = {}
    for k in range(count):
        image, blobs = blob_sample(rng)
        Image.fromarray(image).save(data / "imgs" / f"car{k:02d}.jpg", quality=90)
        binary_gif(blobs, data / "masks" / f"car{k:02d}{tag}.gif")
        truth[f"car{k:02d}"] = blobs.astype(np.uint8)
    return data, truth


def oxford_pet(root: Path, trainval: int = 10, test: int = 3, seed: int = 4):
    """images/<Breed>_<n>.jpg (+ stray .mat files, ._ twins), annotations/trimaps/<name>.png (1 pet,
    2 background, 3 border; ._ twins), annotations/{trainval,test,list}.txt, annotations/xmls/."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "annotations" / "trimaps").mkdir(parents=True)
    (root / "annotations" / "xmls").mkdir()
    junk(root / "images", "Abyssinian_100.mat", "._Abyssinian_1.jpg")
    truth, rows = {}, []
    for k in range(trainval + test):
        image, blobs = blob_sample(rng)
        name = f"{'Abyssinian' if k % 2 else 'basset_hound'}_{k + 1}"
        border = blobs ^ np.pad(blobs[1:-1, 1:-1] & blobs[2:, 1:-1] & blobs[:-2, 1:-1], 1)
        trimap = np.where(border, 3, np.where(blobs, 1, 2)).astype(np.uint8)
        Image.fromarray(image).save(root / "images" / f"{name}.jpg", quality=90)
        Image.fromarray(trimap).save(root / "annotations" / "trimaps" / f"{name}.png")
        junk(root / "annotations" / "trimaps", f"._{name}.png")
        truth[name] = np.where(border, 255, blobs).astype(np.uint8)
        rows.append(f"{name} {k % 37 + 1} {k % 2 + 1} {k % 12 + 1}")
    (root / "annotations" / "trainval.txt").write_text("\n".join(rows[:trainval]) + "\n")
    (root / "annotations" / "test.txt").write_text("\n".join(rows[trainval:]) + "\n")
    (root / "annotations" / "list.txt").write_text(
        "#Image CLASS-ID SPECIES BREED ID\n" + "\n".join(rows) + "\n"
    )
    return root, truth


def dsb_2018(root: Path, count: int = 12, seed: int = 5):
    """stage1_train/<id>/images/<id>.png (RGBA) + stage1_train/<id>/masks/<hash>.png, one 0/255 PNG per
    nucleus."""
    rng = np.random.default_rng(seed)
    truth = {}
    yy, xx = np.ogrid[: SIZE[0], : SIZE[1]]
    for k in range(count):
        image_id = f"{k:02d}ae8bb3d4a1e6f8a6b8b4b4b8b0d8c2d9e7e3b9c0f1a2b3c4d5e6f7a8b9c0d1e2"
        sample = root / "stage1_train" / image_id
        (sample / "images").mkdir(parents=True)
        (sample / "masks").mkdir()
        union = np.zeros(SIZE, dtype=bool)
        for n in range(int(rng.integers(3, 7))):
            y, x = rng.integers(5, SIZE[0] - 5), rng.integers(5, SIZE[1] - 5)
            nucleus = (yy - y) ** 2 + (xx - x) ** 2 < rng.integers(6, 20)
            union |= nucleus
            Image.fromarray(np.where(nucleus, 255, 0).astype(np.uint8)).save(
                sample / "masks" / f"{k:02d}{n:02d}f3.png"
            )
        grey = np.where(union, 180, 20) + rng.integers(0, 30, SIZE)
        rgba = np.dstack([grey, grey, grey, np.full(SIZE, 255)]).astype(np.uint8)
        Image.fromarray(rgba, mode="RGBA").save(sample / "images" / f"{image_id}.png")
        truth[image_id] = union.astype(np.uint8)
    return root, truth


def drive(root: Path, training=range(21, 29), test=range(1, 4), seed: int = 6):
    """DRIVE/{training,test}/images/<nn>_<split>.tif (RGB TIFF), 1st_manual/<nn>_manual1.gif (0/255) and
    mask/<nn>_<split>_mask.gif (the field of view: 255 inside); test/2nd_manual too."""
    rng = np.random.default_rng(seed)
    truth = {}
    yy, xx = np.ogrid[: SIZE[0], : SIZE[1]]
    fov = ((yy - SIZE[0] / 2) / (SIZE[0] / 2)) ** 2 + ((xx - SIZE[1] / 2) / (SIZE[1] / 2)) ** 2 < 0.9
    for split, numbers in (("training", training), ("test", test)):
        base = root / "DRIVE" / split
        folders = ("images", "1st_manual", "mask") + (("2nd_manual",) if split == "test" else ())
        for folder in folders:
            (base / folder).mkdir(parents=True)
        for number in numbers:
            image, vessels = blob_sample(rng)
            nn = f"{number:02d}"
            Image.fromarray(image).save(base / "images" / f"{nn}_{split}.tif", compression="tiff_lzw")
            manual = Image.fromarray(np.where(vessels, 255, 0).astype(np.uint8), mode="L")
            manual.save(base / "1st_manual" / f"{nn}_manual1.gif")
            if split == "test":
                manual.save(base / "2nd_manual" / f"{nn}_manual2.gif")
            Image.fromarray(np.where(fov, 255, 0).astype(np.uint8), mode="L").save(
                base / "mask" / f"{nn}_{split}_mask.gif"
            )
            truth[f"{nn}_{split}"] = np.where(fov, vessels, 255).astype(np.uint8)
    return root, truth


CITYSCAPES_IDS = (0, 1, 4, 7, 8, 11, 21, 23, 24, 26, 33)  # label ids drawn: void ones and evaluation ones


def cityscapes(root: Path, cities=(("train", "aachen", 6), ("train", "bochum", 4), ("val", "frankfurt", 3)),
               seed: int = 7):  # fmt: skip
    """leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png + gtFine/<split>/<city>/<stem>_gtFine_labelIds.png
    (with the _color.png, _instanceIds.png and _polygons.json beside them); license.txt, README."""
    from layouts.cityscapes import CLASSES

    rng = np.random.default_rng(seed)
    train_id = {label: k for k, (label, _, _) in enumerate(CLASSES)}
    root.mkdir(parents=True, exist_ok=True)
    junk(root, "license.txt", "README")
    truth = {}
    for split, city, count in cities:
        left, gt = root / "leftImg8bit" / split / city, root / "gtFine" / split / city
        left.mkdir(parents=True)
        gt.mkdir(parents=True)
        for k in range(count):
            stem = f"{city}_{k:06d}_000019"
            labels = np.array(CITYSCAPES_IDS, dtype=np.uint8)[rng.integers(0, len(CITYSCAPES_IDS), (6, 8))]
            labels = np.kron(labels, np.ones((8, 8), dtype=np.uint8))
            image = (labels[..., None] * np.array([7, 5, 3]) + rng.integers(0, 20, (*SIZE, 3))).astype(
                np.uint8
            )
            Image.fromarray(image).save(left / f"{stem}_leftImg8bit.png")
            Image.fromarray(labels).save(gt / f"{stem}_gtFine_labelIds.png")
            Image.fromarray(labels * 3).save(gt / f"{stem}_gtFine_instanceIds.png")
            Image.fromarray(image).save(gt / f"{stem}_gtFine_color.png")
            (gt / f"{stem}_gtFine_polygons.json").write_text("{}")
            truth[stem] = np.vectorize(lambda v: train_id.get(int(v), 255))(labels).astype(np.uint8)
    return root, truth


def ade20k(root: Path, counts=(("training", 10), ("validation", 3)), seed: int = 8):
    """ADEChallengeData2016/: images/<split>/ADE_<split>_<n>.jpg, annotations/<split>/<same>.png (0 =
    other, k = class k-1), objectInfo150.txt, sceneCategories.txt."""
    rng = np.random.default_rng(seed)
    data = root / "ADEChallengeData2016"
    rows = ["Idx\tRatio\tTrain\tVal\tName"] + [
        f"{k}\t0.01\t100\t10\tclass{k};other name" for k in range(1, 151)
    ]
    rows[1], rows[2] = "1\t0.1518\t19176\t1867\twall", "2\t0.1065\t16652\t1630\tbuilding;edifice"
    data.mkdir(parents=True)
    (data / "objectInfo150.txt").write_text("\n".join(rows) + "\n")
    (data / "sceneCategories.txt").write_text("ADE_train_00000001 airport_terminal\n")
    truth = {}
    for split, count in counts:
        (data / "images" / split).mkdir(parents=True)
        (data / "annotations" / split).mkdir(parents=True)
        for k in range(count):
            image_id = f"ADE_{'train' if split == 'training' else 'val'}_{k + 1:08d}"
            labels = np.kron(rng.choice([0, 1, 2, 3, 150], (6, 8)), np.ones((8, 8), dtype=np.int64)).astype(
                np.uint8
            )
            image = (labels[..., None] + rng.integers(0, 40, (*SIZE, 3))).astype(np.uint8)
            Image.fromarray(image).save(data / "images" / split / f"{image_id}.jpg", quality=90)
            Image.fromarray(labels).save(data / "annotations" / split / f"{image_id}.png")
            truth[image_id] = np.where(labels == 0, 255, labels.astype(np.int64) - 1).astype(np.uint8)
    return data, truth


def isbi_stacks(root: Path, slices: int = 12, seed: int = 9):
    """train-volume.tif (8-bit grey pages), train-labels.tif (0 membrane / 255 cell), test-volume.tif."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    volume, labels, truth = [], [], {}
    for k in range(slices):
        image, cells = blob_sample(rng)
        volume.append(Image.fromarray(image[..., 0]))
        labels.append(Image.fromarray(np.where(cells, 255, 0).astype(np.uint8)))
        truth[f"slice_{k:02d}"] = cells.astype(np.uint8)
    for name, pages in (
        ("train-volume.tif", volume),
        ("train-labels.tif", labels),
        ("test-volume.tif", volume),
    ):
        pages[0].save(root / name, save_all=True, append_images=pages[1:])
    return root, truth


def busi(root: Path, per_class: int = 6, seed: int = 10):
    """Dataset_BUSI_with_GT/<class>/<class> (<n>).png beside <class> (<n>)_mask.png (0/255), and for one
    image a second lesion as <class> (<n>)_mask_1.png."""
    rng = np.random.default_rng(seed)
    truth = {}
    for name in ("benign", "malignant"):
        folder = root / "Dataset_BUSI_with_GT" / name
        folder.mkdir(parents=True)
        for n in range(1, per_class + 1):
            image, blobs = blob_sample(rng)
            Image.fromarray(image[..., 0]).convert("RGB").save(folder / f"{name} ({n}).png")
            Image.fromarray(np.where(blobs, 255, 0).astype(np.uint8)).save(folder / f"{name} ({n})_mask.png")
            if n == 1:
                second = np.zeros(SIZE, dtype=bool)
                second[2:6, 2:10] = True
                Image.fromarray(np.where(second, 255, 0).astype(np.uint8)).save(
                    folder / f"{name} ({n})_mask_1.png"
                )
                blobs = blobs | second
            truth[f"{name}/{name} ({n})"] = blobs.astype(np.uint8)
    return root / "Dataset_BUSI_with_GT", truth


def loveda(
    root: Path, counts=(("Train", "Urban", 5), ("Train", "Rural", 5), ("Val", "Urban", 3)), seed: int = 11
):
    """<Split>/<Domain>/images_png/<n>.png + masks_png/<n>.png (0 no-data, 1-7 the classes), and Test/
    images without masks."""
    rng = np.random.default_rng(seed)
    truth, number = {}, 1366
    for split, domain, count in (*counts, ("Test", "Urban", 2)):
        images = root / split / domain / "images_png"
        images.mkdir(parents=True)
        if split != "Test":
            (images.parent / "masks_png").mkdir()
        for _ in range(count):
            labels = np.kron(rng.integers(0, 8, (6, 8)), np.ones((8, 8), np.int64)).astype(np.uint8)
            Image.fromarray((labels[..., None] * 30 + rng.integers(0, 20, (*SIZE, 3))).astype(np.uint8)).save(
                images / f"{number}.png"
            )
            if split != "Test":
                Image.fromarray(labels).save(images.parent / "masks_png" / f"{number}.png")
                truth[str(number)] = np.where(labels == 0, 255, labels.astype(np.int64) - 1).astype(np.uint8)
            number += 1
    return root, truth
