"""Segment images with a trained checkpoint: a mask per image in the data set's values, optionally an overlay.

    python tools/predict.py --checkpoint experiments/unet/best.pth --input photo.jpg --output predictions/
    python tools/predict.py --checkpoint experiments/unet/best.pth --input photos/ --output out/ --overlay

For each input image <name>.<ext> (JPEG, PNG, BMP, ...; RGB, grayscale or 16-bit; any size) it
writes <output>/<name>.png, the size of the upright input (EXIF orientation applied, as labelling tools
show it): the class of every pixel in the data set's own mask values (stored in the checkpoint). For
masks that hold class indices that is a palette PNG in the data set's colours (open it with PIL to read
the indices); for masks that store other values, such as 0/255 binary masks, a grayscale PNG of those
values (16-bit where a value exceeds 255). With --overlay it also writes <output>/<name>_overlay.png:
the image blended with the classes' colours.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from itertools import groupby
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from checkpoints import load_model  # noqa: E402
from images import ImageFormat, check_channels, display, read_pixels, stored_size  # noqa: E402
from inference import InferenceOptions, add_inference_flags, inference_options, predict_classes  # noqa: E402
from layouts import IMAGE_SUFFIXES, colorize, palette  # noqa: E402
from utils import (  # noqa: E402
    AMP_DTYPES,
    Progress,
    UserError,
    exit_status,
    save_image_atomically,
    select_compute,
)


def find_images(source: Path) -> list[Path]:
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise UserError(f"--input {source} not found: pass an image file or a folder of images")
    images = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not images:
        raise UserError(f"--input {source} holds no images (of any format PIL opens: .png, .jpg, .tif, ...)")
    return images


def output_paths(images: list[Path], output: Path) -> dict[Path, Path]:
    """Input -> output mask path; refuses to overwrite an input or to give two inputs one output."""
    targets = {image: output / f"{image.stem}.png" for image in images}
    by_target = defaultdict(list)
    for image, target in targets.items():
        by_target[target].append(image)
    clashes = [sources for sources in by_target.values() if len(sources) > 1]
    if clashes:
        raise UserError(
            f"{', '.join(map(str, clashes[0]))} would write the same {output}/{clashes[0][0].stem}.png: "
            "rename one of them or predict them into different --output folders"
        )
    overwrites = [image for image, target in targets.items() if image.resolve() == target.resolve()]
    if overwrites:
        raise UserError(
            f"the prediction for {overwrites[0]} would overwrite it: choose another --output folder"
        )
    return targets


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    images: list[np.ndarray],
    device: torch.device,
    fmt: ImageFormat,
    options: InferenceOptions,
) -> list[np.ndarray]:
    """Same-size arrays H x W x C as images.read_pixels reads them -> class-index arrays HxW (uint8)."""
    stacked = images[0][None] if len(images) == 1 else np.stack(images)  # one photograph: no copy
    batch = torch.from_numpy(stacked).permute(0, 3, 1, 2)
    return list(predict_classes(model, batch, device, options, fmt).numpy())


def mask_image(classes: np.ndarray, colors: np.ndarray, values: tuple[int, ...]) -> Image.Image:
    """Class indices HxW -> the mask as the data set stores it: a palette PNG of the indices in the
    classes' colours, or, where the masks hold other values (0/255), a grayscale image of those values."""
    if values == tuple(range(len(values))):
        mask = Image.fromarray(classes, mode="L").convert("P")
        mask.putpalette(palette(colors).tobytes())
        return mask
    stored = np.asarray(values)[classes]
    if max(values) > 255:
        return Image.fromarray(stored.astype(np.uint16))  # 16-bit grayscale PNG
    return Image.fromarray(stored.astype(np.uint8), mode="L")


def write_outputs(
    picture: np.ndarray,
    classes: np.ndarray,
    colors: np.ndarray,
    values: tuple[int, ...],
    target: Path,
    overlay: bool,
) -> None:
    """The mask, and with `overlay` the blend of `picture` (H x W x 3 uint8, images.display) and colours."""
    save_image_atomically(mask_image(classes, colors, values), target)
    if overlay:
        blend = ((picture.astype(np.uint16) + colorize(classes, colors)) // 2).astype(np.uint8)
        save_image_atomically(Image.fromarray(blend), target.with_name(f"{target.stem}_overlay.png"))


def predict_files(args: argparse.Namespace) -> int:
    """Segment every --input image into --output; 1 when some could not be read (the others are written)."""
    device, amp_dtype, channels_last = select_compute(args.device, args.amp, "auto")  # as main.py validates
    model, _, colors, values, fmt = load_model(Path(args.checkpoint), device, channels_last)
    options = inference_options(args, amp_dtype, channels_last)
    images = find_images(Path(args.input))
    output = Path(args.output)
    targets = output_paths(images, output)
    output.mkdir(parents=True, exist_ok=True)

    failed = []
    sizes = {}
    for path in images:  # headers only: group equal sizes into batches without decoding everything first
        try:
            sizes[path] = stored_size(path)
        except UserError as error:
            failed.append((path, str(error)))
            continue
        check_channels(path, fmt, f"checkpoint {args.checkpoint}")
    ordered = sorted(sizes, key=lambda p: (sizes[p], str(p)))
    batches = [
        group[i : i + args.batch_size]
        for group in (list(g) for _, g in groupby(ordered, key=sizes.get))
        for i in range(0, len(group), args.batch_size)
    ]
    with Progress(len(images), "predict", enabled=len(images) > 1) as bar:
        bar.update(len(failed))
        for batch in batches:
            decoded = []
            for path in batch:
                try:  # upright, as the labelling tools showed it
                    decoded.append((path, read_pixels(path, fmt)))
                except UserError as error:  # a header that reads but pixels that do not (truncated file)
                    failed.append((path, str(error)))
                    bar.update(1)
            if decoded:
                classes = predict(model, [pixels for _, pixels in decoded], device, fmt, options)
                for (path, pixels), path_classes in zip(decoded, classes, strict=True):
                    picture = display(pixels, fmt)
                    write_outputs(picture, path_classes, colors, values, targets[path], args.overlay)
                bar.update(len(decoded))

    written = len(images) - len(failed)
    print(f"wrote {written} prediction(s) to {output}/" + (" with overlays" if args.overlay else ""))
    for _, reason in failed:
        print(f"error: {reason}", file=sys.stderr)
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", required=True, help="a best.pth or last.pth written by main.py")
    parser.add_argument("--input", required=True, help="an image, or a folder of images")
    parser.add_argument(
        "--output", default="predictions", help="folder for the results (default: predictions)"
    )
    parser.add_argument(
        "--overlay", action="store_true", help="also write <name>_overlay.png, image and colours"
    )
    parser.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: CUDA when present"
    )
    parser.add_argument("--amp", choices=("auto", *AMP_DTYPES), default="auto", help="mixed precision")
    parser.add_argument("--batch_size", type=int, default=8, help="images of equal size segmented together")
    add_inference_flags(parser)
    return predict_files(parser.parse_args())


if __name__ == "__main__":
    sys.exit(exit_status(main))
