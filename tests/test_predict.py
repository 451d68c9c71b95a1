import numpy as np
import pytest
import torch
from PIL import Image

from layouts import VOC_PALETTE
from model import UNet
from tests.helpers import run_script, turned_jpeg


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A checkpoint as main.py writes it, of an untrained 4-channel U-Net."""
    torch.manual_seed(0)
    model = UNet(base_channels=4)
    path = tmp_path_factory.mktemp("ckpt") / "best.pth"
    torch.save(
        {
            "model": model.state_dict(),
            "model_config": {"in_channels": 3, "num_classes": 21, "base_channels": 4},
        },
        path,
    )
    return path


def write_image(path, size, mode="RGB", seed=0):
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path)
    return path


def predict(checkpoint, source, output, *extra):
    return run_script(
        "tools/predict.py", "--checkpoint", str(checkpoint), "--input", str(source), "--output", str(output),
        *extra,
    )  # fmt: skip


def assert_class_png(path, size):
    with Image.open(path) as mask:
        assert mask.mode == "P" and mask.size == size
        assert mask.getpalette()[: 3 * 21] == VOC_PALETTE[:21].ravel().tolist()
        assert np.array(mask).max() < 21


@pytest.mark.slow
def test_single_odd_sized_rgb_image(tmp_path, checkpoint):
    image = write_image(tmp_path / "photo.jpg", (97, 131))
    result = predict(checkpoint, image, tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert_class_png(tmp_path / "out/photo.png", (97, 131))
    assert not (tmp_path / "out/photo_overlay.png").exists()


@pytest.mark.slow
def test_folder_of_rgb_and_grayscale_images_with_overlays(tmp_path, checkpoint):
    folder = tmp_path / "in"
    folder.mkdir()
    sizes = {"a.jpg": (33, 250), "b.png": (60, 41), "c.png": (60, 41), "d.jpg": (17, 19)}
    for k, (name, size) in enumerate(sizes.items()):
        write_image(folder / name, size, mode="L" if name == "b.png" else "RGB", seed=k)
    (folder / "notes.txt").write_text("not an image")
    result = predict(checkpoint, folder, tmp_path / "out", *"--overlay --batch_size 2".split())
    assert result.returncode == 0, result.stderr
    for name, size in sizes.items():
        stem = name.split(".")[0]
        assert_class_png(tmp_path / f"out/{stem}.png", size)
        with Image.open(tmp_path / f"out/{stem}_overlay.png") as overlay:
            assert overlay.mode == "RGB" and overlay.size == size
    assert "wrote 4 prediction(s)" in result.stdout


@pytest.mark.slow
def test_batched_and_single_predictions_agree(tmp_path, checkpoint):
    folder = tmp_path / "in"
    folder.mkdir()
    for k in range(3):
        write_image(folder / f"{k}.png", (40, 30), seed=k)
    assert predict(checkpoint, folder, tmp_path / "batched", "--batch_size", "3").returncode == 0
    assert predict(checkpoint, folder, tmp_path / "single", "--batch_size", "1").returncode == 0
    for k in range(3):
        a, b = (np.array(Image.open(tmp_path / d / f"{k}.png")) for d in ("batched", "single"))
        assert (a == b).mean() > 0.99  # BatchNorm in eval mode: only float summation order may differ


@pytest.mark.slow
def test_unreadable_image_is_reported_and_the_others_written(tmp_path, checkpoint):
    folder = tmp_path / "in"
    folder.mkdir()
    write_image(folder / "good.jpg", (50, 40))
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    result = predict(checkpoint, folder, tmp_path / "out")
    assert result.returncode == 1
    assert str(folder / "broken.jpg") in result.stderr and "Traceback" not in result.stderr
    assert (tmp_path / "out/good.png").is_file() and not (tmp_path / "out/broken.png").exists()


@pytest.mark.slow
def test_missing_input_exits_2(tmp_path, checkpoint):
    result = predict(checkpoint, tmp_path / "nowhere", tmp_path / "out")
    assert result.returncode == 2 and "nowhere" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_checkpoint_of_the_wrong_kind_exits_2(tmp_path):
    bad = tmp_path / "model.pth"
    torch.save({"weights": torch.zeros(3)}, bad)
    result = predict(bad, write_image(tmp_path / "a.jpg", (20, 20)), tmp_path / "out")
    assert result.returncode == 2 and str(bad) in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_never_overwrites_an_input(tmp_path, checkpoint):
    image = write_image(tmp_path / "a.png", (20, 20))
    before = image.read_bytes()
    result = predict(checkpoint, tmp_path, tmp_path)
    assert result.returncode == 2 and "overwrite" in result.stderr
    assert image.read_bytes() == before


@pytest.mark.slow
def test_large_image_in_tiles_with_tta_keeps_its_size(tmp_path, checkpoint):
    image = write_image(tmp_path / "wide.png", (301, 157))
    result = predict(checkpoint, image, tmp_path / "out", *"--tile 128 --tta --tta_scales 0.5 1".split())
    assert result.returncode == 0, result.stderr
    assert_class_png(tmp_path / "out/wide.png", (301, 157))


@pytest.mark.slow
def test_a_photo_with_exif_orientation_is_predicted_upright(checkpoint, tmp_path):
    upright = np.random.default_rng(1).integers(0, 256, (40, 72, 3), dtype=np.uint8)  # 72 wide, 40 high
    turned_jpeg(tmp_path / "phone.jpg", upright)
    assert predict(checkpoint, tmp_path / "phone.jpg", tmp_path / "out", "--overlay").returncode == 0
    assert Image.open(tmp_path / "out/phone.png").size == (72, 40)
    assert Image.open(tmp_path / "out/phone_overlay.png").size == (72, 40)


def test_masks_are_written_in_the_data_sets_values():
    from tools.predict import mask_image

    classes = np.array([[0, 1], [1, 0]], dtype=np.uint8)
    colors = VOC_PALETTE[:2]
    binary = mask_image(classes, colors, (0, 255))
    assert binary.mode == "L" and np.array(binary).tolist() == [[0, 255], [255, 0]]
    wide = mask_image(classes, colors, (0, 65535))
    assert np.array(wide).tolist() == [[0, 65535], [65535, 0]]
    indexed = mask_image(classes, colors, (0, 1))
    assert indexed.mode == "P" and np.array(indexed).tolist() == classes.tolist()
    assert indexed.getpalette()[:6] == VOC_PALETTE[:2].ravel().tolist()
