"""The segmentation networks, and the one registry that builds a model from the config a checkpoint stores.

    config = model_config("unet", in_channels=3, num_classes=21, base_channels=64)       # or "resnet34"
    model = build_model(config)                  # UNet, or EncoderUNet for any other --encoder
    load_encoder_weights(model, "imagenet")      # timm's ImageNet weights (cache, else fetched once)
    inference_model = fused_for_inference(model) # eval mode, every BatchNorm folded into its convolution

UNet is Ronneberger et al. (2015) with Batch Normalization and same-size ("padded") convolutions, from
scratch. EncoderUNet is a U-Net decoder on a timm feature extractor (features_only), as
segmentation_models.pytorch builds it: upsample, concatenate the encoder's feature of that stride, two
3x3 conv-BN-ReLU, up to the input's resolution.
"""

from __future__ import annotations

import copy
import difflib
import os
import socket
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from utils import IMAGENET_MEAN, IMAGENET_STD, UserError

DECODER_CHANNELS = (256, 128, 64, 32, 16)  # EncoderUNet's stages, deepest first (smp's defaults)
HUB_TIMEOUT = 5.0  # seconds to reach the Hugging Face Hub before a fetch is called impossible


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


def kaiming_init(module: nn.Module) -> None:
    """He initialisation of the convolutions (fan out, ReLU), BatchNorm at identity."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class UNet(nn.Module):
    """U-Net: images N x in_channels x H x W -> class logits N x num_classes x H x W, any H and W.

    Widths are base_channels x (1, 2, 4, 8, 16): 64-128-256-512-1024 by default, 31.0 M parameters.
    """

    multiple = 16  # 4 poolings: inputs are padded to a multiple of 2**4

    def __init__(self, in_channels: int = 3, num_classes: int = 21, base_channels: int = 64) -> None:
        super().__init__()
        c = base_channels
        self.in_channels = in_channels
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
        kaiming_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        x = F.pad(x, (0, -width % self.multiple, 0, -height % self.multiple))  # zeros = the mean

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


class DecoderStage(nn.Module):
    """2x nearest upsampling, the encoder's feature of the new stride concatenated (where it has one),
    DoubleConv: x N x in x H x W, skip N x skip x 2H x 2W (or None) -> N x out x 2H x 2W."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = DoubleConv(in_channels + skip_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return self.conv(x if skip is None else torch.cat([x, skip], dim=1))


class EncoderUNet(nn.Module):
    """A U-Net decoder on timm's `encoder` (features_only): images N x in_channels x H x W -> class logits
    N x num_classes x H x W, any H and W (padded inside to the encoder's total stride, 32 for most).

    One DecoderStage for each halving from the deepest feature's stride down to 1, of DECODER_CHANNELS
    widths; the encoder's weights are timm's initialisation until load_encoder_weights."""

    def __init__(
        self,
        encoder: str,
        in_channels: int = 3,
        num_classes: int = 21,
        decoder_channels: tuple[int, ...] = DECODER_CHANNELS,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.encoder_name = encoder
        self.encoder = timm_features(encoder, in_channels)
        strides = self.encoder.feature_info.reduction()
        widths = dict(zip(strides, self.encoder.feature_info.channels(), strict=True))
        self.multiple = strides[-1]
        self.strides = tuple(strides)
        stages, channels, stride = [], widths[strides[-1]], strides[-1]
        while stride > 1:
            stride //= 2
            out = decoder_channels[min(len(stages), len(decoder_channels) - 1)]
            stages.append(DecoderStage(channels, widths.get(stride, 0), out))
            channels = out
        self.decoder = nn.ModuleList(stages)
        self.head = nn.Conv2d(channels, num_classes, 1)
        kaiming_init(self.decoder)
        kaiming_init(self.head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        x = F.pad(x, (0, -width % self.multiple, 0, -height % self.multiple))  # zeros = the mean
        features = dict(zip(self.strides, self.encoder(x), strict=True))
        x, stride = features[self.multiple], self.multiple
        for stage in self.decoder:
            stride //= 2
            x = stage(x, features.get(stride))
        return self.head(x)[..., :height, :width]


def timm_features(encoder: str, in_channels: int) -> nn.Module:
    """timm's `encoder` as a feature extractor (random weights); UserError for a name timm does not know
    or a model without features at strides 2, 4, 8, ... (the U-Net's skips)."""
    import timm

    try:
        features = timm.create_model(encoder, features_only=True, pretrained=False, in_chans=in_channels)
    except RuntimeError as error:
        if "Unknown model" not in str(error):
            message = f"--encoder {encoder}: timm cannot make it a feature extractor ({error})"
            raise UserError(message) from None
        close = difflib.get_close_matches(encoder, timm.list_models(), n=4)
        hint = f" (close: {', '.join(close)})" if close else ""
        raise UserError(
            f"--encoder {encoder} is not a timm model{hint}: pass unet (the U-Net from scratch) or a timm "
            "model name (resnet34, efficientnet_b0, convnext_tiny, ...; timm.list_models() lists them)"
        ) from None
    strides = features.feature_info.reduction()
    if any(s & (s - 1) or s < 2 for s in strides) or sorted(set(strides)) != strides:
        raise UserError(
            f"--encoder {encoder} has features at strides {strides}: a U-Net encoder needs strides 2, 4, "
            "8, ... (a convolutional network such as resnet34, efficientnet_b0 or convnext_tiny)"
        )
    return features


# The registry

ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {"unet": UNet, "encoder_unet": EncoderUNet}


def model_config(encoder: str, in_channels: int, num_classes: int, base_channels: int) -> dict:
    """The config of a new model for main.py's flags: --encoder unet is the U-Net of --base_channels,
    any other name that timm model under a U-Net decoder."""
    shape = {"in_channels": in_channels, "num_classes": num_classes}
    if encoder == "unet":
        return {"architecture": "unet", **shape, "base_channels": base_channels}
    return {"architecture": "encoder_unet", "encoder": encoder, **shape}


def build_model(config: dict) -> nn.Module:
    """A new model of `config` (a checkpoint's "model_config"), on the CPU; a config that names no
    architecture is a UNet (checkpoints written before there were others)."""
    arguments = dict(config)
    architecture = arguments.pop("architecture", "unet")
    if architecture not in ARCHITECTURES:
        raise UserError(
            f"model architecture {architecture!r} is not known here (known: {', '.join(ARCHITECTURES)}): "
            "the checkpoint comes from a newer version of this repository"
        )
    return ARCHITECTURES[architecture](**arguments)


def describe_model(config: dict) -> str:
    """A few words for the run's first line: 'U-Net of 64 base channels', 'resnet34 U-Net'."""
    if config.get("architecture", "unet") == "unet":
        return f"U-Net of {config['base_channels']} base channels"
    return f"{config['encoder']} U-Net"


def encoder_of(model: nn.Module) -> nn.Module | None:
    """The pretrained part of a model (its own parameter group in the optimiser), None for the U-Net."""
    return getattr(model, "encoder", None)


def sync_batchnorm(model: nn.Module) -> nn.Module:
    """Every BatchNorm made a SyncBatchNorm; timm's converter, which keeps the activation of its
    BatchNorm + activation layers (PyTorch's would drop it)."""
    from timm.layers import convert_sync_batchnorm

    return convert_sync_batchnorm(model)


# Pretrained weights


def pretrained_mean_std(config: dict) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """The RGB mean and std (in 0-1 units) the config's encoder was pretrained with; None for the U-Net."""
    if config.get("architecture", "unet") == "unet":
        return None
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(config["encoder"])
    if cfg is None:  # a timm model without pretrained weights: ImageNet's
        return IMAGENET_MEAN, IMAGENET_STD
    return tuple(cfg.mean), tuple(cfg.std)


def first_conv_adaptation(in_channels: int) -> str:
    """How load_encoder_weights adapts the RGB filters of the encoder's first convolution to
    `in_channels` (not 3) inputs, in words for the run's `images:` line."""
    if in_channels == 1:
        return "the encoder's first convolution takes the sum of its RGB filters"
    return (
        f"the encoder's first convolution takes its RGB filters repeated over the {in_channels} "
        f"channels, scaled by 3/{in_channels}"
    )


def load_encoder_weights(model: nn.Module, source: str) -> str:
    """Load `source` into the model's encoder: 'imagenet' (timm's weights, from the Hugging Face cache or
    fetched into it once) or the path of a state dict of that timm model (.pth, .safetensors). A
    first convolution of other than 3 input channels gets the RGB weights adapted as timm adapts them:
    summed for 1 channel, repeated and scaled by 3/N for N. Returns where the weights came from."""
    encoder = model.encoder
    path = imagenet_weights(model.encoder_name) if source == "imagenet" else Path(source)
    state = read_state_dict(path)
    first = f"{encoder.pretrained_cfg.get('first_conv', '')}.weight"
    if model.in_channels != 3 and first in state and state[first].ndim == 4 and state[first].shape[1] == 3:
        from timm.models import adapt_input_conv

        state[first] = adapt_input_conv(model.in_channels, state[first].float())
    expected = encoder.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or wrong:
        first_bad = (missing or wrong)[0]
        raise UserError(
            f"--encoder_weights {path} does not fit timm's {model.encoder_name}: {len(missing)} tensor(s) "
            f"missing, {len(wrong)} of another shape (first: {first_bad}); pass a state dict of that "
            "timm model, or --encoder_weights imagenet"
        )
    encoder.load_state_dict({k: state[k] for k in expected if k in state}, strict=False)
    return str(path)


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors by name from a .safetensors file or a torch file (pickle disabled; a {"state_dict": ...}
    or {"model": ...} wrapper is opened)."""
    if not path.is_file():
        raise UserError(f"--encoder_weights {path} not found: pass a state dict file, imagenet or none")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(path)
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise UserError(f"cannot read --encoder_weights {path}: {error}".splitlines()[0]) from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"--encoder_weights {path} holds no state dict (a dict of tensors by name)")
    return state


def imagenet_weights(encoder: str) -> Path:
    """The file of timm's pretrained weights of `encoder`: from the Hugging Face cache, or fetched into
    it when the hub can be reached; a UserError naming the cache and the ways out when it cannot."""
    import huggingface_hub
    from huggingface_hub import constants
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(encoder)
    repo = cfg.hf_hub_id if cfg is not None else None
    if not repo:
        raise UserError(
            f"timm has no pretrained weights of {encoder} on the Hugging Face Hub: pass --encoder_weights "
            "FILE (a state dict of that timm model) or --encoder_weights none (random weights)"
        )
    files = [cfg.hf_hub_filename] if cfg.hf_hub_filename else ["model.safetensors", "pytorch_model.bin"]
    for name in files:
        cached = huggingface_hub.try_to_load_from_cache(repo, name, cache_dir=constants.HF_HUB_CACHE)
        if isinstance(cached, str):
            return Path(cached)
    if not hub_reachable():
        raise UserError(
            f"the ImageNet weights of {encoder} ({repo} on the Hugging Face Hub) are not in the cache "
            f"{constants.HF_HUB_CACHE} and the hub cannot be reached from here: run once where it can "
            "(they are cached), or pass --encoder_weights FILE (a state dict of that timm model) or "
            "--encoder_weights none (random weights)"
        )
    for name in files:
        try:
            return Path(huggingface_hub.hf_hub_download(repo, name, cache_dir=constants.HF_HUB_CACHE))
        except huggingface_hub.errors.EntryNotFoundError:
            continue
    raise UserError(f"{repo} on the Hugging Face Hub holds none of {', '.join(files)}")


def hub_reachable() -> bool:
    """Whether the Hugging Face Hub answers within HUB_TIMEOUT (False when HF_HUB_OFFLINE is set), so
    that an offline machine gets its error at once, not after the hub client's minute of retries."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=HUB_TIMEOUT).close()
        return True
    except OSError:
        return False


# Inference


def fused_for_inference(model: nn.Module) -> nn.Module:
    """An eval-mode copy with every BatchNorm that reads a convolution's output alone folded into that
    convolution (any architecture: the pairs are found by running the copy once, conv_norm_pairs).

    Same outputs as model.eval() (up to float rounding), faster; weights follow `model`'s memory
    format. Use it for validation and prediction, never for training."""
    fused = copy.deepcopy(model).eval()
    for conv_name, norm_name in conv_norm_pairs(fused):
        norm = fused.get_submodule(norm_name)
        fused.set_submodule(conv_name, fuse_conv_bn_eval(fused.get_submodule(conv_name), norm))
        # timm's BatchNorm + activation layers keep their activation (and dropout, a no-op in eval)
        after = [getattr(norm, "drop", nn.Identity()), norm.act] if hasattr(norm, "act") else []
        fused.set_submodule(norm_name, nn.Sequential(*after) if after else nn.Identity())
    weight = next(p for p in model.parameters() if p.ndim == 4)
    channels_last = weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    return fused.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


class _Reads(TorchFunctionMode):
    """Counts, for tensors of `watched` (id -> conv name), each op outside a BatchNorm that reads them
    and makes a tensor (shape queries do not count)."""

    def __init__(self, watched: dict, readers: defaultdict, inside: list) -> None:
        super().__init__()
        self.watched, self.readers, self.inside = watched, readers, inside

    def __torch_function__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        if not self.inside and isinstance(result, torch.Tensor):
            for value in tree_flatten((args, kwargs))[0]:
                if isinstance(value, torch.Tensor) and id(value) in self.watched:
                    self.readers[self.watched[id(value)][0]].append("")
        return result


@torch.no_grad()
def conv_norm_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """(convolution, BatchNorm) module names where the BatchNorm's input is the convolution's output
    and nothing else reads that output: the pairs that fold. Found by running the model (eval mode) once
    on a small input, with hooks on the convolutions and BatchNorms and a count of every other read."""
    names = {module: name for name, module in model.named_modules()}
    outputs: dict[int, tuple[str, torch.Tensor]] = {}  # the tensors kept, so that their ids stay theirs
    readers: defaultdict[str, list[str]] = defaultdict(list)  # conv -> its output's readers ("" = other)
    inside: list[nn.Module] = []

    def conv_done(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        outputs[id(output)] = (names[module], output)

    def norm_starts(module: nn.Module, inputs: tuple) -> None:
        if not inside and id(inputs[0]) in outputs:
            readers[outputs[id(inputs[0])][0]].append(names[module])
        inside.append(module)

    def norm_done(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        inside.pop()

    hooks = []
    for module in names:
        # a convolution whose forward is Conv2d's (not a weight-standardised or padding subclass)
        if isinstance(module, nn.Conv2d) and type(module).forward is nn.Conv2d.forward:
            hooks.append(module.register_forward_hook(conv_done))
        elif isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
            hooks += [module.register_forward_pre_hook(norm_starts), module.register_forward_hook(norm_done)]
    weight = next(p for p in model.parameters() if p.ndim == 4)
    side = 2 * getattr(model, "multiple", 16)
    example = torch.zeros(1, model.in_channels, side, side, device=weight.device)
    try:
        with _Reads(outputs, readers, inside):
            model(example)
    finally:
        for hook in hooks:
            hook.remove()
    return [(conv, found[0]) for conv, found in readers.items() if len(found) == 1 and found[0]]
