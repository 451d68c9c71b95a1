"""checkpoints.py: loading with pickle disabled, the class check, and the U-Net a checkpoint describes."""

import numpy as np
import pytest
import torch

from checkpoints import (
    check_checkpoint_classes,
    checkpoint_classes,
    checkpoint_values,
    load_checkpoint,
    load_model,
    model_from_checkpoint,
)
from layouts import VOC_CLASS_NAMES, describe
from model import UNet
from tests.helpers import binary_layout
from utils import UserError

CONFIG = {"in_channels": 3, "num_classes": 2, "base_channels": 4}


def written(path, **extra):
    torch.manual_seed(0)
    torch.save({"model": UNet(**CONFIG).state_dict(), "model_config": CONFIG, **extra}, path)
    return path


def test_a_checkpoint_loads_its_model_classes_and_values(tmp_path):
    classes = {"names": ["membrane", "cell"], "colors": [[0, 0, 0], [128, 0, 0]], "values": [0, 255]}
    path = written(tmp_path / "best.pth", classes=classes)
    checkpoint = load_checkpoint(path)
    names, colors = checkpoint_classes(checkpoint)
    assert (
        names == ("membrane", "cell") and colors.shape == (2, 3) and checkpoint_values(checkpoint) == (0, 255)
    )
    model, _, _, values, _ = load_model(path, torch.device("cpu"))
    assert values == (0, 255) and not model.training


def test_an_old_checkpoint_without_classes_is_voc_with_index_values(tmp_path):
    checkpoint = load_checkpoint(written(tmp_path / "old.pth"))
    assert checkpoint_classes(checkpoint)[0] == VOC_CLASS_NAMES
    assert checkpoint_values(checkpoint) == tuple(range(21))


def test_a_file_that_is_no_checkpoint_or_pickles_code_is_refused(tmp_path):
    (tmp_path / "notes.pth").write_text("hello")
    with pytest.raises(UserError, match="cannot load checkpoint"):
        load_checkpoint(tmp_path / "notes.pth")
    torch.save({"model": {}, "model_config": CONFIG, "bad": np.float64}, tmp_path / "pickled.pth")  # a class
    with pytest.raises(UserError, match="cannot load checkpoint"):
        load_checkpoint(tmp_path / "pickled.pth")


def test_weights_that_do_not_fit_their_config_name_the_file(tmp_path):
    path = written(tmp_path / "best.pth")
    checkpoint = load_checkpoint(path)
    checkpoint["model_config"] = {**CONFIG, "base_channels": 8}
    with pytest.raises(UserError, match=r"best\.pth does not fit the model it describes"):
        model_from_checkpoint(checkpoint, path)


def test_other_mask_values_for_the_same_class_names_are_refused(tmp_path):
    layout = describe(binary_layout(tmp_path / "data", count=3, classes="membrane\ncell\n"))  # 0 and 255
    classes = {"names": ["membrane", "cell"], "colors": [[0, 0, 0], [128, 0, 0]], "values": [0, 1]}
    checkpoint = load_checkpoint(written(tmp_path / "best.pth", classes=classes))
    with pytest.raises(
        UserError, match=r"trained with mask values 0 -> membrane, 1 -> cell but .* 255 -> cell"
    ):
        check_checkpoint_classes(checkpoint, tmp_path / "best.pth", layout)
