"""Whole-image prediction, shared by validation (main.py) and tools/predict.py, so both give the same
classes: any image size at bounded memory (overlapping tiles with blended logits above --tile), and
test-time augmentation (horizontal flip, scales).

    options = InferenceOptions(amp_dtype=torch.bfloat16, tile=1024)   # or inference_options(args, ...)
    for top, bottom, logits in band_logits(model, images, device, options):  # images: N x C x H x W
        classes[:, top:bottom] = logits.argmax(1)                           # logits: N x K x rows x W
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from dataset import normalize
from images import ImageFormat
from utils import autocast

TILE = 1024  # images up to TILE x TILE are predicted whole; larger ones in overlapping tiles
TTA_SCALES = (0.75, 1.0, 1.25)  # --tta's default scales, each also flipped horizontally


@dataclass(frozen=True)
class InferenceOptions:
    """How images are predicted: the same for validation, --eval_only and tools/predict.py."""

    amp_dtype: torch.dtype | None = None  # None: float32
    channels_last: bool = False
    tile: int = TILE  # larger images are predicted in overlapping tiles of this side
    scales: tuple[float, ...] = (1.0,)  # test-time augmentation: the mean logits over these scales ...
    flip: bool = False  # ... and their horizontal mirrors


PLAIN = InferenceOptions()  # one prediction per image, float32


def augmented_logits(
    model: torch.nn.Module,
    images: torch.Tensor,
    amp_dtype: torch.dtype | None = None,
    scales: tuple[float, ...] = (1.0,),
    flip: bool = False,
) -> torch.Tensor:
    """Normalised images N x C x H x W -> float32 logits N x C x H x W: the mean of the model's logits
    over `scales` (bilinear, resized back to H x W) and, with `flip`, their horizontal mirrors."""
    height, width = images.shape[-2:]
    total, count = None, 0
    for scale in scales:
        scaled = images
        if scale != 1:
            size = (max(1, round(height * scale)), max(1, round(width * scale)))
            scaled = F.interpolate(images, size=size, mode="bilinear", align_corners=False)
        for mirrored in (False, True) if flip else (False,):
            with autocast(images.device, amp_dtype):
                logits = model(scaled.flip(-1) if mirrored else scaled).float()
            if mirrored:
                logits = logits.flip(-1)
            if scale != 1:
                logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
            total = logits if total is None else total + logits
            count += 1
    return total / count if count > 1 else total


def tile_size(text: str) -> int:
    """--tile's type: a side of at least 64 pixels (windows overlap by a quarter of it)."""
    if not text.isdigit() or int(text) < 64:
        raise argparse.ArgumentTypeError(f"--tile must be a whole number of pixels >= 64, got {text}")
    return int(text)


def add_inference_flags(parser: argparse.ArgumentParser) -> None:
    """--tile, --tta and --tta_scales, the same for main.py --eval_only and tools/predict.py."""
    parser.add_argument(
        "--tile",
        type=tile_size,
        default=TILE,
        help="predict images larger than TILE x TILE in overlapping tiles, at bounded memory",
    )
    parser.add_argument(
        "--tta", action="store_true", help="test-time augmentation: mean logits over flips and --tta_scales"
    )
    parser.add_argument(
        "--tta_scales",
        type=float,
        nargs="+",
        default=TTA_SCALES,
        metavar="SCALE",
        help="image scales of --tta, each also flipped",
    )


def inference_options(
    args: argparse.Namespace, amp_dtype: torch.dtype | None, channels_last: bool
) -> InferenceOptions:
    """The options of the flags of add_inference_flags, for main.py and tools/predict.py."""
    tta = {"scales": tuple(args.tta_scales), "flip": True} if args.tta else {}
    return InferenceOptions(amp_dtype=amp_dtype, channels_last=channels_last, tile=args.tile, **tta)


def window_starts(length: int, tile: int, stride: int) -> list[int]:
    """Start offsets of windows of `tile` that cover range(length), `stride` apart, the last flush."""
    if length <= tile:
        return [0]
    return [*range(0, length - tile, stride), length - tile]


def blend_weights(length: int, overlap: int) -> torch.Tensor:
    """1-D weights of a tile's pixels: rising linearly over `overlap` pixels at each end, 1 inside."""
    position = torch.arange(length, dtype=torch.float32)
    return ((torch.minimum(position, length - 1 - position) + 1) / (overlap + 1)).clamp(max=1)


@torch.no_grad()
def band_logits(
    model: torch.nn.Module,
    images: torch.Tensor,
    device: torch.device,
    options: InferenceOptions = PLAIN,
    image_format: ImageFormat | None = None,
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Images N x C x H x W as workers hand them (8-bit RGB unless image_format says otherwise) ->
    (top, bottom, float32 logits N x K x (bottom - top) x W) for consecutive bands of rows that cover
    the images.

    Images up to options.tile on each side come back whole, in one band, as do images of a format with a
    size (--resize): resized to it (antialiased bilinear), predicted, their logits resized back. Larger
    ones are predicted in tile x tile windows overlapping by tile / 4, whose logits are blended with
    weights that fall off towards each window's edges; a band of rows is given out as soon as no later
    window reaches it, so memory holds one row of windows, never the logits of the whole image. Pass the
    model in eval mode (fused_for_inference)."""

    def predict(window: torch.Tensor) -> torch.Tensor:
        inputs = normalize(window, device, options.channels_last, image_format)
        return augmented_logits(model, inputs, options.amp_dtype, options.scales, options.flip)

    height, width = images.shape[-2:]
    if image_format is not None and image_format.size:  # --resize: the whole image at size x size
        side = (image_format.size, image_format.size)
        inputs = F.interpolate(
            normalize(images, device, False, image_format), size=side, mode="bilinear", antialias=True
        )
        inputs = inputs.contiguous(memory_format=torch.channels_last) if options.channels_last else inputs
        logits = augmented_logits(model, inputs, options.amp_dtype, options.scales, options.flip)
        yield 0, height, F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
    elif height <= options.tile and width <= options.tile:
        yield 0, height, predict(images)
    else:
        yield from tiled_bands(predict, images, options.tile, device)


def tiled_bands(
    predict: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, tile: int, device: torch.device
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """band_logits of an image larger than tile x tile: each band a new tensor of at most tile / 8 rows
    (bands of a whole row of windows would double the memory that the row's sums take)."""
    height, width = images.shape[-2:]
    overlap = tile // 4
    rows, cols = window_starts(height, tile, tile - overlap), window_starts(width, tile, tile - overlap)
    tile_h, tile_w = min(tile, height), min(tile, width)
    weights = (blend_weights(tile_h, overlap)[:, None] * blend_weights(tile_w, overlap)).to(device)
    summed = weight_sum = None  # rows top .. top + tile_h of the weighted logits and their weights
    top = 0
    for y in rows:
        if y > top:  # rows above y are complete: no later window reaches them
            yield from finished_bands(summed, weight_sum, top, y, max(1, tile // 8))
            shift_up(summed, y - top)
            shift_up(weight_sum, y - top)
            top = y
        for x in cols:
            logits = predict(images[..., y : y + tile_h, x : x + tile_w])
            if summed is None:
                summed = logits.new_zeros(*logits.shape[:2], tile_h, width)
                weight_sum = weights.new_zeros(tile_h, width)
            summed[..., x : x + tile_w].addcmul_(logits, weights)
            weight_sum[:, x : x + tile_w] += weights
            del logits
    yield from finished_bands(summed, weight_sum, top, height, max(1, tile // 8))


def finished_bands(
    summed: torch.Tensor, weight_sum: torch.Tensor, top: int, bottom: int, rows: int
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Rows top .. bottom of the weighted sums (held from row `top` on) as blended logits, `rows` at a
    time, each a new tensor."""
    for start in range(top, bottom, rows):
        end = min(start + rows, bottom)
        yield start, end, summed[..., start - top : end - top, :] / weight_sum[start - top : end - top]


def shift_up(buffer: torch.Tensor, rows: int) -> None:
    """Move the rows of `buffer` (rows on its second-to-last axis, or its first for 2-D) `rows` up in
    place, zeros below: copied in chunks of at most `rows` rows, so no chunk overlaps its source and no
    copy of the buffer is made."""
    axis = buffer.ndim - 2
    length = buffer.shape[axis]
    for start in range(0, length - rows, rows):
        end = min(start + rows, length - rows)
        buffer.narrow(axis, start, end - start).copy_(buffer.narrow(axis, start + rows, end - start))
    buffer.narrow(axis, max(0, length - rows), min(rows, length)).zero_()


def predict_classes(
    model: torch.nn.Module,
    images: torch.Tensor,
    device: torch.device,
    options: InferenceOptions = PLAIN,
    image_format: ImageFormat | None = None,
) -> torch.Tensor:
    """Images N x C x H x W -> class indices N x H x W (uint8, on the CPU), as band_logits predicts them."""
    classes = torch.empty(images.shape[0], *images.shape[-2:], dtype=torch.uint8)
    for top, bottom, logits in band_logits(model, images, device, options, image_format):
        classes[:, top:bottom] = logits.argmax(1).to(torch.uint8).cpu()
    return classes
