"""tools/export.py: the exported graph takes uint8 images of any size and returns the logits that PyTorch
computes, with the classes in its metadata; it runs without this repository (onnxruntime,
torch.export.load), and is made on PyTorch's supported paths without a deprecation warning."""

import json

import numpy as np
import pytest
import torch

from checkpoints import load_model
from images import ImageFormat
from inference import band_logits
from model import UNet
from tests.helpers import run_script

TOLERANCE = 1e-4  # float32 logits of an exported graph against PyTorch's, absolute
CLASSES = {"names": ["sky", "road", "car"], "colors": [[128, 128, 128], [128, 64, 128], [64, 0, 128]]}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("export") / "best.pth"
    config = {"in_channels": 3, "num_classes": 3, "base_channels": 4}
    torch.save({"model": UNet(**config).state_dict(), "model_config": config, "classes": CLASSES}, path)
    return path


def pytorch_logits(checkpoint, images):
    model, *_ = load_model(checkpoint, torch.device("cpu"))
    return next(band_logits(model, torch.from_numpy(images), torch.device("cpu")))[2].numpy()


def images_of(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.mark.slow
def test_onnx_matches_pytorch_on_any_size_and_carries_the_classes(checkpoint, tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    result = run_script(
        "tools/export.py", "--checkpoint", str(checkpoint), "--output", str(tmp_path / "m.onnx")
    )
    assert result.returncode == 0, result.stderr
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"))
    for shape in [(1, 3, 37, 129), (2, 3, 64, 48)]:
        images = images_of(shape)
        (logits,) = session.run(None, {"images": images})
        assert logits.shape == (shape[0], 3, *shape[2:])
        np.testing.assert_allclose(logits, pytorch_logits(checkpoint, images), atol=TOLERANCE, rtol=0)
    metadata = session.get_modelmeta().custom_metadata_map
    assert json.loads(metadata["class_names"]) == CLASSES["names"]
    assert json.loads(metadata["colors"]) == CLASSES["colors"]


@pytest.mark.slow
def test_an_exported_program_matches_pytorch_on_any_size_and_carries_the_classes(checkpoint, tmp_path):
    output = tmp_path / "m.pt2"
    result = run_script(
        *"tools/export.py --format pt2 --checkpoint".split(), str(checkpoint), "--output", str(output)
    )
    assert result.returncode == 0, result.stderr
    extra = {"classes.json": ""}
    program = torch.export.load(str(output), extra_files=extra)
    for shape, seed in [((1, 3, 53, 70), 1), ((3, 3, 16, 129), 2)]:
        images = images_of(shape, seed=seed)
        logits = program.module()(torch.from_numpy(images)).detach().numpy()
        np.testing.assert_allclose(logits, pytorch_logits(checkpoint, images), atol=TOLERANCE, rtol=0)
    assert json.loads(json.loads(extra["classes.json"])["class_names"]) == CLASSES["names"]


@pytest.mark.slow
@pytest.mark.parametrize("file_format", ["onnx", "pt2"])
def test_export_raises_no_deprecation_warning(checkpoint, tmp_path, file_format):
    pytest.importorskip("onnxscript")
    result = run_script(
        "-W", "error::DeprecationWarning", "-W", "error::FutureWarning", "tools/export.py", "--format",
        file_format, "--checkpoint", str(checkpoint), "--output", str(tmp_path / f"m.{file_format}"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "deprecated" not in result.stderr.lower()


def test_an_older_torch_is_told_which_version_export_needs(checkpoint, tmp_path, monkeypatch):
    from tools import export as export_tool
    from utils import UserError

    monkeypatch.setattr(export_tool.torch, "__version__", torch.torch_version.TorchVersion("2.12.0"))
    message = r"needs torch 2\.14 or newer .* this is torch 2\.12\.0: pip install -U torch"
    with pytest.raises(UserError, match=message):
        export_tool.export(checkpoint, tmp_path / "m.pt2", "pt2")
    assert not (tmp_path / "m.pt2").exists()


@pytest.mark.slow
@pytest.mark.parametrize("file_format", ["onnx", "pt2"])
def test_a_model_of_resized_images_exports_the_resize(tmp_path, file_format):
    torch.manual_seed(0)
    path = tmp_path / "best.pth"
    config = {"in_channels": 3, "num_classes": 3, "base_channels": 4}
    image = ImageFormat(size=32).as_dict()
    torch.save(
        {"model": UNet(**config).state_dict(), "model_config": config, "classes": CLASSES, "image": image},
        path,
    )
    output = tmp_path / f"m.{file_format}"
    result = run_script(
        "tools/export.py", "--format", file_format, "--checkpoint", str(path), "--output", str(output)
    )
    assert result.returncode == 0, result.stderr
    if file_format == "onnx":
        session = pytest.importorskip("onnxruntime").InferenceSession(str(output))
        run = lambda images: session.run(None, {"images": images})[0]  # noqa: E731
    else:
        program = torch.export.load(str(output)).module()
        run = lambda images: program(torch.from_numpy(images)).detach().numpy()  # noqa: E731
    cpu = torch.device("cpu")
    model, *_, fmt = load_model(path, cpu)
    for shape in [(1, 3, 37, 129), (2, 3, 64, 48)]:
        images = images_of(shape)
        expected = next(band_logits(model, torch.from_numpy(images), cpu, image_format=fmt))[2]
        np.testing.assert_allclose(run(images), expected.numpy(), atol=TOLERANCE, rtol=0)
