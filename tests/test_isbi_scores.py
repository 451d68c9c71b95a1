"""lab/isbi_scores.py: the ISBI 2012 figures of docs/results/isbi2012.md, from 0/255 mask PNGs."""

import json

import numpy as np
import pytest
from PIL import Image

from lab.isbi_scores import scores
from tests.helpers import run_script


def cells(height=40, width=40, walls=(13, 26)):
    """True = cell, False = membrane: a grid of membrane lines cutting the slice into cells."""
    cell = np.ones((height, width), dtype=bool)
    for w in walls:
        cell[w, :] = cell[:, w] = False
    return cell


def test_a_perfect_prediction_scores_no_error():
    truth = [cells(), cells(walls=(10, 30))]
    result = scores(truth, truth)
    assert result["membrane_iou"] == result["membrane_dice"] == 1.0
    assert result["pixel_error"] == 0.0 and result["adapted_rand_error"] == pytest.approx(0.0, abs=1e-12)


def test_a_broken_membrane_merges_cells_and_raises_the_rand_error_more_than_the_pixel_error():
    truth = cells()
    broken = truth.copy()
    broken[13, :] = True  # one membrane line missed: cells above and below it merge
    result = scores([broken], [truth])
    membrane = ~truth
    assert result["pixel_error"] == pytest.approx(40 / 1600)  # the 40 pixels of row 13
    missed = membrane.sum() - (~broken).sum()
    assert result["membrane_iou"] == pytest.approx((~broken).sum() / membrane.sum())
    assert result["membrane_dice"] == pytest.approx(2 * (~broken).sum() / ((~broken).sum() + membrane.sum()))
    assert missed == 40 and result["adapted_rand_error"] > 0.2 > result["pixel_error"]


def test_the_command_reads_0_255_pngs_and_prints_json(tmp_path):
    for folder in ("pred", "labels"):
        (tmp_path / folder).mkdir()
    for k in range(2):
        Image.fromarray(cells().astype(np.uint8) * 255).save(tmp_path / "labels" / f"{k}.png")
        Image.fromarray(cells(walls=(13, 27)).astype(np.uint8) * 255).save(tmp_path / "pred" / f"{k}.png")
    result = run_script(
        "lab/isbi_scores.py", "--pred", str(tmp_path / "pred"), "--labels", str(tmp_path / "labels"),
        "--ids", "0", "1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout.splitlines()[-1])
    assert printed["slices"] == ["0", "1"] and 0 < printed["pixel_error"] < 0.1
    assert len(printed["adapted_rand_error_per_slice"]) == 2
