"""Segmentation datasets (any layout of layouts/), augmentation, samplers and loaders.

Workers return the images as stored (C x H x W in the data set's dtype: uint8, uint16 or float32; see
images.py) and masks (uint8 H x W, 255 = void); `to_device` turns a batch into normalised floats on the
device, so no worker does float work on 8-bit RGB (colour jitter runs in PIL's 8-bit code).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from PIL import Image, ImageEnhance, ImageOps
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision import tv_tensors

from images import ImageFormat, read_image, stored_size, to_rgb
from layouts import IGNORE_INDEX, DataLayout, describe, exif_orientation
from layouts.core import cached
from utils import UserError, reading


class PixelCounts(NamedTuple):
    """Pixels of each image (rows, in the data set's order): per class, and void."""

    classes: np.ndarray  # int64 images x num_classes
    void: np.ndarray  # int64 images


class SegmentationDataset(Dataset):
    """Images and masks of one split of any layout that `layouts.describe` recognises.

    train=True: random scale, crop_size x crop_size random crop (padded with image 0 / mask 255 where
    the scaled image is smaller), horizontal flip, and with color_jitter > 0 random brightness,
    contrast and saturation factors in [1 - color_jitter, 1 + color_jitter] (applied in that order to
    the image pixels of the crop, not its padding); then, each when asked for, the U-Net paper's
    augmentations of microscopy: vflip (vertical flip, p = 0.5), rot90 (a random multiple of 90 degrees)
    and elastic (see `elastic_deform`). Every draw depends on (seed, epoch, index) only; an index
    past len(self) is the same sample drawn again (a repeated pass of a small data set, new draws).
    train=False: the whole image and mask at their own size, as tools/predict.py predicts them.
    Items are (image C x H x W as stored: C the format's channels (1, 3 or N), dtype uint8, uint16 or
    float32, see images.py; mask uint8 H x W, 255 = void). split=None: the layout's training split
    ("trainaug" for VOC-aug, "train" otherwise) when train=True, else "val".
    """

    def __init__(
        self,
        data_dir: Path | str | DataLayout,
        split: str | None = None,
        train: bool = True,
        crop_size: int = 320,
        scale: tuple[float, float] = (0.5, 2.0),
        seed: int = 0,
        color_jitter: float = 0.0,
        vflip: bool = False,
        rot90: bool = False,
        elastic: float = 0.0,
        image_format: ImageFormat | None = None,
    ) -> None:
        self.layout = layout = data_dir if isinstance(data_dir, DataLayout) else describe(data_dir)
        self.format = image_format or ImageFormat()
        self.split = split or (layout.train_split if train else "val")
        self.ids = layout.split_ids(self.split)
        missing = [i for i in self.ids if i not in layout.images or i not in layout.masks]
        missing = missing or [
            p for i in self.ids for p in (layout.images[i], *layout.masks[i]) if not p.is_file()
        ]
        if missing:
            shown = ", ".join(str(p) for p in missing[:3])
            raise UserError(
                f"{len(missing)} file(s) of the {self.split} split are missing, e.g. {shown}: "
                f"{layout.missing_files}"
            )
        self.images = [layout.image_path(i) for i in self.ids]
        self.masks = [layout.mask_path(i) for i in self.ids]
        self.train = train
        self.crop_size = crop_size
        self.scale = scale
        self.seed = seed
        self.color_jitter = color_jitter
        self.vflip, self.rot90, self.elastic = vflip, rot90, elastic
        if color_jitter and not self.format.is_rgb8:
            raise UserError(f"--color_jitter needs 8-bit RGB images; these are {self.format.rule}: drop it")
        # Shared memory, so that persistent loader workers see set_epoch without being restarted.
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self._sizes: list[tuple[int, int]] | None = None  # image_sizes(), once read

    def set_epoch(self, epoch: int) -> None:
        self._epoch.fill_(epoch)

    def scan_masks(self, threads: int = 8) -> PixelCounts:
        """Read every mask once and count the pixels of each class, and of void, in each image. Cached
        (layouts.core.cached) while the images and masks are unchanged, so a second run starts at once.

        Raises the UserError of the first bad mask (unreadable, a value or colour outside the classes, a
        size other than its image's), so a run can stop before it has written anything."""
        files = [(image, *self.layout.mask_files(i)) for i, image in zip(self.ids, self.images, strict=True)]
        salt = repr(self.layout.class_table()) + self.layout.value_rule
        counts = cached("scan", files, lambda: self._count_pixels(threads), salt=salt)
        return PixelCounts(counts[:, :-1], counts[:, -1])

    def _count_pixels(self, threads: int) -> np.ndarray:
        """The pixel counts of scan_masks as one array, images x (classes, then void), from the files."""

        def count(index: int) -> np.ndarray:
            mask = self._checked_mask(index, stored_size(self.images[index]))
            counts = np.bincount(mask.ravel(), minlength=256)
            return np.append(counts[:classes], counts[IGNORE_INDEX])

        classes = self.layout.num_classes
        with ThreadPoolExecutor(threads) as pool:  # PNG decoding releases the GIL
            counts = list(pool.map(count, range(len(self))))
        return np.stack(counts) if counts else np.zeros((0, classes + 1), np.int64)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.train:
            rng = self._rng(index)
            image, mask = self._random_crop(image_of_draw(index, len(self)), index, rng)
            if rng.random() < 0.5:
                image, mask = image[:, ::-1], mask[:, ::-1]
            if self.vflip or self.rot90 or self.elastic:  # own stream: the draws above stay as they were
                return self._microscopy(image, mask, self._rng(index, 2))
        else:
            image, mask = self._whole(index)
        image = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        return image, torch.from_numpy(np.ascontiguousarray(mask))

    def _rng(self, index: int, *stream: int) -> np.random.Generator:
        """The random draws of one sample in this epoch: a function of (seed, epoch, index, *stream) only."""
        return np.random.default_rng([self.seed, int(self._epoch), index, *stream])

    def _open(self, index: int) -> tuple[Image.Image, np.ndarray]:
        """The image, upright (EXIF orientation applied, as labelling tools show it; still undecoded when
        it needs no turn), and the checked mask array of one sample (8-bit RGB sets)."""
        image_path = self.images[index]
        with reading(image_path, "image"):
            image = Image.open(image_path)
            if exif_orientation(image) != 1:
                image = ImageOps.exif_transpose(image)
        return image, self._checked_mask(index, (image.height, image.width))

    def _open_array(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The image as stored (H x W x C in the format's dtype) and its checked mask (other sets)."""
        pixels = read_image(self.images[index], self.format)
        return pixels, self._checked_mask(index, pixels.shape[:2])

    def _checked_mask(self, index: int, size: tuple[int, int]) -> np.ndarray:
        """The mask of one sample; UserError when its size is not its upright image's (height, width)."""
        mask = self.layout.read_mask(self.ids[index])
        if mask.shape != tuple(size):
            image_path, mask_path = self.images[index], self.masks[index]
            try:
                with Image.open(image_path) as image:
                    stored = image.size
            except OSError:  # a TIFF only tifffile reads: no EXIF turn
                stored = (size[1], size[0])
            turned = (
                f" upright (its EXIF orientation turns the stored {stored[1]}x{stored[0]} pixels, as "
                "labelling tools show it; draw the mask on the upright image)"
                if stored != (size[1], size[0])
                else ""
            )
            raise UserError(
                f"mask {mask_path} is {mask.shape[0]}x{mask.shape[1]} but image {image_path} is "
                f"{size[0]}x{size[1]}{turned}: {self.layout.fix}"
            )
        return mask

    def _microscopy(
        self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """vflip, rot90 and elastic deformation of a crop (HxWx3, HxW arrays) -> tensors as __getitem__'s."""
        if self.vflip and rng.random() < 0.5:
            image, mask = image[::-1], mask[::-1]
        if self.rot90:
            turns = int(rng.integers(4))
            image, mask = np.rot90(image, turns), np.rot90(mask, turns)
        image = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        mask = torch.from_numpy(np.ascontiguousarray(mask))
        if self.elastic:
            image, mask = elastic_deform(image, mask, self.elastic, rng)
        return image, mask

    def _random_crop(self, index: int, draw: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Scale by a random factor (of the format's size x size where it has one, --resize), then take a
        random crop_size window (padding where it overhangs);
        `draw` is the index the random streams belong to (index, or index + k * len(self) in pass k).

        Only the window's content is decoded-at-reduced-size and resized: the same pixels as resizing
        the whole image and cropping, at a fraction of the cost.
        """
        image, mask = self._open(index) if self.format.is_rgb8 else self._open_array(index)
        height, width = mask.shape
        crop = self.crop_size
        s = rng.uniform(*self.scale)
        base_w, base_h = (self.format.size, self.format.size) if self.format.size else (width, height)
        scaled_w, scaled_h = max(1, round(base_w * s)), max(1, round(base_h * s))
        sx, sy = scaled_w / width, scaled_h / height
        # Window top-left in scaled coordinates; negative where the scaled image is smaller than the crop.
        x0 = int(rng.integers(min(0, scaled_w - crop), max(0, scaled_w - crop) + 1))
        y0 = int(rng.integers(min(0, scaled_h - crop), max(0, scaled_h - crop) + 1))
        left, top = max(x0, 0), max(y0, 0)
        right, bottom = min(x0 + crop, scaled_w), min(y0 + crop, scaled_h)
        out_image = np.zeros((crop, crop, self.format.channels), dtype=self.format.dtype)
        out_mask = np.full((crop, crop), IGNORE_INDEX, dtype=np.uint8)

        size, box = (right - left, bottom - top), (left / sx, top / sy, right / sx, bottom / sy)
        if self.format.is_rgb8:
            region = self._rgb_region(index, image, (scaled_w, scaled_h), size, box, draw)
        else:
            region = resized_region(image, size, box)
        out_image[top - y0 : bottom - y0, left - x0 : right - x0] = region

        # Nearest neighbour at the same pixel centres as the image resize: never invents classes.
        rows = np.minimum(((np.arange(top, bottom) + 0.5) / sy).astype(np.int64), height - 1)
        cols = np.minimum(((np.arange(left, right) + 0.5) / sx).astype(np.int64), width - 1)
        out_mask[top - y0 : bottom - y0, left - x0 : right - x0] = mask[np.ix_(rows, cols)]
        return out_image, out_mask

    def _rgb_region(
        self,
        index: int,
        image: Image.Image,
        scaled: tuple[int, int],
        size: tuple[int, int],
        box: tuple,
        draw: int,
    ) -> np.ndarray:
        """The window `box` (in the image's pixels) of an 8-bit RGB image, resized to `size` through PIL
        (letting a JPEG decoder shrink by 2, 4 or 8 when it can), colour-jittered when asked for."""
        width, height = image.size
        image.draft("RGB", scaled)
        fx, fy = image.width / width, image.height / height  # 1, or the decoder's reduction
        box = (box[0] * fx, box[1] * fy, box[2] * fx, box[3] * fy)
        with reading(self.images[index], "image"):
            region = to_rgb(image).resize(size, Image.BILINEAR, box=box)
        if self.color_jitter > 0:  # its own stream, so that the crop and flip are those without jitter
            region = self._jitter(region, self._rng(draw, 1))
        return np.asarray(region)

    def _jitter(self, region: Image.Image, rng: np.random.Generator) -> Image.Image:
        """Brightness, contrast, saturation (torchvision ColorJitter's meanings), each by its own factor."""
        low, high = max(0.0, 1 - self.color_jitter), 1 + self.color_jitter
        for enhance in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
            region = enhance(region).enhance(rng.uniform(low, high))
        return region

    def _whole(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if not self.format.is_rgb8:
            return self._open_array(index)
        image, mask = self._open(index)
        with reading(self.images[index], "image"):
            return np.asarray(to_rgb(image)), mask

    def image_sizes(self, threads: int = 8) -> list[tuple[int, int]]:
        """(height, width) of every image, upright, from the file headers (read once: the validation
        batches and the --time plan both ask)."""
        if self._sizes is None:
            with ThreadPoolExecutor(threads) as pool:
                self._sizes = list(pool.map(stored_size, self.images))
        return self._sizes


def resized_region(pixels: np.ndarray, size: tuple[int, int], box: tuple) -> np.ndarray:
    """The window `box` (left, top, right, bottom in pixels) of an H x W x C array resized bilinearly to
    `size` (width, height), channel by channel in PIL's 32-bit float mode (the resampling of the 8-bit
    path, for any dtype and channel count), rounded back to the array's dtype."""
    channels = [
        np.asarray(
            Image.fromarray(pixels[..., c].astype(np.float32), mode="F").resize(size, Image.BILINEAR, box=box)
        )
        for c in range(pixels.shape[-1])
    ]
    region = np.stack(channels, axis=-1)
    if pixels.dtype.kind == "f":
        return region
    info = np.iinfo(pixels.dtype)
    return np.clip(np.rint(region), info.min, info.max).astype(pixels.dtype)


VOCSegmentation = SegmentationDataset  # the data set's name in the project's public interface


def check_masks(layout: DataLayout, counts: PixelCounts, split: str) -> None:
    """UserError when the masks of `split` hold one class only (nothing to learn; usually a value rule
    gone wrong)."""
    present = [name for name, n in zip(layout.class_names, counts.classes.sum(0), strict=True) if n > 0]
    if len(present) < 2:
        raise UserError(
            f"the {split} masks in {layout.root} hold only class {present or ['void']} "
            f"({layout.value_rule}): add masks of the other classes, or {layout.fix}"
        )


def pixel_report(layout: DataLayout, counts: PixelCounts, split: str) -> list[str]:
    """One line of each class's share of the pixels of `split` and the void share, then a warning line
    for each class no mask holds and for void above half of the pixels."""
    pixels = np.append(counts.classes.sum(0), counts.void.sum())
    total = max(1, int(pixels.sum()))
    names = layout.class_names
    line = f"{split} pixels: " + ", ".join(
        f"{name} {share:.1%}" for name, share in zip((*names, "void"), pixels / total, strict=True)
    )
    warnings = [
        f"warning: class '{name}' is in no {split} mask: check that the masks draw it with the value "
        f"{value} ({layout.value_rule})"
        for name, value, n in zip(names, layout.mask_values, pixels, strict=False)
        if n == 0
    ]
    if pixels[-1] > total / 2:
        warnings.append(
            f"warning: {pixels[-1] / total:.0%} of the {split} pixels are void ({IGNORE_INDEX}) and never "
            f"trained on: is {IGNORE_INDEX} a class in your masks? State it in {layout.root / 'classes.txt'} "
            "as `name = 255`"
        )
    return [line, *warnings]


def elastic_deform(
    image: torch.Tensor, mask: torch.Tensor, sigma: float, rng: np.random.Generator, grid: int = 3
) -> tuple[torch.Tensor, torch.Tensor]:
    """The U-Net paper's elastic deformation: random displacement vectors (standard deviation `sigma`
    pixels) on a coarse grid x grid lattice over the crop, interpolated bicubically to every pixel; the
    image (C x H x W, any dtype) resampled bicubically, the mask (HxW) by nearest neighbour. Pixels drawn
    from outside the crop become image 0 / mask void, like padding."""
    height, width = mask.shape
    coarse = torch.from_numpy(rng.normal(0.0, sigma, size=(1, 2, grid, grid))).float()
    pixels = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=True)[0]
    # torchvision's displacement is in grid_sample's units: the image spans 2 in each direction.
    displacement = torch.stack((pixels[0] * 2 / width, pixels[1] * 2 / height), dim=-1)[None]
    deformed = TF.elastic(image.float(), displacement, interpolation=TF.InterpolationMode.BICUBIC, fill=0.0)
    if not image.dtype.is_floating_point:  # bicubic overshoots: clamp to the dtype's range
        info = torch.iinfo(image.dtype)
        deformed = deformed.clamp_(info.min, info.max).round_()
    image = deformed.to(image.dtype)
    mask = TF.elastic(tv_tensors.Mask(mask[None]), displacement, fill=IGNORE_INDEX)[0]
    return image, mask.as_subclass(torch.Tensor)


def draw_of_image(image: int, repeat: int, size: int) -> int:
    """The training index of the `repeat`-th draw of image `image` in a data set of `size` images: a
    repeated pass reads the same image with new augmentation draws (they are a function of the index)."""
    return image + repeat * size


def image_of_draw(index: int, size: int) -> int:
    """The image of training index `index` (draw_of_image's inverse)."""
    return index % size


class ShardSampler(Sampler[int]):
    """Training: this rank's share of an epoch, shuffled by (seed, epoch) and cut to equal shards.

    An epoch is one pass over range(size), or as many passes as give at least min_images draws (each
    pass shuffled anew; pass k yields draw_of_image(i, k, size), which the data set reads as image i with
    new augmentation draws): a small data set then has enough steps per epoch and loses no image to the
    last partial batch."""

    def __init__(
        self, size: int, rank: int = 0, world_size: int = 1, seed: int = 0, min_images: int = 0
    ) -> None:
        self.size, self.rank, self.world_size = size, rank, world_size
        self.seed, self.epoch, self.skip = seed, 0, 0
        self.passes = max(1, -(-min_images // size)) if size else 1

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Select the epoch's order; its first `skip` indices (batches a step checkpoint holds) are not
        given again."""
        self.epoch, self.skip = epoch, skip

    def _indices(self) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = [
            draw_of_image(i, k, self.size)
            for k in range(self.passes)
            for i in torch.randperm(self.size, generator=generator).tolist()
        ]
        per_rank = len(self)  # drop the remainder: equal step counts on every rank
        return order[self.rank * per_rank : (self.rank + 1) * per_rank]

    def __iter__(self):
        return iter(self._indices()[self.skip :])

    def __len__(self) -> int:
        return self.size * self.passes // self.world_size


class SameSizeBatches(Sampler[list[int]]):
    """Validation batches: the indices of equal-size images together (at most batch_size a batch), in
    order of first appearance; this rank takes batches rank, rank + world_size, ... so every image is
    evaluated exactly once. A prediction never depends on which other images share its batch."""

    def __init__(
        self, sizes: list[tuple[int, int]], batch_size: int, rank: int = 0, world_size: int = 1
    ) -> None:
        groups: dict[tuple[int, int], list[int]] = {}
        for index, size in enumerate(sizes):
            groups.setdefault(size, []).append(index)
        batches = [g[i : i + batch_size] for g in groups.values() for i in range(0, len(g), batch_size)]
        self.batches = batches[rank::world_size]

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def distributed_rank_and_size() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def make_loader(
    dataset: SegmentationDataset, batch_size: int, num_workers: int, seed: int = 0, min_epoch_images: int = 0
) -> DataLoader:
    """Training loader (dataset.train) shuffles by (seed, epoch), repeats a data set smaller than
    min_epoch_images (ShardSampler) and drops the last partial batch, since BatchNorm cannot use a
    batch of one; validation loader batches equal-size images and keeps every
    image. Both shard across processes under torch.distributed. Call `set_epoch(loader, epoch)` before
    each training epoch."""
    rank, world_size = distributed_rank_and_size()
    if dataset.train:
        batching = {
            "batch_size": batch_size,
            "sampler": ShardSampler(len(dataset), rank, world_size, seed, min_epoch_images),
            "drop_last": True,
        }
    else:
        batching = {"batch_sampler": SameSizeBatches(dataset.image_sizes(), batch_size, rank, world_size)}
    return DataLoader(
        dataset,
        **batching,
        num_workers=num_workers,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=num_workers > 0,
        prefetch_factor=4 if num_workers > 0 else None,
    )


def set_epoch(loader: DataLoader, epoch: int, skip_batches: int = 0) -> None:
    """Select the epoch's shuffle and augmentation draws; call before iterating a training loader. The
    first `skip_batches` batches are left out (done before a step checkpoint): the rest are the batches
    an uninterrupted epoch gives, in its order and with its draws."""
    loader.sampler.set_epoch(epoch, skip_batches * loader.batch_size)
    loader.dataset.set_epoch(epoch)


def normalize(
    images: torch.Tensor,
    device: torch.device,
    channels_last: bool = False,
    image_format: ImageFormat | None = None,
) -> torch.Tensor:
    """Images N x C x H x W as workers hand them -> normalised float32 images on `device`
    (images.ImageFormat.normalize; 8-bit RGB when no format is given)."""
    return (image_format or ImageFormat()).normalize(images, device, channels_last)


def to_device(
    images: torch.Tensor,
    masks: torch.Tensor,
    device: torch.device,
    channels_last: bool = False,
    image_format: ImageFormat | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images N x C x H x W and masks N x H x W -> normalised float32 images and int64 masks on `device`."""
    return normalize(images, device, channels_last, image_format), masks.to(device, non_blocking=True).long()
