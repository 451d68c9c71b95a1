"""Pretrained encoders (--encoder, --encoder_weights): the U-Net decoder on timm feature extractors of three
families, the registry that builds a model from its config, generic BatchNorm folding, weights from a file
and from a pre-seeded Hugging Face cache with the hub offline, and whole runs that train, evaluate, tile,
predict and export with them. The encoders are timm's tiny test models (random weights), so nothing here
needs the network."""

import argparse
import json
import os
import shutil
import signal
import subprocess

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import save_file
from torch import nn

from checkpoints import model_from_checkpoint
from main import get_optimizer
from model import (
    EncoderUNet,
    UNet,
    build_model,
    conv_norm_pairs,
    first_conv_adaptation,
    fused_for_inference,
    load_encoder_weights,
    model_config,
    sync_batchnorm,
)
from tests.helpers import (
    ROOT,
    TORCHRUN,
    assert_same_weights,
    assert_user_error,
    last_json,
    main_command,
    plain_layout,
    run_script,
    scientific_layout,
    start_until_progress_in_epoch,
)
from utils import UserError

FAMILIES = ("test_resnet", "test_efficientnet", "test_convnext")  # ResNet, EfficientNet, ConvNeXt
REPOS = {"test_resnet": "timm/test_resnet.r160_in1k"}  # the Hugging Face repository of its ImageNet weights


def trained_a_little(model, channels=3, seed=0):
    """`model` after a few SGD steps: BatchNorm statistics and weights off their initial values."""
    torch.manual_seed(seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for _ in range(3):
        x, y = torch.randn(2, channels, 64, 64), torch.randint(0, 3, (2, 64, 64))
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        optimizer.zero_grad()
    return model.eval()


@pytest.mark.parametrize("encoder", FAMILIES)
@pytest.mark.parametrize("shape", [(1, 3, 37, 61), (2, 3, 64, 64), (1, 3, 1, 1)])
def test_an_encoder_unet_returns_logits_of_the_input_size(encoder, shape):
    model = build_model(model_config(encoder, 3, 5, 0)).eval()
    with torch.no_grad():
        assert model(torch.randn(shape)).shape == (shape[0], 5, *shape[2:])


@pytest.mark.parametrize("encoder", FAMILIES)
def test_gradients_reach_every_encoder_and_decoder_parameter(encoder):
    model = build_model(model_config(encoder, 3, 3, 0))
    out = model(torch.randn(2, 3, 40, 36))
    nn.functional.cross_entropy(out, torch.randint(0, 3, (2, 40, 36))).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name


def test_the_decoder_has_a_stage_for_each_halving_and_skips_where_the_encoder_has_features():
    resnet, convnext = EncoderUNet("test_resnet"), EncoderUNet("test_convnext")  # strides 2-32, 4-32
    assert resnet.multiple == convnext.multiple == 32 and len(resnet.decoder) == len(convnext.decoder) == 5
    widths = dict(zip(convnext.strides, convnext.encoder.feature_info.channels(), strict=True))
    assert convnext.decoder[0].conv[0].in_channels == widths[32] + widths[16]
    assert convnext.decoder[3].conv[0].in_channels == convnext.decoder[2].conv[0].out_channels  # stride 2


@pytest.mark.parametrize("encoder", [*FAMILIES, "unet"])
def test_batchnorm_folds_into_any_architecture_within_1e_4(encoder):
    model = trained_a_little(build_model(model_config(encoder, 3, 3, 8)))
    fused = fused_for_inference(model)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in fused.modules())
    x = torch.randn(2, 3, 45, 70)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model(x), rtol=1e-4, atol=1e-4)


class Shared(nn.Module):
    """A convolution whose output goes to its BatchNorm and also around it: that pair must not fold."""

    in_channels = 3

    def __init__(self):
        super().__init__()
        self.conv, self.norm = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.conv2, self.norm2 = nn.Conv2d(4, 4, 1, bias=False), nn.BatchNorm2d(4)

    def forward(self, x):
        y = self.conv(x)
        return self.norm2(self.conv2(self.norm(y) + y))


def test_a_convolution_read_by_more_than_its_batchnorm_is_not_folded():
    model = Shared()
    for norm in (model.norm, model.norm2):
        norm.running_mean.uniform_(-1, 1)
        norm.running_var.uniform_(0.5, 2)
    model.eval()
    assert conv_norm_pairs(model) == [("conv2", "norm2")]
    fused = fused_for_inference(model)
    assert isinstance(fused.norm, nn.BatchNorm2d) and isinstance(fused.norm2, nn.Identity)
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model(x), rtol=1e-4, atol=1e-5)


def test_sync_batchnorm_keeps_the_activation_of_timms_norm_layers():
    model = sync_batchnorm(build_model(model_config("test_efficientnet", 3, 2, 0)))
    norms = [m for m in model.encoder.modules() if isinstance(m, nn.SyncBatchNorm)]
    assert norms and all(hasattr(m, "act") for m in norms if "Act" in type(m).__name__)
    assert not any(type(m) is nn.BatchNorm2d for m in model.modules())


def test_a_config_without_architecture_is_the_unet_of_checkpoints_written_before():
    config = {"in_channels": 3, "num_classes": 2, "base_channels": 4}
    torch.manual_seed(0)
    state = UNet(**config).state_dict()
    model = model_from_checkpoint({"model": state, "model_config": config}, "old.pth")
    assert isinstance(model, UNet) and torch.equal(model.outc.weight, state["outc.weight"])


def test_an_unknown_encoder_or_architecture_is_a_user_error():
    with pytest.raises(UserError, match=r"--encoder resnet34x is not a timm model \(close: resnet34"):
        build_model(model_config("resnet34x", 3, 2, 0))
    with pytest.raises(UserError, match="architecture 'segformer' is not known"):
        build_model({"architecture": "segformer", "in_channels": 3, "num_classes": 2})


# Weights


def classifier_state(encoder, seed=1):
    """A state dict of timm's whole classification model (the head included), as timm publishes one."""
    torch.manual_seed(seed)
    return timm.create_model(encoder).state_dict()


def test_file_weights_load_into_the_encoder_and_the_head_is_left_out(tmp_path):
    state = classifier_state("test_efficientnet")
    torch.save(state, tmp_path / "weights.pth")
    model = build_model(model_config("test_efficientnet", 3, 2, 0))
    decoder_before = {k: v.clone() for k, v in model.decoder.state_dict().items()}
    assert load_encoder_weights(model, str(tmp_path / "weights.pth")) == str(tmp_path / "weights.pth")
    for key, value in model.encoder.state_dict().items():
        assert torch.equal(value, state[key]), key
    for key, value in model.decoder.state_dict().items():
        assert torch.equal(value, decoder_before[key]), key


def test_one_channel_weights_are_the_sum_of_the_rgb_filters(tmp_path):
    state = classifier_state("test_resnet")
    save_file(state, tmp_path / "weights.safetensors")
    model = build_model(model_config("test_resnet", 1, 2, 0))
    load_encoder_weights(model, str(tmp_path / "weights.safetensors"))
    first = model.encoder.conv1[0].weight  # test_resnet's deep stem: conv1 is a Sequential
    torch.testing.assert_close(first, state["conv1.0.weight"].sum(1, keepdim=True))
    assert first_conv_adaptation(1) == "the encoder's first convolution takes the sum of its RGB filters"


def test_four_band_weights_repeat_the_rgb_filters_scaled_by_three_quarters(tmp_path):
    state = classifier_state("test_resnet")
    save_file(state, tmp_path / "weights.safetensors")
    model = build_model(model_config("test_resnet", 4, 2, 0))
    load_encoder_weights(model, str(tmp_path / "weights.safetensors"))
    rgb = state["conv1.0.weight"]
    expected = torch.cat([rgb, rgb[:, :1]], dim=1) * 3 / 4  # R, G, B, then R again
    torch.testing.assert_close(model.encoder.conv1[0].weight, expected)
    assert "repeated over the 4 channels, scaled by 3/4" in first_conv_adaptation(4)


def test_weights_of_another_model_are_refused_naming_the_file(tmp_path):
    torch.save(classifier_state("test_resnet"), tmp_path / "resnet.pth")
    model = build_model(model_config("test_efficientnet", 3, 2, 0))
    with pytest.raises(UserError, match=r"resnet\.pth does not fit timm's test_efficientnet: \d+ tensor"):
        load_encoder_weights(model, str(tmp_path / "resnet.pth"))
    with pytest.raises(UserError, match="not found"):
        load_encoder_weights(model, str(tmp_path / "missing.pth"))


def seed_hub_cache(cache, repo, state):
    """The Hugging Face cache as huggingface_hub leaves it after a download of `repo`'s safetensors."""
    folder = cache / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("0" * 40)
    snapshot = folder / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    save_file(state, snapshot / "model.safetensors")
    return snapshot / "model.safetensors"


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """An empty Hugging Face cache in tmp_path, and the hub unreachable (HF_HUB_OFFLINE)."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def test_imagenet_weights_come_from_a_pre_seeded_cache_with_the_hub_offline(offline_hub):
    state = classifier_state("test_resnet")
    path = seed_hub_cache(offline_hub, REPOS["test_resnet"], state)
    model = build_model(model_config("test_resnet", 3, 2, 0))
    assert load_encoder_weights(model, "imagenet") == str(path)
    assert torch.equal(model.encoder.conv1[0].weight, state["conv1.0.weight"])


def test_imagenet_weights_neither_cached_nor_reachable_name_the_cache_and_the_ways_out(offline_hub):
    model = build_model(model_config("test_resnet", 3, 2, 0))
    with pytest.raises(UserError) as error:
        load_encoder_weights(model, "imagenet")
    message = str(error.value)
    ways_out = ("--encoder_weights FILE", "--encoder_weights none")
    for fragment in (REPOS["test_resnet"], str(offline_hub), *ways_out):
        assert fragment in message


def test_the_encoder_has_its_own_learning_rate_and_decay_stays_off_norms_and_biases():
    model = build_model(model_config("test_resnet", 3, 2, 0))
    args = argparse.Namespace(lr=1e-3, encoder_lr=0.1, weight_decay=1e-4, optimizer="adamw", momentum=0.9)
    groups = get_optimizer(model, args).param_groups
    settings = [(g["lr"], g["weight_decay"]) for g in groups]
    assert settings == [(1e-3, 1e-4), (1e-3, 0.0), (1e-4, 1e-4), (1e-4, 0.0)]
    encoder = {id(p) for p in model.encoder.parameters()}
    assert {id(p) for g in groups[2:] for p in g["params"]} == encoder
    assert all(p.ndim == 1 for g in groups[1::2] for p in g["params"])
    unet = get_optimizer(build_model(model_config("unet", 3, 2, 4)), args).param_groups
    assert len(unet) == 2  # a U-Net's checkpoints keep the optimiser state they had


# Whole runs


def offline_env(cache):
    return {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}


@pytest.mark.slow
@pytest.mark.parametrize("encoder", FAMILIES)
def test_an_encoder_run_trains_evaluates_tiles_predicts_and_exports_offline(tmp_path, encoder):
    data = plain_layout(tmp_path / "data", {"train": 8, "val": 3})  # 8-bit RGB, 5 classes
    env = offline_env(tmp_path / "empty-hub")
    trained = run_script(
        *main_command(
            data,
            tmp_path,
            "--encoder",
            encoder,
            "--encoder_weights",
            "none",
            "--epochs",
            "1",
            "--batch_size",
            "2",
        ),
        env=env,
    )
    assert trained.returncode == 0, trained.stderr
    assert f"model: {encoder} U-Net, its encoder started from random weights" in trained.stdout
    checkpoint = tmp_path / "exp" / "run" / "last.pth"
    assert torch.load(checkpoint, weights_only=True)["model_config"]["encoder"] == encoder

    def mean_iou(*extra):
        evaluated = run_script(
            "main.py", "--data_dir", str(data), "--resume", str(checkpoint), "--eval_only", *extra, env=env
        )
        assert evaluated.returncode == 0, evaluated.stderr
        return last_json(evaluated.stdout)["mean_iou"]

    whole, tiled = mean_iou(), mean_iou("--tile", "64", "--tta")
    assert 0 <= whole <= 1 and 0 <= tiled <= 1
    images = data / "images"
    predicted = run_script(
        "tools/predict.py",
        "--checkpoint",
        str(checkpoint),
        "--input",
        str(images),
        "--output",
        str(tmp_path / "out"),
        "--tile",
        "64",
        env=env,
    )
    assert predicted.returncode == 0, predicted.stderr
    for image in images.iterdir():
        mask = np.array(Image.open(tmp_path / "out" / f"{image.stem}.png"))
        assert mask.shape == (48, 64) and mask.max() < 5
    exported = run_script(
        "tools/export.py",
        "--checkpoint",
        str(checkpoint),
        "--format",
        "pt2",
        "--output",
        str(tmp_path / "model.pt2"),
        env=env,
    )
    assert exported.returncode == 0, exported.stderr
    from checkpoints import load_model
    from inference import band_logits

    model, *_, fmt = load_model(checkpoint, torch.device("cpu"))
    pixels = torch.randint(0, 256, (1, 3, 53, 70), dtype=torch.uint8)
    expected = next(band_logits(model, pixels, torch.device("cpu"), image_format=fmt))[2]
    graph = torch.export.load(tmp_path / "model.pt2").module()
    torch.testing.assert_close(graph(pixels), expected, atol=1e-4, rtol=0)
    onnxruntime = pytest.importorskip("onnxruntime")
    onnx_path = tmp_path / "m.onnx"
    exported = run_script(
        "tools/export.py", "--checkpoint", str(checkpoint), "--output", str(onnx_path), env=env
    )
    assert exported.returncode == 0, exported.stderr
    (logits,) = onnxruntime.InferenceSession(onnx_path).run(None, {"images": pixels.numpy()})
    # within 1e-4 of the logits' scale: ConvNeXt's LayerNorm rounds differently in onnxruntime
    scale = max(1.0, expected.abs().max().item())
    np.testing.assert_allclose(logits, expected.numpy(), atol=1e-4 * scale, rtol=0)


@pytest.mark.slow
def test_the_imagenet_default_trains_from_a_pre_seeded_cache_and_stops_clearly_without_one(tmp_path):
    data = plain_layout(tmp_path / "data", {"train": 8, "val": 2})
    empty = tmp_path / "empty-hub"
    empty.mkdir()
    refused = run_script(
        *main_command(data, tmp_path, "--encoder", "test_resnet", name="refused"), env=offline_env(empty)
    )
    assert_user_error(refused, "are not in the cache", str(empty), "--encoder_weights FILE")
    assert not (tmp_path / "exp" / "refused").exists() and not (tmp_path / "tb" / "refused").exists()

    cache = tmp_path / "hub"
    path = seed_hub_cache(cache, REPOS["test_resnet"], classifier_state("test_resnet"))
    trained = run_script(
        *main_command(data, tmp_path, "--encoder", "test_resnet", "--epochs", "1"), env=offline_env(cache)
    )
    assert trained.returncode == 0, trained.stderr
    assert f"its encoder started from pretrained weights from {path}" in trained.stdout
    assert "images: 8-bit RGB, the mean and std test_resnet was pretrained with" in trained.stdout
    image = torch.load(tmp_path / "exp" / "run" / "last.pth", weights_only=True)["image"]
    assert image["mean"] == [0.5, 0.5, 0.5]  # test_resnet's own, not ImageNet's


@pytest.mark.slow
@pytest.mark.parametrize("kind, channels", [("grey16", 1), ("bands4", 4)])
def test_a_one_channel_and_a_four_band_set_train_with_an_encoder(tmp_path, kind, channels):
    data = scientific_layout(tmp_path / "data", kind)
    torch.save(classifier_state("test_efficientnet"), tmp_path / "weights.pth")
    trained = run_script(
        *main_command(
            data,
            tmp_path,
            "--encoder",
            "test_efficientnet",
            "--encoder_weights",
            str(tmp_path / "weights.pth"),
            "--epochs",
            "1",
            "--batch_size",
            "2",
        )
    )
    assert trained.returncode == 0, trained.stderr
    assert f"images: {channels} channel(s)" in trained.stdout
    images_line = next(line for line in trained.stdout.splitlines() if line.startswith("images: "))
    assert images_line.endswith(first_conv_adaptation(channels)), images_line
    state = torch.load(tmp_path / "exp" / "run" / "last.pth", weights_only=True)
    assert state["model"]["encoder.conv_stem.weight"].shape[1] == channels
    assert json.dumps(state["model_config"]) and state["model_config"]["in_channels"] == channels


def encoder_run(data, tmp_path, *extra, name="run"):
    """main.py's arguments for a small run of test_resnet from random weights."""
    encoder = ["--encoder", "test_resnet", "--encoder_weights", "none", "--batch_size", "2"]
    return main_command(data, tmp_path, *encoder, *extra, name=name)


@pytest.mark.slow
def test_an_encoder_run_stopped_by_sigterm_resumes_to_the_same_weights(tmp_path):
    data = plain_layout(tmp_path / "data", {"train": 8, "val": 3})
    # 20 steps an epoch; the encoder's own rate must come back with the optimizer's state
    slower = ["--deterministic", "--min_epoch_images", "40", "--encoder_lr", "0.1"]
    whole = run_script(*encoder_run(data, tmp_path, *slower, name="whole"))
    assert whole.returncode == 0, whole.stderr

    process = start_until_progress_in_epoch(encoder_run(data, tmp_path, *slower, name="term"), epoch=2)
    assert process.poll() is None, "the run ended before it could be stopped in epoch 2"
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr[-3000:]
    last = tmp_path / "exp" / "term" / "last.pth"
    stopped = torch.load(last, weights_only=True)
    assert stopped["epoch"] == 1 and 0 < stopped["epoch_step"] <= 20

    resumed = run_script(*encoder_run(data, tmp_path, *slower, "--resume", "auto", name="term"))
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming in epoch 2 after its step {stopped['epoch_step']}" in resumed.stdout
    assert_same_weights(tmp_path / "exp" / "whole" / "last.pth", last)


@pytest.mark.slow
def test_torchrun_trains_an_encoder_and_logs_the_numbers_of_the_model_it_saves(tmp_path):
    data = plain_layout(tmp_path / "data", {"train": 8, "val": 3})
    torchrun = [*TORCHRUN[:-2], "--master_port", "29523"]  # a port of its own, as each torchrun test
    command = [*torchrun, *encoder_run(data, tmp_path, "--epochs", "1", name="ddp")]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = tmp_path / "exp" / "ddp" / "last.pth"
    assert torch.load(checkpoint, weights_only=True)["step"] == 8 // (2 * 2)
    logged = json.loads((tmp_path / "exp" / "ddp" / "metrics.jsonl").read_text().splitlines()[-1])
    saved = run_script("main.py", "--data_dir", str(data), "--resume", str(checkpoint), "--eval_only")
    assert saved.returncode == 0, saved.stderr
    assert logged["mean_iou"] == last_json(saved.stdout)["mean_iou"]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler")
def test_a_compiled_encoder_run_saves_the_plain_model(tmp_path):
    data = plain_layout(tmp_path / "data", {"train": 8, "val": 3})
    trained = run_script(*encoder_run(data, tmp_path, "--epochs", "1", "--compile"), timeout=600)
    assert trained.returncode == 0, trained.stderr[-3000:]
    checkpoint = tmp_path / "exp" / "run" / "last.pth"
    model = torch.load(checkpoint, weights_only=True)["model"]
    assert not any(key.startswith("_orig_mod") for key in model) and "encoder.conv1.0.weight" in model
    logged = json.loads((tmp_path / "exp" / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    evaluated = run_script("main.py", "--data_dir", str(data), "--resume", str(checkpoint), "--eval_only")
    assert evaluated.returncode == 0, evaluated.stderr
    assert logged["mean_iou"] == pytest.approx(last_json(evaluated.stdout)["mean_iou"], abs=1e-6)
