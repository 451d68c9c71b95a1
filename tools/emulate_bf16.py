"""main.py with `--amp bf16` computed as hardware with native bf16 computes it, on a CPU without it:
for measuring what bf16 does to accuracy where it cannot be run at speed. Takes main.py's flags.

    python tools/emulate_bf16.py --amp bf16 --data_dir data/camvid --name camvid_bf16e_s0 \
        --base_channels 16 --crop_size 256 --epochs 10 --channels_last off --seed 0 --val_every 10

Autocast runs the convolutions (and transposed convolutions) in bf16 and everything else as it would
anyway. Native kernels (oneDNN on AVX512-BF16 or AMX, cuDNN) read bf16 inputs, weights and bias,
accumulate in float32 and write a bf16 output; backward, bf16 gradients in and out the same way. This
tool does exactly that in float32 arithmetic: each convolution's tensors are rounded to bf16 on the way
in and its output on the way out, and the gradients likewise on the way back. PyTorch's own bf16 on
such a CPU is a software path that is 41x slower here and sums the taps of a kernel in bf16 on the
backward pass, which native kernels do not. One difference remains: where two gradients meet (a skip
connection), autocast adds them in bf16, this in float32. Speed from this tool means nothing, and
`--compile` is refused: the compiled graph would be traced without the rounding.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import inference  # noqa: E402
import main  # noqa: E402
from utils import UserError, autocast, exit_status  # noqa: E402


class RoundToBF16(torch.autograd.Function):
    """x rounded to the nearest bf16 value, kept in its own dtype; its gradient rounded the same way."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return x.to(torch.bfloat16).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad.to(torch.bfloat16).to(grad.dtype)


def rounded(value):
    """A floating-point tensor rounded to bf16 (gradient too); anything else as it is."""
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return RoundToBF16.apply(value)
    return value


class EmulatedBF16(TorchFunctionMode):
    """While inside: every convolution with bf16 inputs, weights, bias and output, float32 accumulation."""

    CONVOLUTIONS = (F.conv2d, F.conv_transpose2d)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func not in self.CONVOLUTIONS:
            return func(*args, **kwargs)
        output = func(*map(rounded, args), **{key: rounded(value) for key, value in kwargs.items()})
        return rounded(output)


def emulated_autocast(
    device: torch.device, amp_dtype: torch.dtype | None
) -> contextlib.AbstractContextManager:
    """utils.autocast, with bf16 emulated in float32 instead of run."""
    return EmulatedBF16() if amp_dtype == torch.bfloat16 else autocast(device, amp_dtype)


@contextlib.contextmanager
def bf16_emulated() -> Iterator[None]:
    """main.py's training step and validation (inference.py) autocast through emulated_autocast."""
    modules = (main, inference)
    originals = [module.autocast for module in modules]
    for module in modules:
        module.autocast = emulated_autocast
    try:
        yield
    finally:
        for module, original in zip(modules, originals, strict=True):
            module.autocast = original


def run(argv: list[str] | None = None) -> int:
    args = main.parse_args(argv)
    if args.amp != "bf16":
        raise UserError(f"--amp {args.amp}: this tool emulates --amp bf16; pass --amp bf16 (or use main.py)")
    if args.compile:  # the compiled graph is traced without the emulation's rounding
        raise UserError("--compile: the emulation holds for the uncompiled model only; drop --compile")
    with bf16_emulated():
        return main.cli(argv)


if __name__ == "__main__":
    sys.exit(exit_status(run))
