import json

import pytest
import torch

from model import UNet
from tools.precision import float32_batchnorm, main
from utils import UserError


@pytest.fixture
def checkpoint(tmp_path):
    """A checkpoint as main.py writes one (the fields tools/precision.py reads), of a 4-channel U-Net."""
    torch.manual_seed(0)
    config = {"in_channels": 3, "num_classes": 21, "base_channels": 4}
    path = tmp_path / "best.pth"
    args = {"crop_size": 48, "scale": [0.5, 2.0], "batch_size": 4}
    torch.save({"model": UNet(**config).state_dict(), "model_config": config, "args": args}, path)
    return path


def test_bf16_gradients_are_nearer_float32_than_another_batch_is(checkpoint, prepared_demo, capsys):
    main(["--checkpoint", str(checkpoint), "--data_dir", str(prepared_demo), "--pairs", "2"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    blocks = result["blocks"]
    assert list(blocks) == [*(name for name, _ in UNet(3, 21, 4).named_children()), "whole model"]
    for block, (bf16, bf16_batchnorm_fp32, other_batch) in blocks.items():
        assert 0 < bf16 < 1 and 0 < bf16_batchnorm_fp32 < 1 and other_batch > 0, block
    bf16, _, other_batch = blocks["whole model"]
    assert bf16 < 0.5 * other_batch


@pytest.mark.parametrize("pairs", ["0", "4"])  # 24 images: 1 to 3 pairs of batches of 4
def test_pairs_the_training_images_cannot_hold_are_refused_naming_the_flag(checkpoint, prepared_demo, pairs):
    with pytest.raises(UserError, match=f"--pairs {pairs}: pass 1 to 3"):
        main(["--checkpoint", str(checkpoint), "--data_dir", str(prepared_demo), "--pairs", pairs])


def test_float32_batchnorm_runs_batchnorm_in_float32_under_bf16_autocast_and_only_inside():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    images = torch.randn(2, 3, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with float32_batchnorm(model, enabled=True):
            assert model(images).dtype == torch.float32
        assert model(images).dtype == torch.bfloat16
