"""Whole-image inference: tiles with blended logits, bands of rows, test-time augmentation."""

import pytest
import torch
import torch.nn.functional as F

from images import ImageFormat
from inference import (
    InferenceOptions,
    augmented_logits,
    band_logits,
    predict_classes,
    shift_up,
    window_starts,
)
from main import parse_args
from model import UNet, fused_for_inference

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return fused_for_inference(UNet(base_channels=8, num_classes=5))


def random_images(count, height, width, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (count, 3, height, width), dtype=torch.uint8, generator=generator)


def whole_logits(model, images, tile):
    return torch.cat(
        [logits for _, _, logits in band_logits(model, images, CPU, InferenceOptions(tile=tile))], -2
    )


def test_windows_cover_the_length_with_the_last_flush():
    assert window_starts(100, 128, 96) == [0]
    assert window_starts(700, 256, 192) == [0, 192, 384, 444]


@pytest.mark.parametrize("rows", [1, 3, 5, 7, 10])
def test_shifting_rows_up_in_place_keeps_the_lower_rows_and_zeros_the_rest(rows):
    buffer = torch.arange(2 * 10 * 4, dtype=torch.float32).view(2, 10, 4) + 1  # rows on axis -2
    expected = torch.cat([buffer[:, rows:], torch.zeros(2, rows, 4)], 1)
    shift_up(buffer, rows)
    assert torch.equal(buffer, expected)
    weights = torch.arange(10.0)[:, None].repeat(1, 3)  # 2-D: rows on axis 0
    shift_up(weights, rows)
    column = torch.cat([torch.arange(float(rows), 10.0), torch.zeros(rows)])
    assert torch.equal(weights, column[:, None].repeat(1, 3))


def test_small_images_come_back_whole_in_one_band(model):
    bands = list(band_logits(model, random_images(2, 40, 56), CPU, InferenceOptions(tile=64)))
    assert [(top, bottom) for top, bottom, _ in bands] == [(0, 40)]
    assert bands[0][2].shape == (2, 5, 40, 56)


def test_bands_of_a_tiled_image_cover_every_row_once(model):
    bands = [
        (top, bottom, logits.shape)
        for top, bottom, logits in band_logits(
            model, random_images(1, 150, 90), CPU, InferenceOptions(tile=64)
        )
    ]
    assert bands[0][0] == 0 and bands[-1][1] == 150
    assert all(a[1] == b[0] for a, b in zip(bands, bands[1:], strict=False))
    assert all(shape == (1, 5, bottom - top, 90) for top, bottom, shape in bands)


def test_tiles_agree_with_the_whole_image_away_from_tile_borders(model):
    images, tile = random_images(1, 400, 700), 256
    whole = whole_logits(model, images, tile=4096)[0]
    tiled = whole_logits(model, images, tile=tile)[0]  # each band a tensor of its own: no copies needed

    def far_from_inner_edges(length, distance=128):  # the 8-channel U-Net sees about 100 px around
        starts = window_starts(length, tile, tile - tile // 4)
        edges = {s for s in starts if s > 0} | {s + tile for s in starts if s + tile < length}
        position = torch.arange(length)
        return torch.stack([(position - e).abs() >= distance for e in edges]).all(0)

    keep = far_from_inner_edges(400)[:, None] & far_from_inner_edges(700)[None, :]
    assert keep.sum() > 1000
    torch.testing.assert_close(tiled[:, keep], whole[:, keep], atol=1e-4, rtol=1e-4)
    assert (tiled.argmax(0) == whole.argmax(0)).float().mean() > 0.9  # borders blend, not break


def test_tta_without_flips_or_scales_is_the_plain_prediction(model):
    x = torch.randn(2, 3, 37, 50)
    torch.testing.assert_close(augmented_logits(model, x), model(x))


def test_flip_tta_is_mirror_symmetric(model):
    x = torch.randn(1, 3, 48, 61)
    mirrored = augmented_logits(model, x.flip(-1), flip=True, scales=(0.75, 1.0)).flip(-1)
    torch.testing.assert_close(mirrored, augmented_logits(model, x, flip=True, scales=(0.75, 1.0)))


def test_scaled_tta_returns_logits_of_the_input_size(model):
    classes = predict_classes(
        model, random_images(1, 45, 67), CPU, InferenceOptions(scales=(0.5, 1.0, 1.5), flip=True)
    )
    assert classes.shape == (1, 45, 67) and classes.dtype == torch.uint8 and classes.max() < 5


def test_tta_is_for_eval_only():
    assert parse_args("--eval_only --resume x.pth --tta --tta_scales 1 1.5".split()).tta_scales == [1.0, 1.5]
    with pytest.raises(SystemExit):
        parse_args(["--tta"])


def test_a_resize_format_predicts_the_whole_image_at_its_size_and_resizes_the_logits_back(model):
    images = random_images(1, 1500, 40)  # taller than a tile: still one band, never tiled
    fmt = ImageFormat(size=32)
    bands = list(band_logits(model, images, CPU, InferenceOptions(tile=64), fmt))
    assert [(top, bottom) for top, bottom, _ in bands] == [(0, 1500)]
    small = F.interpolate(fmt.normalize(images, CPU), size=(32, 32), mode="bilinear", antialias=True)
    expected = F.interpolate(model(small), size=(1500, 40), mode="bilinear", align_corners=False)
    torch.testing.assert_close(bands[0][2], expected, atol=1e-5, rtol=0)


def test_resize_takes_a_side_of_16_or_more():
    assert parse_args(["--resize", "256"]).resize == 256
    with pytest.raises(SystemExit):
        parse_args(["--resize", "8"])
