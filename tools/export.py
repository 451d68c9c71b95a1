"""Export a checkpoint for use without this repository: ONNX, or TorchScript.

    python tools/export.py --checkpoint experiments/unet/best.pth --format onnx --output model.onnx
    python tools/export.py --checkpoint experiments/unet/best.pth --format torchscript --output model.pt

The exported graph takes what a user has, images N x C x H x W of any height and width in the data
set's channels and dtype (uint8 RGB for photographs; 1 channel, 16-bit or N bands where the data set
has them; ONNX takes 16-bit images as int32, having no uint16 input), and returns float32 class logits
N x K x H x W: the normalisation the model was trained with and the padding to a multiple of 16 happen
inside it (argmax over K gives the classes). BatchNorm is
folded into the convolutions. The class names, colours, mask values and the input (channels, dtype,
normalisation) travel with it: ONNX metadata "class_names", "colors", "mask_values" and "input" (JSON),
or the extra file "classes.json" of the TorchScript archive. ONNX export needs `pip install onnx`.
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
from images import DTYPES, ImageFormat, normalized, statistics_on  # noqa: E402
from utils import UserError, exit_status, replaced_atomically  # noqa: E402


class Segmenter(nn.Module):
    """Images N x C x H x W in the format's dtype -> float32 logits N x K x H x W (the U-Net pads inside);
    the normalisation of images.ImageFormat.normalize."""

    def __init__(self, model: nn.Module, fmt: ImageFormat) -> None:
        super().__init__()
        self.model = model
        mean, std, low, high = statistics_on(fmt, torch.device("cpu"))
        self.register_buffer("mean", mean.clone())
        self.register_buffer("std", std.clone())
        self.clip = low is not None
        self.register_buffer("low", low.clone() if self.clip else torch.zeros(1))
        self.register_buffer("high", high.clone() if self.clip else torch.zeros(1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        clip = (self.low, self.high) if self.clip else ()
        return self.model(normalized(images, self.mean, self.std, *clip))


def export(checkpoint_path: Path, output: Path, file_format: str) -> ImageFormat:
    """Write the checkpoint's model to `output`; returns the images it takes."""
    model, names, colors, values, fmt = load_model(checkpoint_path, torch.device("cpu"))
    segmenter = Segmenter(model, fmt).eval()
    metadata = {
        "class_names": json.dumps(list(names)),
        "colors": json.dumps(colors.tolist()),
        "mask_values": json.dumps(list(values)),
    }
    # ONNX (through PyTorch's exporter) has no uint16 input: 16-bit images go in as int32 there.
    dtype = "int32" if file_format == "onnx" and fmt.dtype == "uint16" else fmt.dtype
    metadata["input"] = json.dumps({**fmt.as_dict(), "dtype": dtype})
    # Height and width stay symbolic in the trace.
    example = torch.zeros(2, fmt.channels, 70, 90, dtype=DTYPES.get(dtype, torch.int32))
    output.parent.mkdir(parents=True, exist_ok=True)
    with replaced_atomically(output) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on the padding arithmetic, which it records
        if file_format == "torchscript":
            traced = torch.jit.trace(segmenter, example)
            torch.jit.save(traced, tmp, _extra_files={"classes.json": json.dumps(metadata)})
            return fmt
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
    return fmt


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", required=True, help="a best.pth or last.pth written by main.py")
    parser.add_argument("--format", choices=("onnx", "torchscript"), default="onnx", help="file format")
    parser.add_argument("--output", required=True, help="the file to write (model.onnx, model.pt)")
    args = parser.parse_args()
    fmt = export(Path(args.checkpoint), Path(args.output), args.format)
    print(
        f"wrote {args.output} ({args.format}): {fmt.dtype} images N x {fmt.channels} x H x W -> logits "
        "N x K x H x W"
    )
    return 0


if __name__ == "__main__":
    sys.exit(exit_status(main))
