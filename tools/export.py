"""Export a checkpoint for use without this repository: ONNX, or TorchScript.

    python tools/export.py --checkpoint experiments/unet/best.pth --format onnx --output model.onnx
    python tools/export.py --checkpoint experiments/unet/best.pth --format torchscript --output model.pt

The exported graph takes what a user has, uint8 RGB images N x 3 x H x W of any height and width, and
returns float32 class logits N x C x H x W: the ImageNet normalisation and the padding to a multiple of
16 happen inside it (argmax over C gives the classes). BatchNorm is folded into the convolutions. The
class names, colours and mask values travel with it: ONNX metadata "class_names", "colors" and
"mask_values" (JSON), or the extra
file "classes.json" of the TorchScript archive. ONNX export needs `pip install onnx`.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from checkpoints import load_model  # noqa: E402
from utils import IMAGENET_MEAN, IMAGENET_STD, UserError, exit_status, replaced_atomically  # noqa: E402


class Segmenter(nn.Module):
    """uint8 RGB images N x 3 x H x W -> float32 logits N x C x H x W (the U-Net pads inside)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model((images.float() - self.mean) / self.std)


def export(checkpoint_path: Path, output: Path, file_format: str) -> None:
    model, names, colors, values = load_model(checkpoint_path, torch.device("cpu"))
    segmenter = Segmenter(model).eval()
    metadata = {
        "class_names": json.dumps(list(names)),
        "colors": json.dumps(colors.tolist()),
        "mask_values": json.dumps(list(values)),
    }
    example = torch.zeros(2, 3, 70, 90, dtype=torch.uint8)  # height and width stay symbolic in the trace
    output.parent.mkdir(parents=True, exist_ok=True)
    with replaced_atomically(output) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on the padding arithmetic, which it records
        if file_format == "torchscript":
            traced = torch.jit.trace(segmenter, example)
            torch.jit.save(traced, tmp, _extra_files={"classes.json": json.dumps(metadata)})
            return
        try:
            import onnx
        except ImportError:
            raise UserError("ONNX export needs the onnx package: pip install onnx") from None
        axes = {0: "batch", 2: "height", 3: "width"}
        torch.onnx.export(
            segmenter, (example,), tmp, dynamo=False, input_names=["images"], output_names=["logits"],
            dynamic_axes={"images": axes, "logits": axes}, opset_version=17,
        )  # fmt: skip
        proto = onnx.load(tmp)
        for key, value in metadata.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(proto, tmp)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", required=True, help="a best.pth or last.pth written by main.py")
    parser.add_argument("--format", choices=("onnx", "torchscript"), default="onnx", help="file format")
    parser.add_argument("--output", required=True, help="the file to write (model.onnx, model.pt)")
    args = parser.parse_args()
    export(Path(args.checkpoint), Path(args.output), args.format)
    print(f"wrote {args.output} ({args.format}): uint8 images N x 3 x H x W -> logits N x C x H x W")
    return 0


if __name__ == "__main__":
    sys.exit(exit_status(main))
