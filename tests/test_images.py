"""Images as stored: channels and bit depth kept, per-channel normalisation from the training images,
and a 16-bit, a 4-band and a float set that train, evaluate, predict and export with only --data_dir."""

import json

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from dataset import SegmentationDataset, resized_region
from images import ImageFormat, display, image_format, read_image, read_stored
from layouts import describe
from tests.helpers import (
    assert_user_error,
    binary_layout,
    last_json,
    main_command,
    run_script,
    scientific_layout,
)


def test_a_16_bit_png_keeps_its_values(tmp_path):
    signal = np.arange(48 * 64, dtype=np.uint16).reshape(48, 64) * 13
    Image.fromarray(signal).save(tmp_path / "a.png")
    pixels = read_stored(tmp_path / "a.png")
    assert pixels.dtype == np.uint16 and pixels.shape == (48, 64, 1)
    np.testing.assert_array_equal(pixels[..., 0], signal)


@pytest.mark.parametrize("planar", [False, True])
def test_a_4_band_tiff_is_read_with_its_bands_whatever_their_order_on_disk(tmp_path, planar):
    bands = np.random.default_rng(0).integers(0, 65535, (32, 40, 4)).astype(np.uint16)
    data = np.moveaxis(bands, -1, 0) if planar else bands
    config = "separate" if planar else "contig"
    tifffile.imwrite(tmp_path / "a.tif", data, photometric="minisblack", planarconfig=config)
    np.testing.assert_array_equal(read_stored(tmp_path / "a.tif"), bands)


def test_a_float_tiff_stays_float(tmp_path):
    values = np.linspace(-1, 1, 48 * 64, dtype=np.float32).reshape(48, 64)
    tifffile.imwrite(tmp_path / "a.tif", values)
    pixels = read_stored(tmp_path / "a.tif")
    assert pixels.dtype == np.float32
    np.testing.assert_array_equal(pixels[..., 0], values)


def test_a_16_bit_set_is_one_channel_normalised_by_its_percentiles(tmp_path):
    root = scientific_layout(tmp_path, "grey16")
    fmt = image_format(sorted((root / "images").iterdir()))
    assert (fmt.channels, fmt.dtype) == (1, "uint16") and "16-bit" in fmt.rule
    assert 400 <= fmt.low[0] < 700 and 3000 < fmt.high[0] <= 3300  # the signal's range, not 0-65535
    pixels = np.stack([read_image(p, fmt) for p in sorted((root / "images").iterdir())])
    normalised = fmt.normalize(torch.from_numpy(pixels).permute(0, 3, 1, 2), torch.device("cpu"))
    clipped = np.clip(pixels, fmt.low[0], fmt.high[0])
    assert normalised.mean().item() == pytest.approx(0.0, abs=0.1)
    assert normalised.std().item() == pytest.approx(1.0, abs=0.1)
    np.testing.assert_allclose(
        normalised.permute(0, 2, 3, 1).numpy(), (clipped - fmt.mean[0]) / fmt.std[0], rtol=1e-5
    )


def test_8_bit_rgb_keeps_the_imagenet_normalisation(tmp_path):
    root = binary_layout(tmp_path)
    for path in (root / "images").iterdir():
        Image.open(path).convert("RGB").save(path)
    assert image_format(sorted((root / "images").iterdir())) == ImageFormat()


def test_a_set_mixing_grey_and_colour_is_colour_and_says_so(tmp_path):
    root = binary_layout(tmp_path)
    paths = sorted((root / "images").iterdir())
    Image.open(paths[0]).convert("RGB").save(paths[0])
    fmt = image_format(paths)
    assert fmt.channels == 3 and "11 grayscale image(s) copied into each channel" in fmt.rule
    grey = read_image(paths[1], fmt)
    assert grey.shape[-1] == 3 and (grey[..., 0] == grey[..., 2]).all()


def test_alpha_is_dropped_unless_kept(tmp_path):
    rgba = np.dstack([np.full((8, 8, 3), 50, np.uint8), np.full((8, 8), 200, np.uint8)])
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    assert image_format([tmp_path / "a.png"]).channels == 3
    kept = image_format([tmp_path / "a.png"], keep_alpha=True)
    assert kept.channels == 4 and read_image(tmp_path / "a.png", kept)[0, 0].tolist() == [50, 50, 50, 200]


def test_the_array_resize_is_the_8_bit_resize(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (40, 50, 3)).astype(np.uint8)
    box = (3.5, 2.25, 41.0, 37.5)
    expected = np.asarray(Image.fromarray(rgb).resize((30, 27), Image.BILINEAR, box=box)).astype(int)
    assert np.abs(resized_region(rgb, (30, 27), box).astype(int) - expected).max() <= 1


def test_crops_of_a_16_bit_set_keep_its_dtype_and_range(tmp_path):
    root = scientific_layout(tmp_path, "grey16")
    fmt = image_format(sorted((root / "images").iterdir()))
    train = SegmentationDataset(
        describe(root), train=True, crop_size=32, image_format=fmt, elastic=5, rot90=True
    )
    image, mask = train[0]
    assert image.dtype == torch.uint16 and image.shape == (1, 32, 32) and mask.shape == (32, 32)
    assert image.numpy().max() > 255  # the 12-bit counts (400 and more), not squeezed into 8 bits


def test_a_panel_shows_the_first_bands_stretched_to_8_bits(tmp_path):
    fmt = ImageFormat(4, "uint16", (0.0,) * 4, (1.0,) * 4, 1.0, (100.0,) * 4, (1100.0,) * 4, rule="4 bands")
    pixels = np.zeros((2, 2, 4), np.uint16) + np.array([100, 600, 1100, 5000], np.uint16)
    assert display(pixels, fmt)[0, 0].tolist() == [0, 128, 255]


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind, channels, dtype", [("grey16", 1, "uint16"), ("bands4", 4, "uint16"), ("float", 1, "float32")]
)
def test_a_scientific_set_trains_evaluates_predicts_and_exports_as_stored(tmp_path, kind, channels, dtype):
    data = scientific_layout(tmp_path / "data", kind)
    trained = run_script(*main_command(data, tmp_path, "--epochs", "1", "--batch_size", "2"))
    assert trained.returncode == 0, trained.stderr
    assert f"images: {channels} channel(s)" in trained.stdout
    checkpoint = tmp_path / "exp" / "run" / "last.pth"
    state = torch.load(checkpoint, weights_only=True)
    assert state["model_config"]["in_channels"] == channels and state["image"]["dtype"] == dtype
    evaluated = run_script("main.py", "--data_dir", str(data), "--resume", str(checkpoint), "--eval_only")
    assert evaluated.returncode == 0, evaluated.stderr
    assert 0.0 <= last_json(evaluated.stdout)["pixel_accuracy"] <= 1.0
    image = sorted((data / "images").iterdir())[0]
    predicted = run_script(
        "tools/predict.py", "--checkpoint", str(checkpoint), "--input", str(image), "--output",
        str(tmp_path / "out"), "--overlay",
    )  # fmt: skip
    assert predicted.returncode == 0, predicted.stderr
    assert set(np.unique(np.array(Image.open(tmp_path / "out" / f"{image.stem}.png")))) <= {0, 255}
    exported = run_script("tools/export.py", "--checkpoint", str(checkpoint), "--format", "pt2",
                          "--output", str(tmp_path / "model.pt2"))  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    files = {"classes.json": ""}
    program = torch.export.load(tmp_path / "model.pt2", extra_files=files)
    assert json.loads(json.loads(files["classes.json"])["input"])["channels"] == channels
    pixels = torch.from_numpy(read_stored(image)).permute(2, 0, 1)[None]
    graph = program.module()
    assert graph(pixels).shape == (1, 2, 48, 64)
    pytest.importorskip("matplotlib")
    from tools.figures import draw_predictions  # the README's figures of a run

    draw_predictions(checkpoint, str(data), tmp_path / "predictions.png", count=2)
    assert Image.open(tmp_path / "predictions.png").height > 100
    onnxruntime = pytest.importorskip("onnxruntime")
    exported = run_script(
        "tools/export.py", "--checkpoint", str(checkpoint), "--output", str(tmp_path / "m.onnx")
    )
    assert exported.returncode == 0, exported.stderr
    session = onnxruntime.InferenceSession(tmp_path / "m.onnx")
    given = json.loads(session.get_modelmeta().custom_metadata_map["input"])
    (logits,) = session.run(None, {"images": pixels.numpy().astype(given["dtype"])})
    np.testing.assert_allclose(logits, graph(pixels).detach().numpy(), atol=1e-3)


@pytest.mark.slow
def test_a_checkpoint_given_an_image_of_other_channels_names_both_counts(tmp_path):
    data = scientific_layout(tmp_path / "data", "grey16")
    assert run_script(*main_command(data, tmp_path, "--epochs", "1", "--batch_size", "2")).returncode == 0
    bands = np.zeros((20, 20, 4), np.uint16)
    tifffile.imwrite(tmp_path / "four.tif", bands, photometric="minisblack", planarconfig="contig")
    checkpoint = tmp_path / "exp" / "run" / "last.pth"
    predicted = run_script("tools/predict.py", "--checkpoint", str(checkpoint), "--input",
                           str(tmp_path / "four.tif"), "--output", str(tmp_path / "out"))  # fmt: skip
    assert_user_error(predicted, "four.tif has 4 channels but checkpoint", "takes 1")
