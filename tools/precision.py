"""Where bf16 autocast rounds the training step: the gradient of each block of a trained U-Net under bf16,
against the float32 gradient of the same batch, next to the float32 gradient of another batch (the noise
SGD has anyway). Prints a table and one JSON line.

python tools/precision.py --checkpoint experiments/camvid/best.pth --data_dir data/camvid

Each figure is a relative distance ||g - g_fp32|| / ||g_fp32||, the mean over --pairs pairs of training
batches (crops, scales, flips and colour jitter as main.py draws them in epoch 0, with the checkpoint's
--crop_size, --scale, --color_jitter and --batch_size; the loss unweighted). Columns: bf16 (main.py's
autocast), bf16 with every BatchNorm run in float32 (its input cast up), and float32 on the pair's other
batch. The weights are the checkpoint's throughout: BatchNorm's running statistics are put back after
each pass. A CPU without native bf16 computes it in software, slowly.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import default_collate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dataset import SegmentationDataset, to_device  # noqa: E402
from main import criterion  # noqa: E402
from tools.predict import unet_from_checkpoint  # noqa: E402
from utils import UserError, autocast, exit_status, load_checkpoint  # noqa: E402

COLUMNS = ("bf16", "bf16, BatchNorm in fp32", "fp32, other batch")


@contextlib.contextmanager
def float32_batchnorm(model: torch.nn.Module, enabled: bool) -> Iterator[None]:
    """Cast every BatchNorm's input to float32 (autocast then runs it in float32) while inside."""

    def cast_up(module: torch.nn.Module, inputs: tuple[torch.Tensor]) -> tuple[torch.Tensor]:
        return (inputs[0].float(),)

    batchnorms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)] if enabled else []
    handles = [m.register_forward_pre_hook(cast_up) for m in batchnorms]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def gradients(
    model: torch.nn.Module,
    images: torch.Tensor,
    masks: torch.Tensor,
    amp_dtype: torch.dtype | None,
    batchnorm_fp32: bool = False,
) -> dict[str, torch.Tensor]:
    """Each block's gradient (all its parameters, flattened) for one batch; the model is left as it was."""
    state = copy.deepcopy(model.state_dict())
    model.zero_grad(set_to_none=True)
    with float32_batchnorm(model, batchnorm_fp32), autocast(images.device, amp_dtype):
        loss = criterion(model(images), masks)
    loss.backward()
    model.load_state_dict(state)
    blocks: dict[str, list[torch.Tensor]] = {}
    for name, parameter in model.named_parameters():
        blocks.setdefault(name.split(".")[0], []).append(parameter.grad.flatten())
    grads = {block: torch.cat(parts) for block, parts in blocks.items()}
    grads["whole model"] = torch.cat(list(grads.values()))
    return grads


def distances(model: torch.nn.Module, first: tuple, other: tuple) -> dict[str, list[float]]:
    """Per block, each column's relative distance to the float32 gradient of `first`."""
    reference = gradients(model, *first, None)
    compared = (
        gradients(model, *first, torch.bfloat16),
        gradients(model, *first, torch.bfloat16, batchnorm_fp32=True),
        gradients(model, *other, None),
    )
    return {
        block: [float((g[block] - ref).norm() / ref.norm()) for g in compared]
        for block, ref in reference.items()
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", type=Path, required=True, help="a last.pth or best.pth of main.py")
    parser.add_argument("--data_dir", type=Path, required=True, help="the data set it was trained on")
    parser.add_argument("--pairs", type=int, default=2, help="pairs of training batches to average over")
    parser.add_argument("--seed", type=int, default=0, help="which training images make the batches")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    checkpoint = load_checkpoint(args.checkpoint)
    trained = checkpoint["args"]
    model = unet_from_checkpoint(checkpoint, args.checkpoint).train()
    dataset = SegmentationDataset(
        args.data_dir,
        train=True,
        crop_size=trained["crop_size"],
        scale=tuple(trained["scale"]),
        color_jitter=trained.get("color_jitter", 0.0),  # absent from checkpoints older than the flag
    )
    batch_size = trained["batch_size"]
    needed = 2 * args.pairs * batch_size
    if args.pairs < 1 or needed > len(dataset):
        raise UserError(
            f"--pairs {args.pairs}: pass 1 to {len(dataset) // (2 * batch_size)}, the pairs of batches of"
            f" {batch_size} that the {len(dataset)} training images of {args.data_dir} hold"
        )
    order = np.random.default_rng(args.seed).permutation(len(dataset))[:needed]
    batches = []
    for start in range(0, len(order), batch_size):
        images, masks = default_collate([dataset[int(i)] for i in order[start : start + batch_size]])
        batches.append(to_device(images, masks, torch.device("cpu")))
    pairs = [distances(model, batches[2 * k], batches[2 * k + 1]) for k in range(args.pairs)]
    result = {block: np.mean([p[block] for p in pairs], axis=0).tolist() for block in pairs[0]}
    print(f"| block | {' | '.join(COLUMNS)} |")
    print(f"| --- |{' --- |' * len(COLUMNS)}")
    for block, row in result.items():
        print(f"| {block} | {' | '.join(f'{x:.3f}' for x in row)} |")
    print(
        json.dumps(
            {"checkpoint": str(args.checkpoint), "pairs": args.pairs, "columns": COLUMNS, "blocks": result}
        )
    )


if __name__ == "__main__":
    sys.exit(exit_status(main))
