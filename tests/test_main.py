import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from dataset import SegmentationDataset
from layouts import VOC_CLASS_NAMES as CLASS_NAMES
from layouts import describe
from main import DEMO_RECIPE, parse_args, run_header
from model import UNet
from tests.helpers import (
    ROOT,
    TORCHRUN,
    assert_same_weights,
    assert_user_error,
    copy_tree,
    last_json,
    main_command,
    plain_layout,
    run_script,
    start_until_progress_in_epoch,
    train,
)
from utils import Runtime


def start_until_first_checkpoint(command, last, **popen_options):
    """Start main.py in the background; return once it has written `last` (or has ended)."""
    process = subprocess.Popen([sys.executable, *command], cwd=ROOT, **popen_options)
    deadline = time.time() + 120
    while not last.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    return process


@pytest.fixture(scope="module")
def finished(tmp_path_factory, prepared_demo):
    """One small finished run, shared by the tests that only read its outputs."""
    data = prepared_demo
    out = tmp_path_factory.mktemp("finished")
    result = train(data, out)
    assert result.returncode == 0, result.stderr
    return data, out, result


@pytest.mark.slow
def test_run_writes_checkpoints_and_one_metrics_line_per_validation(finished):
    _, out, result = finished
    run_dir = out / "exp" / "run"
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2]
    assert set(lines[0]["iou"]) == set(CLASS_NAMES) and 0 <= lines[0]["mean_iou"] <= 1
    for name in ("last.pth", "best.pth"):
        checkpoint = torch.load(run_dir / name, weights_only=True)  # no pickle needed
        assert checkpoint["model_config"]["base_channels"] == 4
    last = torch.load(run_dir / "last.pth", weights_only=True)
    assert last["epoch"] == 2 and last["step"] == 12
    assert "best val mean IoU" in result.stdout and str(run_dir) in result.stdout


@pytest.mark.slow
def test_tensorboard_has_every_tag_of_the_spec(finished):
    _, out, _ = finished
    events = EventAccumulator(str(out / "tb" / "run"), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {
        "train/loss",
        "train/lr",
        "val/loss",
        "val/mean_iou",
        "val/pixel_accuracy",
        "val/mean_accuracy",
        "val/mean_dice",
    } <= scalars
    for metric in ("iou", "dice"):
        assert f"val/{metric}/background" in scalars and all(
            t.split("/")[-1] in CLASS_NAMES for t in scalars if f"/{metric}/" in t
        )
    assert events.Tags()["images"] == ["val/predictions"]
    assert [e.step for e in events.Scalars("val/mean_iou")] == [6, 12]
    assert len(events.Scalars("train/loss")) == 6  # every --print_freq 2 steps


@pytest.mark.slow
def test_run_figures_are_drawn_from_the_event_files_and_checkpoint(finished, tmp_path):
    pytest.importorskip("matplotlib")
    from tools.figures import draw_curves, draw_predictions, read_scalars

    data, out, _ = finished
    scalars = read_scalars(out / "tb" / "run")
    assert len(scalars["val/mean_iou"][0]) == 2
    draw_curves(scalars, tmp_path / "curves.png", "test")
    draw_predictions(out / "exp/run/best.pth", str(data), tmp_path / "predictions.png", count=2)
    assert (
        Image.open(tmp_path / "curves.png").width > 400
        and Image.open(tmp_path / "predictions.png").height > 200
    )


@pytest.mark.slow
def test_eval_only_prints_the_metrics_that_were_logged(finished):
    data, out, _ = finished
    logged = json.loads((out / "exp/run/metrics.jsonl").read_text().splitlines()[-1])
    result = run_script(
        *"main.py --eval_only --num_workers 0 --data_dir".split(), str(data),
        "--resume", str(out / "exp/run/last.pth"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    printed = last_json(result.stdout)
    assert set(printed) == {"mean_iou", "pixel_accuracy", "mean_accuracy", "iou", "mean_dice", "dice"}
    assert list(printed) == ["mean_iou", "pixel_accuracy", "mean_accuracy", "iou", "mean_dice", "dice"]
    assert list(printed["iou"]) == list(printed["dice"]) == list(CLASS_NAMES)
    for key in ("mean_iou", "pixel_accuracy", "mean_accuracy", "mean_dice"):
        assert printed[key] == pytest.approx(logged[key], abs=1e-9)


@pytest.mark.slow
def test_eval_only_in_tiles_is_close_to_whole_images_and_tta_changes_the_predictions(finished):
    data, out, _ = finished

    def mean_iou(*flags):
        result = run_script(
            *"main.py --num_workers 0 --eval_only --data_dir".split(), str(data),
            "--resume", str(out / "exp/run/last.pth"), *flags,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return last_json(result.stdout)["mean_iou"]

    whole, tiled, augmented = mean_iou(), mean_iou("--tile", "64"), mean_iou("--tta", "--tile", "64")
    assert abs(tiled - whole) < 0.02  # blended tiles: the same predictions but near tile borders
    assert augmented != tiled and abs(augmented - tiled) < 0.1


@pytest.mark.slow
def test_resume_after_sigkill_in_epoch_two_gives_the_same_weights(tmp_path, prepared_demo):
    data = prepared_demo
    slower = "--deterministic --batch_size 2 --base_channels 8 --crop_size 64".split()  # 12 steps an epoch
    whole = train(data, tmp_path, *slower, name="whole")
    assert whole.returncode == 0, whole.stderr

    last = tmp_path / "exp/killed/last.pth"
    process = start_until_progress_in_epoch(main_command(data, tmp_path, *slower, name="killed"), epoch=2)
    assert process.poll() is None, "the run ended before it could be killed in epoch 2"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert torch.load(last, weights_only=True)["epoch"] == 1

    resumed = train(data, tmp_path, *slower, "--resume", "auto", name="killed")
    assert resumed.returncode == 0, resumed.stderr
    a = torch.load(tmp_path / "exp/whole/last.pth", weights_only=True)
    b = torch.load(last, weights_only=True)
    assert b["epoch"] == 2 and b["step"] == a["step"]
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    lines = (tmp_path / "exp/killed/metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]


@pytest.mark.slow
def test_sigterm_mid_epoch_writes_the_step_and_resuming_gives_the_same_weights(tmp_path, prepared_demo):
    data = prepared_demo
    slower = "--deterministic --batch_size 2 --base_channels 8 --crop_size 64".split()  # 12 steps an epoch
    whole = train(data, tmp_path, *slower, name="whole")
    assert whole.returncode == 0, whole.stderr

    process = start_until_progress_in_epoch(main_command(data, tmp_path, *slower, name="term"), epoch=2)
    assert process.poll() is None, "the run ended before it could be stopped in epoch 2"
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143
    assert b"stopped by SIGTERM" in stderr and b"--resume auto" in stderr and b"Traceback" not in stderr
    last = tmp_path / "exp/term/last.pth"
    stopped = torch.load(last, weights_only=True)
    assert stopped["epoch"] == 1 and 0 < stopped["epoch_step"] <= 12  # in epoch 2, at the step in progress

    resumed = train(data, tmp_path, *slower, "--resume", "auto", name="term")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming in epoch 2 after its step {stopped['epoch_step']}" in resumed.stdout
    assert_same_weights(tmp_path / "exp/whole/last.pth", last)
    lines = (tmp_path / "exp/term/metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]


@pytest.mark.slow
def test_save_every_bounds_what_sigkill_loses_and_the_resume_is_exact(tmp_path, prepared_demo):
    data = prepared_demo
    # 100 steps an epoch: on a fast CPU the demo's 12 (24 images at batch 2) end within one timer period
    slower = "--deterministic --batch_size 2 --base_channels 8 --crop_size 64 --epochs 1".split()
    slower += ["--min_epoch_images", "200"]
    whole = train(data, tmp_path, *slower, name="whole")
    assert whole.returncode == 0, whole.stderr

    last = tmp_path / "exp/killed/last.pth"
    command = main_command(data, tmp_path, *slower, "--save_every", "0.05s", name="killed")
    process = start_until_first_checkpoint(
        command, last, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    process.send_signal(signal.SIGKILL)
    process.wait()
    saved = torch.load(last, weights_only=True)
    assert saved["epoch"] == 0 and saved["epoch_step"] > 0  # a step checkpoint, written on the timer
    resumed = train(data, tmp_path, *slower, "--resume", "auto", name="killed")
    assert resumed.returncode == 0, resumed.stderr
    assert_same_weights(tmp_path / "exp/whole/last.pth", last)


@pytest.mark.slow
def test_torchrun_training_logs_the_numbers_of_the_model_it_saves(tmp_path, prepared_demo):
    command = main_command(prepared_demo, tmp_path, *"--epochs 1 --batch_size 2".split(), name="ddp")
    result = subprocess.run([*TORCHRUN, *command], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert torch.load(tmp_path / "exp/ddp/last.pth", weights_only=True)["step"] == 24 // (2 * 2)
    logged = json.loads((tmp_path / "exp/ddp/metrics.jsonl").read_text().splitlines()[-1])
    saved = run_script(
        *"main.py --num_workers 0 --eval_only --data_dir".split(), str(prepared_demo),
        "--resume", str(tmp_path / "exp/ddp/last.pth"),
    )  # fmt: skip
    assert saved.returncode == 0, saved.stderr
    assert logged["mean_iou"] == last_json(saved.stdout)["mean_iou"]  # rank 0's BatchNorm statistics


def worker_pid(run_name: str, rank: int) -> int | None:
    """The pid of the main.py process of `rank` in run `run_name` (read from /proc), or None."""
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"main.py" in cmdline and run_name.encode() in cmdline and f"RANK={rank}".encode() in environ:
            return int(entry.name)
    return None


@pytest.mark.slow
def test_torchrun_restarts_a_group_whose_worker_died_and_it_continues_by_itself(tmp_path, prepared_demo):
    last = tmp_path / "exp/elastic/last.pth"
    command = main_command(prepared_demo, tmp_path, *"--epochs 3 --batch_size 2".split(), name="elastic")
    restarts = [*TORCHRUN[:-2], "--master_port", "29519", "--max-restarts", "1"]
    process = subprocess.Popen(
        [*restarts, *command], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 120
    while not last.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)  # epoch 1 is saved: the group is in epoch 2
    pid = worker_pid(str(tmp_path / "exp"), rank=1)
    assert pid is not None and process.poll() is None, "no worker to kill in epoch 2"
    os.kill(pid, signal.SIGKILL)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]
    assert "resuming after epoch" in stdout or "resuming in epoch" in stdout  # no --resume was given
    finished = torch.load(last, weights_only=True)
    assert finished["epoch"] == 3 and finished["step"] == 3 * 24 // (2 * 2)


@pytest.mark.slow
def test_torchrun_evaluation_equals_one_process(finished):
    data, out, _ = finished
    evaluate = [*"main.py --eval_only --num_workers 0 --batch_size 3 --data_dir".split(), str(data)]
    evaluate += ["--resume", str(out / "exp/run/last.pth")]
    single = run_script(*evaluate)
    distributed = subprocess.run(
        [*TORCHRUN, *evaluate], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert single.returncode == 0 and distributed.returncode == 0, distributed.stderr[-3000:]
    one, two = last_json(single.stdout), last_json(distributed.stdout)
    assert one["mean_iou"] == pytest.approx(two["mean_iou"], abs=1e-12)
    assert one["iou"] == two["iou"]


@pytest.mark.slow
def test_demo_flag_generates_prepares_and_trains(tmp_path):
    result = run_script(
        *"main.py --demo --epochs 1 --base_channels 4 --data_dir".split(), str(tmp_path / "data"),
        "--save_dir", str(tmp_path / "exp"), "--tensorboard_dir", str(tmp_path / "tb"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data/demo/VOCdevkit/VOC2012/ImageSets/Segmentation/trainaug.txt").is_file()
    assert (tmp_path / "exp/demo/best.pth").is_file() and (tmp_path / "tb/demo").is_dir()


@pytest.mark.slow
def test_sync_bn_on_a_cpu_exits_2_naming_the_flag(tmp_path, prepared_demo):
    assert_user_error(train(prepared_demo, tmp_path, "--sync_bn"), "--sync_bn")


def test_demo_settings_yield_to_flags_given():
    assert "--crop_size 96" in DEMO_RECIPE.read_text() and parse_args(["--demo"]).crop_size == 96
    args = parse_args(["--demo", "--epochs", "3", "--data_dir", "elsewhere"])
    assert args.epochs == 3 and args.data_dir.replace("\\", "/") == "elsewhere/demo"
    assert parse_args([]).crop_size == 320 and parse_args([]).batch_size == 8


@pytest.mark.slow
def test_missing_data_set_exits_2_pointing_to_tools_voc(tmp_path):
    assert_user_error(train(tmp_path / "nothing", tmp_path), "nothing not found", "tools/voc.py --data_dir")


@pytest.mark.slow
def test_missing_image_exits_2_naming_it(tmp_path, prepared_demo):
    data = copy_tree(prepared_demo, tmp_path / "data")
    image = next((data / "VOCdevkit/VOC2012/JPEGImages").iterdir())
    image.unlink()
    assert_user_error(train(data, tmp_path), str(image))


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["0", "1"])  # the error must come through a loader worker too
def test_unreadable_image_exits_2_naming_it(tmp_path, prepared_demo, workers):
    data = copy_tree(prepared_demo, tmp_path / "data")
    voc = data / "VOCdevkit/VOC2012"
    image = voc / "JPEGImages" / f"{(voc / 'ImageSets/Segmentation/trainaug.txt').read_text().split()[0]}.jpg"
    image.write_bytes(b"garbage")
    assert_user_error(train(data, tmp_path, "--num_workers", workers), str(image))


@pytest.mark.slow
def test_labels_outside_the_classes_exit_2_naming_the_mask(tmp_path, prepared_demo):
    data = copy_tree(prepared_demo, tmp_path / "data")
    voc = data / "VOCdevkit/VOC2012"
    mask_path = (
        voc
        / "SegmentationClassAug"
        / f"{(voc / 'ImageSets/Segmentation/val.txt').read_text().split()[0]}.png"
    )
    mask = np.array(Image.open(mask_path))
    mask[0, 0] = 21
    Image.fromarray(mask, mode="L").save(mask_path)
    assert_user_error(train(data, tmp_path, "--epochs", "1"), str(mask_path), "[21]")


@pytest.mark.slow
def test_bad_resume_path_exits_2(tmp_path, prepared_demo):
    missing = tmp_path / "nope.pth"
    assert_user_error(train(prepared_demo, tmp_path, "--resume", str(missing)), str(missing))
    not_a_checkpoint = tmp_path / "notes.pth"
    not_a_checkpoint.write_text("hello")
    assert_user_error(
        train(prepared_demo, tmp_path, "--resume", str(not_a_checkpoint)),
        str(not_a_checkpoint),
    )


@pytest.mark.slow
def test_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, prepared_demo):
    data = prepared_demo
    assert train(data, tmp_path, "--epochs", "1").returncode == 0
    last = tmp_path / "exp/run/last.pth"
    good = last.read_bytes()
    result = train(data, tmp_path, "--epochs", "1", "--lr", "1e38", "--optimizer", "sgd")
    assert result.returncode == 1
    assert "non-finite loss at epoch 1, step" in result.stderr and "Traceback" not in result.stderr
    assert last.read_bytes() == good


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_keeps_last_pth_whole(tmp_path, prepared_demo):
    data = prepared_demo
    last = tmp_path / "exp/int/last.pth"
    command = main_command(data, tmp_path, "--epochs", "50", name="int")
    process = start_until_first_checkpoint(
        command, last, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "--resume auto" in stderr and "Traceback" not in stderr
    assert torch.load(last, weights_only=True)["epoch"] >= 1


def test_negative_color_jitter_is_refused():
    with pytest.raises(SystemExit):
        parse_args(["--color_jitter", "-0.1"])


def first_train_loss(tensorboard_dir):
    events = EventAccumulator(str(tensorboard_dir), size_guidance={"scalars": 0})
    events.Reload()
    return events.Scalars("train/loss")[0].value


@pytest.mark.slow
def test_class_weights_reach_the_loss(tmp_path, prepared_demo):
    losses = {}
    for weights in ("none", "median_freq", "enet"):  # the same seed: the same weights and first batches
        result = train(prepared_demo, tmp_path, "--epochs", "1", "--class_weights", weights, name=weights)
        assert result.returncode == 0, result.stderr
        losses[weights] = first_train_loss(tmp_path / "tb" / weights)
    assert len(set(losses.values())) == 3, losses  # each weighting changes the loss from the first step


@pytest.mark.parametrize("flag", ["--elastic", "--min_epoch_images"])
def test_negative_augmentation_and_epoch_flags_are_refused(flag, capsys):
    with pytest.raises(SystemExit):
        parse_args([flag, "-1"])
    assert flag in capsys.readouterr().err


@pytest.mark.slow
def test_a_small_data_set_is_repeated_and_the_run_says_so(tmp_path, prepared_demo):
    result = train(prepared_demo, tmp_path, "--epochs", "1", "--min_epoch_images", "50")
    assert result.returncode == 0, result.stderr
    assert (
        "an epoch is 3 passes over the 24 training images (18 steps; --min_epoch_images 50)" in result.stdout
    )
    assert "mask values: class indices, 255 = void" in result.stdout
    assert re.search(r"trainaug pixels: background \d+\.\d%, aeroplane", result.stdout)


def test_a_recipe_file_gives_its_flags_and_the_command_line_overrides_them(tmp_path):
    recipe = tmp_path / "recipe.txt"
    recipe.write_text(
        "# a comment line\n--crop_size 256  # the crop\n--scale 0.75 1.25\n\n--optimizer adamw\n"
    )
    args = parse_args([f"@{recipe}", "--crop_size", "128"])
    assert args.crop_size == 128 and list(args.scale) == [0.75, 1.25] and args.optimizer == "adamw"
    assert parse_args([f"@{recipe}"]).crop_size == 256


@pytest.mark.parametrize("recipe", sorted((ROOT / "recipes").glob("*.txt")), ids=lambda p: p.name)
def test_every_recipe_file_parses(recipe):
    args = parse_args([f"@{recipe}"])
    assert args.data_dir and args.name in (recipe.stem, "unet")  # voc.txt keeps the default run name


def test_each_results_row_names_the_width_and_epochs_of_its_recipe_file():
    readme = (ROOT / "README.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| ") and ".txt`:" in line]
    assert len(rows) >= 5
    for row in rows:
        name = row.split("`recipes/", 1)[1].split("`", 1)[0]
        recipe = parse_args([f"@{ROOT / 'recipes' / name}"])
        if "base channels" in row:
            assert f"{recipe.base_channels} base channels" in row, name
        assert f"{recipe.epochs} epochs" in row, name


def test_the_first_line_says_when_val_images_are_also_trained_on(tmp_path):
    layout = describe(plain_layout(tmp_path / "data", {"train": 3, "val": 2}))
    runtime = Runtime(0, 0, 1, torch.device("cpu"), None, False, 0)
    model = UNet(num_classes=3, base_channels=4)
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "train.txt").write_text("train0\ntrain1\ntrain2\nval0\n")  # everything but val1
    (lists / "val.txt").write_text("val0\nval1\n")
    for given, said in ((layout, ""), (layout.with_split_lists(lists), " (1 of the val")):
        datasets = SegmentationDataset(given, "train"), SegmentationDataset(given, "val", train=False)
        header = run_header("run", given, datasets, tmp_path, runtime, model, None)
        assert f"/ 2 val images{said}" in header
    assert "also trained on: val is no hold-out" in header
