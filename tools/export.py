"""Export a checkpoint for use without this repository: ONNX, or a PyTorch ExportedProgram.

    python tools/export.py --checkpoint experiments/unet/best.pth --format onnx --output model.onnx
    python tools/export.py --checkpoint experiments/unet/best.pth --format pt2 --output model.pt2

Both are made by torch.export (the ONNX file through PyTorch's dynamo exporter, onnxscript), PyTorch's
supported export paths (torch 2.14 or newer; training and prediction run on older ones). The exported
graph takes what a user has, images N x C x H x W of any batch, height and width in the data set's
channels and dtype (uint8 RGB for photographs; 1 channel, 16-bit or N bands where the data set has them;
ONNX takes 16-bit images as int32, having no uint16 input), and returns float32 class logits N x K x H x
W: the normalisation the model was trained with and the padding to the network's multiple happen inside it
(argmax over K gives the classes). BatchNorm is folded into the convolutions. The class names, colours,
mask values and the input (channels, dtype, normalisation) travel with it: ONNX metadata "class_names",
"colors", "mask_values" and "input" (JSON), or the extra file "classes.json" of the .pt2 archive
(torch.export.load). ONNX export needs `pip install onnx onnxscript`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.fx.experimental._config as fx_config
import torch.nn.functional as F
from torch import nn
from torch.export import Dim

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from checkpoints import load_model  # noqa: E402
from images import DTYPES, ImageFormat, normalized, statistics_on  # noqa: E402
from utils import UserError, exit_status, replaced_atomically  # noqa: E402


class Segmenter(nn.Module):
    """Images N x C x H x W in the format's dtype -> float32 logits N x K x H x W: the normalisation of
    images.ImageFormat.normalize, then the model on the images resized to the format's size (--resize) or
    padded to its multiple (16 for the U-Net,
    32 for most encoders), its logits cropped back by index_select (a slice back to H would make
    torch.export guard on whether H was a multiple already)."""

    def __init__(self, model: nn.Module, fmt: ImageFormat) -> None:
        super().__init__()
        self.model = model
        self.multiple = model.multiple
        mean, std, low, high = statistics_on(fmt, torch.device("cpu"))
        self.register_buffer("mean", mean.clone())
        self.register_buffer("std", std.clone())
        self.clip = low is not None
        self.register_buffer("low", low.clone() if self.clip else torch.zeros(1))
        self.register_buffer("high", high.clone() if self.clip else torch.zeros(1))
        self.size = fmt.size  # --resize: the network sees size x size, its logits are resized back

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        height, width = images.shape[-2:]
        clip = (self.low, self.high) if self.clip else ()
        x = normalized(images, self.mean, self.std, *clip)
        if self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True)
            logits = self.model(x)
            return F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
        logits = self.model(F.pad(x, (0, -width % self.multiple, 0, -height % self.multiple)))
        rows, cols = torch.arange(height, device=x.device), torch.arange(width, device=x.device)
        return logits.index_select(2, rows).index_select(3, cols)


EXPORT_TORCH = "2.14"  # the oldest torch whose torch.export traces every image size here (2.12 fails: tried)


def exported_program(segmenter: nn.Module, example: torch.Tensor) -> torch.export.ExportedProgram:
    """torch.export of the segmenter with the batch, height and width of its input left symbolic (any
    size from 1 to 16,384 pixels a side)."""
    side = {"min": 1, "max": 16384}
    dims = {0: Dim("batch", min=1, max=4096), 2: Dim("height", **side), 3: Dim("width", **side)}
    # Size-oblivious tracing, and the few shape conditions it cannot decide (ConvNeXt's memory layouts at
    # a batch of one) checked when the graph runs rather than fixed to the example's: without them export
    # would assume the deepest feature map is not 1 x 1 and a batch not 1, as in the example.
    with fx_config.patch(backed_size_oblivious=True):
        return torch.export.export(
            segmenter,
            (example,),
            dynamic_shapes={"images": dims},
            prefer_deferred_runtime_asserts_over_guards=True,
        )


def export(checkpoint_path: Path, output: Path, file_format: str) -> ImageFormat:
    """Write the checkpoint's model to `output`; returns the images it takes."""
    if torch.__version__ < EXPORT_TORCH:
        raise UserError(
            f"tools/export.py needs torch {EXPORT_TORCH} or newer (torch.export of any image size); this is "
            f"torch {torch.__version__}: pip install -U torch torchvision"
        )
    model, names, colors, values, fmt = load_model(checkpoint_path, torch.device("cpu"))
    segmenter = Segmenter(model, fmt).eval()
    metadata = {
        "class_names": json.dumps(list(names)),
        "colors": json.dumps(colors.tolist()),
        "mask_values": json.dumps(list(values)),
    }
    # ONNX has no uint16 input: 16-bit images go in as int32 there.
    dtype = "int32" if file_format == "onnx" and fmt.dtype == "uint16" else fmt.dtype
    metadata["input"] = json.dumps({**fmt.as_dict(), "dtype": dtype})
    example = torch.zeros(2, fmt.channels, 70, 90, dtype=DTYPES.get(dtype, torch.int32))
    if file_format == "onnx":
        try:
            import onnx
            import onnxscript  # noqa: F401  (the dynamo exporter's)
        except ImportError:
            raise UserError(
                "ONNX export needs the onnx and onnxscript packages: pip install onnx onnxscript"
            ) from None
    program = exported_program(segmenter, example)
    output.parent.mkdir(parents=True, exist_ok=True)
    with replaced_atomically(output) as tmp:
        if file_format == "pt2":
            torch.export.save(program, tmp, extra_files={"classes.json": json.dumps(metadata)})
            return fmt
        proto = torch.onnx.export(program, (example,), dynamo=True, input_names=["images"],
                                  output_names=["logits"], optimize=True).model_proto  # fmt: skip
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
    parser.add_argument(
        "--format",
        choices=("onnx", "pt2"),
        default="onnx",
        help="ONNX, or a PyTorch ExportedProgram (torch.export.load)",
    )
    parser.add_argument("--output", required=True, help="the file to write (model.onnx, model.pt2)")
    args = parser.parse_args()
    fmt = export(Path(args.checkpoint), Path(args.output), args.format)
    print(
        f"wrote {args.output} ({args.format}): {fmt.dtype} images N x {fmt.channels} x H x W -> logits "
        "N x K x H x W"
    )
    return 0


if __name__ == "__main__":
    sys.exit(exit_status(main))
