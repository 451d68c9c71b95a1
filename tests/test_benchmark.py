"""lab/benchmark.py runs and reports every setting it was asked for. Timings are not checked here (they
belong to the benchmark itself), only that each figure is there and is a measurement."""

import argparse
import json

import numpy as np
import pytest
from PIL import Image

from lab.benchmark import cpu_runs, running_alone
from tests.helpers import run_script

pytestmark = pytest.mark.slow  # whole runs of the scripts


def last_json(result) -> dict:
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_model_mode_times_every_setting_in_turns():
    command = "lab/benchmark.py model --device cpu --batch_size 2 --crop_size 64 --base_channels 8 "
    command += "--val_size 48 --precision fp32,bf16 --memory_format nchw,channels_last "
    command += "--warmup 1 --steps 1 --rounds 2"
    result = last_json(run_script(*command.split()))
    settings = [row["setting"] for row in result["rows"]]
    assert settings == [
        "fp32 nchw compile=off",
        "fp32 channels_last compile=off",
        "bf16 nchw compile=off",
        "bf16 channels_last compile=off",
    ]
    for row in result["rows"]:
        assert row["images/s"] > 0 and row["ms/step"] > 0
        assert row["GFLOP/img"] > 0  # counted on a real step by torch's FLOP counter
        assert row["MFU %"] == "-" and row["peak GiB"] == "-"  # GPU-only figures
    assert result["rows"][0]["vs first"] == 1.0
    assert [row["setting"] for row in result["validation"]] == [s.split(" compile")[0] for s in settings]
    assert all(row["val images/s"] > 0 for row in result["validation"])


def test_model_mode_times_each_input_channel_count():
    command = "lab/benchmark.py model --device cpu --batch_size 2 --crop_size 64 --base_channels 8 "
    command += "--val_size 48 --precision fp32 --in_channels 3,1 --warmup 1 --steps 1 --rounds 1"
    result = last_json(run_script(*command.split()))
    rows = {row["setting"]: row for row in result["rows"]}
    assert list(rows) == [
        "fp32 channels_last compile=off",
        "fp32 channels_last compile=off, 1 input channel(s)",
    ]
    for row in rows.values():
        assert row["images/s"] > 0 and row["ms/step"] > 0 and row["GFLOP/img"] > 0


def test_model_mode_times_each_encoder_with_its_flops():
    command = "lab/benchmark.py model --device cpu --batch_size 2 --crop_size 64 --base_channels 8 "
    command += "--val_size 64 --precision fp32 --encoder unet,test_resnet --warmup 1 --steps 1 --rounds 1"
    result = last_json(run_script(*command.split()))
    rows = {row["setting"]: row for row in result["rows"]}
    assert list(rows) == ["fp32 channels_last compile=off", "test_resnet fp32 channels_last compile=off"]
    for row in rows.values():
        assert row["images/s"] > 0 and row["GFLOP/img"] > 0
    assert (
        rows["fp32 channels_last compile=off"]["GFLOP/img"]
        != rows["test_resnet fp32 channels_last compile=off"]["GFLOP/img"]
    )
    assert [row["setting"] for row in result["validation"]] == [
        "fp32 channels_last",
        "test_resnet fp32 channels_last",
    ]


def test_predict_mode_reports_the_peak_memory_of_each_setting():
    command = "lab/benchmark.py predict --size 1300 900 --base_channels 4 --classes 3 --amp off bf16"
    result = last_json(run_script(*command.split()))
    assert [row["--amp"] for row in result["rows"]] == ["off", "bf16"]
    for row in result["rows"]:
        assert 0.05 < row["peak GiB"] < 8 and row["seconds"] > 0  # a process's resident set, in GiB


def test_cpu_mode_runs_main_and_the_plain_loop_in_turns():
    # Five whole runs (a warm-up, then two turns of two): the fewest that show the turns and the median.
    command = "lab/benchmark.py cpu --epochs 1 --base_channels 4 --crop_size 32 --repeats 2 --runs fp32,plain"
    result = last_json(run_script(*command.split()))
    rows = result["rows"]
    expected = ("main.py --amp off", "plain loop")
    assert len(rows) == 2
    assert all(row["run"].startswith(start) for row, start in zip(rows, expected, strict=True))
    for row in rows:
        each = [float(s) for s in row["each run"].split()]
        assert len(each) == 2 and min(each) <= row["seconds"] <= max(each)
        assert 0 <= row["final val mean IoU"] <= 1
    assert rows[-1]["speed-up vs plain"] == 1.0


def test_cpu_runs_must_end_with_the_plain_baseline():
    assert cpu_runs("main,workers,fp32,plain") == ["main", "workers", "fp32", "plain"]
    for bad in ("main", "plain,main", "main,gpu,plain", "plain,plain"):
        with pytest.raises(argparse.ArgumentTypeError, match="plain last"):
            cpu_runs(bad)


def test_train_mode_reports_data_end_to_end_and_model():
    command = "lab/benchmark.py train --device cpu --batch_size 2 --crop_size 64 --base_channels 8 "
    command += "--num_workers 1 --images 16 --warmup 1 --steps 2"
    result = last_json(run_script(*command.split()))
    rows = result["rows"]
    assert [row["what"] for row in rows] == [
        "data pipeline alone, per worker",
        "data pipeline alone (1 workers)",
        "end to end (loader + step)",
        "model step alone (synthetic)",
    ]
    assert all(row["images/s"] > 0 for row in rows) and rows[-1]["vs model alone"] == 1.0


def test_a_second_benchmark_exits_instead_of_timing_beside_the_first():
    with running_alone():  # as a benchmark in progress holds it
        result = run_script("lab/benchmark.py", "voc", "--files", "2")
    assert result.returncode == 2 and "another lab/benchmark.py is running" in result.stderr


def test_data_mode_times_the_pipeline_without_and_with_the_microscopy_augmentations():
    result = last_json(run_script(*"lab/benchmark.py data --images 4 --crop_size 64 --repeats 1".split()))
    rows = result["rows"]
    assert [row["pipeline"] for row in rows] == [
        "torchvision-references style",
        "dataset.py",
        "dataset.py --vflip --rot90",
        "dataset.py --elastic 10",
        "dataset.py --vflip --rot90 --elastic 10",
    ]
    assert all(row["images/s per worker"] > 0 for row in rows) and rows[0]["speed-up"] == 1.0


def test_coco_mode_converts_generated_exports_of_real_photographs(tmp_path):
    from tests.helpers import shapes_image

    photos = tmp_path / "photos"
    photos.mkdir()
    for k in range(3):  # stand-ins for the photographs: the benchmark links, never alters them
        Image.fromarray(shapes_image([], np.random.default_rng(k))).save(photos / f"p{k}.png")
    command = f"lab/benchmark.py coco --photos {photos} --images 4 9 --workers 1"
    result = last_json(run_script(*command.split()))
    assert [row["images"] for row in result["rows"]] == [4, 9]
    for row in result["rows"]:
        assert row["images/s"] > 0 and row["peak MB main"] > 0 and row["peak MB worker"] >= 0
