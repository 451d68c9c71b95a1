"""Images as stored: their channels and bit depth, read the same way for training, validation,
tools/predict.py and the TensorBoard panel, and the normalisation the model sees.

    fmt = image_format(paths)              # from the training images: channels, dtype, normalisation
    pixels = read_image(path, fmt)         # H x W x C array in fmt.dtype, upright
    inputs = fmt.normalize(images)         # N x C x H x W integers (or floats) -> normalised float32

8-bit RGB (photographs: VOC, CamVid, DRIVE, Kvasir) keeps the ImageNet mean and standard deviation.
Every other kind (grayscale, 16-bit, float, N bands) is normalised per channel from the training images,
as nnU-Net does: values clipped to their 0.5th and 99.5th percentiles, then the clipped values' mean and
standard deviation. PIL reads what it can; TIFFs that PIL cannot represent (multi-band, 16-bit colour,
float) are read with tifffile, the reader of the microscopy and remote-sensing tools.
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from layouts import exif_orientation, upright_size
from utils import IMAGENET_MEAN, IMAGENET_STD, UserError, reading

PERCENTILES = (0.5, 99.5)  # the clipping of measured normalisation
STAT_IMAGES = 64  # training images sampled for the statistics
STAT_PIXELS = 20_000  # pixels sampled per image
PIL_MODES = {  # PIL mode -> (channels, dtype) as read; alpha is a 4th channel dropped unless kept
    "1": (1, "uint8"), "L": (1, "uint8"), "P": (3, "uint8"), "LA": (1, "uint8"), "RGB": (3, "uint8"),
    "RGBA": (3, "uint8"), "CMYK": (3, "uint8"), "YCbCr": (3, "uint8"), "I;16": (1, "uint16"),
    "I;16L": (1, "uint16"), "I;16B": (1, "uint16"), "I": (1, "float32"), "F": (1, "float32"),
}  # fmt: skip
DTYPES = {"uint8": torch.uint8, "uint16": torch.uint16, "float32": torch.float32}


@dataclass(frozen=True)
class ImageFormat:
    """What the model takes: channels, the dtype workers hand over, and the per-channel normalisation:
    clip to [low, high], subtract mean * unit, divide by std * unit (8-bit RGB: ImageNet's figures, whose
    unit is 255; measured ones are in the image's own values)."""

    channels: int = 3
    dtype: str = "uint8"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    unit: float = 255.0  # mean and std are in units of this many of the image's values
    low: tuple[float, ...] | None = None  # None: no clipping (8-bit RGB)
    high: tuple[float, ...] | None = None
    keep_alpha: bool = False
    rule: str = "8-bit RGB, ImageNet mean and std"
    size: int = 0  # > 0: the network sees every image resized to size x size (--resize), 0: as stored

    @property
    def is_rgb8(self) -> bool:
        return self.channels == 3 and self.dtype == "uint8" and self.low is None

    def as_dict(self) -> dict:
        """Plain values, for checkpoints and exported models."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, table: dict | None) -> ImageFormat:
        """The format a checkpoint stores (8-bit RGB for checkpoints written before they stored one)."""
        if not table:
            return cls()
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in table.items()})

    def normalize(
        self, images: torch.Tensor, device: torch.device, channels_last: bool = False
    ) -> torch.Tensor:
        """Images N x C x H x W as workers hand them -> normalised float32 on `device`."""
        images = normalized(images.to(device, non_blocking=True), *statistics_on(self, torch.device(device)))
        return images.contiguous(memory_format=torch.channels_last) if channels_last else images


def normalized(
    images: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    low: torch.Tensor | None = None,
    high: torch.Tensor | None = None,
) -> torch.Tensor:
    """Images N x C x H x W (any dtype) -> float32, clipped to [low, high] per channel when given, then
    (x - mean) / std: the one normalisation of training, validation, prediction and exported models."""
    images = images.float()
    if low is not None:
        images = torch.maximum(torch.minimum(images, high), low)
    return (images - mean) / std


@functools.cache
def statistics_on(fmt: ImageFormat, device: torch.device) -> tuple[torch.Tensor, ...]:
    """mean, std, low, high as 1 x C x 1 x 1 tensors on `device` (low, high None without clipping); made
    once, not copied every step."""

    def column(values: tuple[float, ...] | None, unit: float = 1.0) -> torch.Tensor | None:
        if values is None:
            return None
        tensor = torch.tensor(values, device=device).view(1, -1, 1, 1)
        return tensor * unit if unit != 1 else tensor

    return column(fmt.mean, fmt.unit), column(fmt.std, fmt.unit), column(fmt.low), column(fmt.high)


# Reading


def stored_kind(path: Path) -> tuple[int, str, bool]:
    """(channels, dtype, has alpha) of an image file, from its header."""
    if path.suffix.lower() in (".tif", ".tiff"):
        kind = tiff_kind(path)
        if kind is not None:
            return kind
    with reading(path, "image"), Image.open(path) as image:
        channels, dtype = PIL_MODES.get(image.mode, (3, "uint8"))
        return channels, dtype, image.mode in ("RGBA", "LA", "PA")


def tiff_kind(path: Path) -> tuple[int, str, bool] | None:
    """(channels, dtype, False) of a TIFF that PIL cannot represent (more than 4 bands, 16-bit or float
    colour, float grayscale), from tifffile's reading of its header; None for one PIL reads."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            shape, dtype = page.shape, np.dtype(page.dtype)
            planar = page.planarconfig == tifffile.PLANARCONFIG.SEPARATE
    except (tifffile.TiffFileError, OSError, ValueError, IndexError):
        return None
    channels = 1 if len(shape) == 2 else shape[0] if planar else shape[-1]
    if (dtype == np.uint8 and channels in (1, 3) and not planar) or (dtype == np.uint16 and channels == 1):
        return None  # PIL reads these, with every compression
    return channels, "float32" if dtype.kind == "f" or dtype.itemsize > 2 else str(dtype), False


def read_stored(path: Path, keep_alpha: bool = False) -> np.ndarray:
    """An image file -> H x W x C array as stored (uint8, uint16 or float32), upright (EXIF applied),
    alpha dropped unless keep_alpha; UserError naming the file when it cannot be read."""
    if path.suffix.lower() in (".tif", ".tiff") and tiff_kind(path) is not None:
        return read_tiff(path)
    with reading(path, "image"), Image.open(path) as image:
        if exif_orientation(image) != 1:
            image = ImageOps.exif_transpose(image)
        mode = image.mode
        if mode in ("P", "CMYK", "YCbCr") or (mode == "RGBA" and not keep_alpha):
            image = image.convert("RGB")
        elif mode in ("LA", "1") and not (mode == "LA" and keep_alpha):
            image = image.convert("L")
        pixels = np.array(image)
    if mode == "I":
        pixels = pixels.astype(np.float32)
    return pixels[..., None] if pixels.ndim == 2 else pixels


def read_tiff(path: Path) -> np.ndarray:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            pixels = page.asarray()
            planar = page.planarconfig == tifffile.PLANARCONFIG.SEPARATE
    except ValueError as error:  # a compression that needs the imagecodecs package
        raise UserError(f"cannot read image {path}: {error} (pip install imagecodecs)") from None
    except (tifffile.TiffFileError, OSError) as error:
        raise UserError(f"cannot read image {path}: {error}") from None
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    elif planar:
        pixels = np.moveaxis(pixels, 0, -1)
    if pixels.dtype.kind == "f" or pixels.dtype.itemsize > 2:
        pixels = pixels.astype(np.float32)
    return np.ascontiguousarray(pixels)


def read_image(path: Path, fmt: ImageFormat) -> np.ndarray:
    """An image file -> H x W x fmt.channels array in fmt.dtype: a grayscale image of a colour set has
    its grey copied into each channel; any other channel count is a UserError naming both."""
    pixels = read_stored(path, fmt.keep_alpha)
    if pixels.shape[-1] != fmt.channels:
        if pixels.shape[-1] != 1:
            raise UserError(
                f"image {path} has {pixels.shape[-1]} channels but the model takes {fmt.channels} "
                f"({fmt.rule}): give it images of {fmt.channels} channels"
            )
        pixels = np.repeat(pixels, fmt.channels, axis=-1)
    return pixels.astype(fmt.dtype, copy=False)


def to_rgb(image: Image.Image) -> Image.Image:
    """Any image PIL reads -> 8-bit RGB: 16-bit grayscale scaled to 8 bits, alpha dropped."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L"):  # 16-bit PNG or TIFF: PIL has no 16-bit RGB
        pixels = np.asarray(image, dtype=np.float64) / 257
        image = Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), mode="L")
    return image.convert("RGB")


def read_pixels(path: Path, fmt: ImageFormat) -> np.ndarray:
    """An image file as the model of `fmt` takes it, H x W x C: 8-bit RGB through PIL as training reads
    it (grayscale copied into three channels, 16-bit scaled to 8 bits), any other format by read_image."""
    if not fmt.is_rgb8:
        return read_image(path, fmt)
    with reading(path, "image"), Image.open(path) as image:
        return np.asarray(to_rgb(ImageOps.exif_transpose(image)))


def check_channels(path: Path, fmt: ImageFormat, source: str) -> None:
    """UserError naming both counts when the image at `path` has channels the model of `fmt` (from
    `source`, a checkpoint) cannot take; a grayscale image is taken by any model."""
    channels, _, alpha = stored_kind(path)
    channels += alpha and fmt.keep_alpha
    if channels not in (1, fmt.channels):
        raise UserError(
            f"image {path} has {channels} channels but {source} takes {fmt.channels} ({fmt.rule}): give it "
            f"images of {fmt.channels} channels, or a checkpoint trained on images like this one"
        )


# The format of a data set


def image_format(paths: list[Path], keep_alpha: bool = False, threads: int = 8) -> ImageFormat:
    """The format of the training images: the most channels any has (a grayscale image in a colour set
    is copied into each channel), the widest dtype; 8-bit RGB keeps ImageNet's normalisation, every
    other kind is measured from up to STAT_IMAGES of the images."""
    with ThreadPoolExecutor(threads) as pool:
        kinds = list(pool.map(stored_kind, paths))
    if not kinds:
        return ImageFormat()
    alpha = keep_alpha and any(has_alpha for _, _, has_alpha in kinds)
    channels = max(c for c, _, _ in kinds) + alpha
    dtype = max((d for _, d, _ in kinds), key=list(DTYPES).index)
    grey = sum(c == 1 for c, _, _ in kinds) if channels > 1 else 0
    mixed = f"; {grey} grayscale image(s) copied into each channel" if grey else ""
    if channels == 3 and dtype == "uint8" and not alpha:
        return ImageFormat(rule=f"8-bit RGB, ImageNet mean and std{mixed}")
    shape = ImageFormat(channels=channels, dtype=dtype, keep_alpha=alpha)
    low, high, mean, std = measured_statistics(paths, shape)
    depth = {"uint8": "8-bit", "uint16": "16-bit", "float32": "float"}[dtype]
    rule = (
        f"{channels} channel(s), {depth}{mixed}; per channel clipped to the training images' "
        f"{PERCENTILES[0]}-{PERCENTILES[1]} percentiles, then their mean and std"
    )
    return ImageFormat(channels, dtype, mean, std, 1.0, low, high, alpha, rule)


def measured_statistics(paths: list[Path], fmt: ImageFormat) -> tuple[tuple[float, ...], ...]:
    """(low, high, mean, std) per channel from a sample of the images' pixels (the images chosen evenly
    over the sorted list, the pixels at random with a fixed seed, so the figures are reproducible)."""
    rng = np.random.default_rng(0)
    chosen = sorted(paths)[:: max(1, len(paths) // STAT_IMAGES)][:STAT_IMAGES]
    samples = []
    for path in chosen:
        pixels = read_image(path, fmt).reshape(-1, fmt.channels)
        take = rng.choice(len(pixels), size=min(STAT_PIXELS, len(pixels)), replace=False)
        samples.append(pixels[take].astype(np.float64))
    pooled = np.concatenate(samples)
    low, high = np.percentile(pooled, PERCENTILES, axis=0)
    clipped = np.clip(pooled, low, high)
    std = np.maximum(clipped.std(0), 1e-6)  # a constant channel: no division by zero

    def rounded(values: np.ndarray) -> tuple[float, ...]:
        return tuple(float(v) for v in values)

    return rounded(low), rounded(high), rounded(clipped.mean(0)), rounded(std)


def display(pixels: np.ndarray, fmt: ImageFormat) -> np.ndarray:
    """An image as read (H x W x C) -> H x W x 3 uint8 for a person: 8-bit RGB as it is; otherwise the
    first three channels as red, green and blue (fewer than three: the first as grey), each stretched
    from its clipping range [low, high] to 0-255."""
    if fmt.is_rgb8:
        return pixels
    bands = [0, 1, 2] if fmt.channels >= 3 else [0, 0, 0]
    low, high = np.array(fmt.low)[bands], np.array(fmt.high)[bands]
    scaled = (pixels[..., bands].astype(np.float64) - low) / np.maximum(high - low, 1e-6)
    return np.clip(np.rint(scaled * 255), 0, 255).astype(np.uint8)


def stored_size(path: Path) -> tuple[int, int]:
    """(height, width) of an image file, upright, from its header."""
    if path.suffix.lower() in (".tif", ".tiff") and tiff_kind(path) is not None:
        import tifffile

        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            planar = page.planarconfig == tifffile.PLANARCONFIG.SEPARATE
            shape = page.shape[1:3] if planar and len(page.shape) == 3 else page.shape[:2]
            return int(shape[0]), int(shape[1])
    with reading(path, "image"), Image.open(path) as image:
        width, height = upright_size(image)
        return height, width
