"""The U-Net of Ronneberger et al. (2015) with Batch Normalization and same-size ("padded") convolutions."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from layouts import VOC_NUM_CLASSES


class DoubleConv(nn.Sequential):
    """(3x3 conv -> BatchNorm -> ReLU) twice: N x in x H x W -> N x out x H x W."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),  # BN supplies the bias
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class Down(nn.Sequential):
    """2x2 max-pool then DoubleConv: N x in x H x W -> N x out x H/2 x W/2."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(nn.MaxPool2d(2), DoubleConv(in_channels, out_channels))


class Up(nn.Module):
    """2x2 transposed conv (halving channels), concatenate the skip, DoubleConv.

    x: N x in x H x W, skip: N x in/2 x 2H x 2W -> N x out x 2H x 2W.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, 2, stride=2)
        self.conv = DoubleConv(in_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


class UNet(nn.Module):
    """U-Net: images N x in_channels x H x W -> class logits N x num_classes x H x W, any H and W.

    Widths are base_channels x (1, 2, 4, 8, 16): 64-128-256-512-1024 by default, 31.0 M parameters.
    """

    depth = 4  # number of 2x poolings; inputs are padded to a multiple of 2**depth

    def __init__(
        self, in_channels: int = 3, num_classes: int = VOC_NUM_CLASSES, base_channels: int = 64
    ) -> None:
        super().__init__()
        c = base_channels
        self.inc = DoubleConv(in_channels, c)
        self.down1 = Down(c, 2 * c)
        self.down2 = Down(2 * c, 4 * c)
        self.down3 = Down(4 * c, 8 * c)
        self.down4 = Down(8 * c, 16 * c)
        self.up1 = Up(16 * c, 8 * c)
        self.up2 = Up(8 * c, 4 * c)
        self.up3 = Up(4 * c, 2 * c)
        self.up4 = Up(2 * c, c)
        self.outc = nn.Conv2d(c, num_classes, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        multiple = 2**self.depth
        x = F.pad(x, (0, -width % multiple, 0, -height % multiple))  # zeros = the mean after normalising

        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        x5 = self.down4(x4)
        x = self.up1(x5, x4)
        x = self.up2(x, x3)
        x = self.up3(x, x2)
        x = self.up4(x, x1)
        return self.outc(x)[..., :height, :width]


def fused_for_inference(model: UNet) -> UNet:
    """An eval-mode copy with each BatchNorm folded into the convolution before it.

    Same outputs as model.eval() (up to float rounding), about 15% faster; weights follow `model`'s
    memory format. Use it for validation and prediction, never for training.
    """
    fused = copy.deepcopy(model).eval()
    for block in fused.modules():
        if isinstance(block, DoubleConv):
            for i in (0, 3):  # conv, BN, ReLU, conv, BN, ReLU
                block[i] = fuse_conv_bn_eval(block[i], block[i + 1])
                block[i + 1] = nn.Identity()
    channels_last = model.inc[0].weight.is_contiguous(memory_format=torch.channels_last)
    return fused.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
