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


# Releases that no format lists: paired by name (layouts/paired.py).


def save_binary(mask: np.ndarray, path: Path, high: int = 255, rgb: bool = False) -> None:
    """A bool mask as a 0/high grey file (or three equal channels with rgb), in the format of its suffix."""
    grey = np.where(mask, high, 0).astype(np.uint8)
    Image.fromarray(np.dstack([grey] * 3) if rgb else grey).save(path)


def disc(size=SIZE, fraction: float = 0.45) -> np.ndarray:
    """A centred disc, as a fundus camera's field of view."""
    yy, xx = np.ogrid[: size[0], : size[1]]
    return (yy - size[0] / 2) ** 2 + (xx - size[1] / 2) ** 2 < (fraction * size[1]) ** 2


def chase_db1(root: Path, count: int = 6, seed: int = 12, annotator: int = 1):
    """CHASE_DB1 as unpacked: one folder of Image_<nn><L|R>.jpg, Image_<nn><L|R>_1stHO.png and _2ndHO.png
    (two annotators; the second differs by a few pixels). The truth is `annotator`'s."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    truth = {}
    for k in range(count):
        name = f"Image_{k // 2 + 1:02d}{'LR'[k % 2]}"
        image, blobs = blob_sample(rng)
        Image.fromarray(image).save(root / f"{name}.jpg", quality=95)
        other = blobs.copy()
        other[rng.integers(0, SIZE[0], 6), rng.integers(0, SIZE[1], 6)] ^= True
        save_binary(blobs, root / f"{name}_1stHO.png")
        save_binary(other, root / f"{name}_2ndHO.png")
        truth[name] = (blobs if annotator == 1 else other).astype(np.uint8)
    return root, truth


def stare(root: Path, count: int = 6, seed: int = 13):
    """STARE: stare-images/im<nnnn>.ppm, labels-ah/im<nnnn>.ah.ppm and labels-vk/im<nnnn>.vk.ppm (two
    annotators, 0/255 stored as three equal channels)."""
    rng = np.random.default_rng(seed)
    for folder in ("stare-images", "labels-ah", "labels-vk"):
        (root / folder).mkdir(parents=True)
    truth = {}
    for k in range(1, count + 1):
        name = f"im{k:04d}"
        image, blobs = blob_sample(rng)
        Image.fromarray(image).save(root / "stare-images" / f"{name}.ppm")
        other = blobs.copy()
        other[:2] = False
        save_binary(blobs, root / "labels-ah" / f"{name}.ah.ppm", rgb=True)
        save_binary(other, root / "labels-vk" / f"{name}.vk.ppm", rgb=True)
        truth[f"stare-images/{name}"] = blobs.astype(np.uint8)
    return root, truth


def hrf(root: Path, seed: int = 14):
    """HRF: images/<nn>_<dr|g|h>.JPG/.jpg, manual1/<nn>_<x>.tif (vessels 0/255), mask/<nn>_<x>_mask.tif
    (the field of view, the same disc in every image)."""
    rng = np.random.default_rng(seed)
    for folder in ("images", "manual1", "mask"):
        (root / folder).mkdir(parents=True)
    truth = {}
    for n in range(1, 4):
        for kind, suffix in (("dr", ".JPG"), ("g", ".jpg"), ("h", ".jpg")):
            name = f"{n:02d}_{kind}"
            image, blobs = blob_sample(rng)
            Image.fromarray(image).save(root / "images" / f"{name}{suffix}", quality=95)
            vessels = blobs & disc()
            save_binary(vessels, root / "manual1" / f"{name}.tif")
            save_binary(disc(), root / "mask" / f"{name}_mask.tif")
            truth[f"images/{name}"] = vessels.astype(np.uint8)
    return root, truth


def montgomery(root: Path, count: int = 6, seed: int = 15):
    """Montgomery County chest X-rays: CXR_png/MCUCXR_<nnnn>_<0|1>.png (grey), ManualMask/leftMask/ and
    ManualMask/rightMask/ of the same names (0/255, the two lungs), ClinicalReadings/*.txt, a PDF."""
    rng = np.random.default_rng(seed)
    for folder in ("CXR_png", "ManualMask/leftMask", "ManualMask/rightMask", "ClinicalReadings"):
        (root / folder).mkdir(parents=True)
    (root / "NLM-MontgomeryCXRSet-ReadMe.pdf").write_bytes(b"%PDF-1.4 not an image")
    truth = {}
    yy, xx = np.ogrid[: SIZE[0], : SIZE[1]]
    for k in range(count):
        name = f"MCUCXR_{k + 1:04d}_{k % 2}"
        width = int(rng.integers(6, 10))
        left = (np.abs(xx - 18) < width) & (np.abs(yy - 24) < 16)
        right = (np.abs(xx - 46) < width) & (np.abs(yy - 24) < 16)
        grey = np.where(left | right, 60, 170) + rng.integers(0, 60, SIZE)
        Image.fromarray(grey.astype(np.uint8)).save(root / "CXR_png" / f"{name}.png")
        save_binary(left, root / "ManualMask" / "leftMask" / f"{name}.png")
        save_binary(right, root / "ManualMask" / "rightMask" / f"{name}.png")
        (root / "ClinicalReadings" / f"{name}.txt").write_text("Patient's Sex: F\n")
        truth[f"CXR_png/{name}"] = (left * 1 + right * 2).astype(np.uint8)
    return root, truth


def deepglobe_road(root: Path, train: int = 8, unlabelled: int = 3, seed: int = 16):
    """DeepGlobe Road: train/<id>_sat.jpg + train/<id>_mask.png (0/255 in three equal channels); valid/ and
    test/ hold <id>_sat.jpg only; metadata.csv."""
    rng = np.random.default_rng(seed)
    truth = {}
    for split, count in (("train", train), ("valid", unlabelled), ("test", unlabelled)):
        (root / split).mkdir(parents=True)
        for _ in range(count):
            image_id = str(rng.integers(100, 999999))
            image, blobs = blob_sample(rng)
            Image.fromarray(image).save(root / split / f"{image_id}_sat.jpg", quality=95)
            if split == "train":
                save_binary(blobs, root / split / f"{image_id}_mask.png", rgb=True)
                truth[f"train/{image_id}_sat"] = blobs.astype(np.uint8)
    (root / "metadata.csv").write_text("image_id,split,sat_image_path,mask_path\n")
    return root, truth


CAMVID_COLORS = {"Sky": (128, 128, 128), "Road": (128, 64, 128), "Car": (64, 0, 128), "Void": (0, 0, 0)}


def camvid_cambridge(root: Path, count: int = 6, seed: int = 17, table: bool = True):
    """CamVid as Cambridge released it: 701_StillsRaw_full/<name>.png, LabeledApproved_full/<name>_L.png
    (RGB, one colour per class), label_colors.txt (`r g b\\tName` lines; Void = void)."""
    rng = np.random.default_rng(seed)
    (root / "701_StillsRaw_full").mkdir(parents=True)
    (root / "LabeledApproved_full").mkdir()
    if table:
        lines = [f"{r} {g} {b}\t{name}" for name, (r, g, b) in CAMVID_COLORS.items()]
        (root / "label_colors.txt").write_text("\n".join(lines) + "\n")
    palette = np.array(list(CAMVID_COLORS.values()), np.uint8)
    truth = {}
    for k in range(count):
        name = f"0001TP_{6690 + 30 * k:06d}"
        labels = np.kron(rng.integers(0, 4, (6, 8)), np.ones((8, 8), np.int64))
        image = (labels[..., None] * 50 + rng.integers(0, 30, (*SIZE, 3))).astype(np.uint8)
        Image.fromarray(image).save(root / "701_StillsRaw_full" / f"{name}.png")
        Image.fromarray(palette[labels]).save(root / "LabeledApproved_full" / f"{name}_L.png")
        truth[f"701_StillsRaw_full/{name}"] = np.where(labels == 3, 255, labels).astype(np.uint8)
    return root, truth


def glas(root: Path, count: int = 8, seed: int = 18):
    """GlaS (gland histology): one folder of train_<n>.bmp and train_<n>_anno.bmp, whose values are each
    image's gland ids 0..k (k varying), and Grade.csv."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    (root / "Grade.csv").write_text("name,patient ID,grade (GlaS),grade (Sirinukunwattana et al. 2015)\n")
    truth = {}
    for n in range(1, count + 1):
        image, _ = blob_sample(rng)
        ids = np.zeros(SIZE, np.uint8)
        for gland in range(1, 2 + n):  # 2 .. count + 1 glands
            y, x = (gland * 7) % 40 + 2, (gland * 13) % 56 + 2
            ids[y : y + 5, x : x + 5] = gland
        Image.fromarray(image).save(root / f"train_{n}.bmp")
        Image.fromarray(ids).save(root / f"train_{n}_anno.bmp")
        truth[f"train_{n}"] = (ids > 0).astype(np.uint8)
    return root, truth


def ph2(root: Path, count: int = 6, seed: int = 19):
    """PH2 dermoscopy: PH2 Dataset images/IMD<nnn>/IMD<nnn>_Dermoscopic_Image/IMD<nnn>.bmp,
    .../IMD<nnn>_lesion/IMD<nnn>_lesion.bmp (0/255), for some a .../IMD<nnn>_roi/ of colour regions; the
    spreadsheet and text list beside them."""
    rng = np.random.default_rng(seed)
    data = root / "PH2Dataset" / "PH2 Dataset images"
    data.mkdir(parents=True)
    (root / "PH2Dataset" / "PH2_dataset.txt").write_text("|| Name || Histological Diagnosis ||\n")
    (root / "PH2Dataset" / "PH2_dataset.xlsx").write_bytes(b"PK\x03\x04 not an image")
    truth = {}
    for k in range(count):
        name = f"IMD{k * 7 + 2:03d}"
        (data / name / f"{name}_Dermoscopic_Image").mkdir(parents=True)
        (data / name / f"{name}_lesion").mkdir()
        image, blobs = blob_sample(rng)
        Image.fromarray(image).save(data / name / f"{name}_Dermoscopic_Image" / f"{name}.bmp")
        save_binary(blobs, data / name / f"{name}_lesion" / f"{name}_lesion.bmp")
        if k % 3 == 0:
            (data / name / f"{name}_roi").mkdir()
            save_binary(
                blobs & (rng.random(SIZE) < 0.5), data / name / f"{name}_roi" / f"{name}_R1_Label4.bmp"
            )
        truth[f"PH2 Dataset images/{name}/{name}_Dermoscopic_Image/{name}"] = blobs.astype(np.uint8)
    return root / "PH2Dataset", truth


def isic_2017(root: Path, count: int = 6, seed: int = 20):
    """ISIC 2017 part 1: ISIC-2017_Training_Data/ISIC_<n>.jpg beside ISIC_<n>_superpixels.png (derived,
    thousands of colours), ISIC-2017_Training_Part1_GroundTruth/ISIC_<n>_segmentation.png (0/255)."""
    rng = np.random.default_rng(seed)
    images, truth_dir = root / "ISIC-2017_Training_Data", root / "ISIC-2017_Training_Part1_GroundTruth"
    images.mkdir(parents=True)
    truth_dir.mkdir()
    (images / "ISIC-2017_Training_Data_metadata.csv").write_text("image_id,age_approximate,sex\n")
    truth = {}
    for k in range(count):
        name = f"ISIC_{k:07d}"
        image, blobs = blob_sample(rng)
        Image.fromarray(image).save(images / f"{name}.jpg", quality=95)
        codes = rng.integers(0, 2**24, SIZE)
        superpixels = np.dstack([codes >> 16 & 255, codes >> 8 & 255, codes & 255]).astype(np.uint8)
        Image.fromarray(superpixels).save(images / f"{name}_superpixels.png")
        save_binary(blobs, truth_dir / f"{name}_segmentation.png")
        truth[f"ISIC-2017_Training_Data/{name}"] = blobs.astype(np.uint8)
    return root, truth


def colour_masks(root: Path, count: int = 8, seed: int = 21, mask_folder: str = "labels"):
    """An aerial set of images/<n>.png and labels/<n>.png whose labels are RGB colours with no table:
    black background, blue water, red building (classes in the order of the colours' values)."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / mask_folder).mkdir()
    palette = np.array([(0, 0, 0), (0, 0, 255), (255, 0, 0)], np.uint8)
    truth = {}
    for k in range(count):
        labels = np.kron(rng.integers(0, 3, (6, 8)), np.ones((8, 8), np.int64))
        image = (labels[..., None] * 70 + rng.integers(0, 30, (*SIZE, 3))).astype(np.uint8)
        Image.fromarray(image).save(root / "images" / f"tile_{k}.png")
        Image.fromarray(palette[labels]).save(root / mask_folder / f"tile_{k}.png")
        truth[f"images/tile_{k}"] = labels.astype(np.uint8)
    return root, truth
