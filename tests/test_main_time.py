"""main.py --time: a run planned to a wall-time budget (timing itself is the benchmark's: lab/benchmark.py
budget), its planned recipe, and a preempted planned run resumed."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import pytest
import torch

from layouts import describe
from main import Command, get_image_format, parse_args, plan_recipe
from tests.helpers import ROOT, run_script
from utils import setup_runtime

# 24 train images / batch 4 = 6 steps an epoch; a 4-channel U-Net on 48-pixel crops: steps of a few
# hundredths of a second, so a budget of seconds holds many epochs.
GIVEN = ["--crop_size", "48", "--base_channels", "4", "--num_workers", "0", "--print_freq", "2"]
GIVEN += ["--min_epoch_images", "0"]


def time_command(data, tmp_path, budget, *extra):
    output = ["--save_dir", str(tmp_path / "exp"), "--tensorboard_dir", str(tmp_path / "tb")]
    return ["main.py", "--data_dir", str(data), "--time", budget, *output, "--name", "timed", *GIVEN, *extra]


def load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.mark.slow
def test_time_without_a_recipe_plans_the_flags_not_given_and_writes_them_as_a_recipe(tmp_path, prepared_demo):
    result = run_script(*time_command(prepared_demo, tmp_path, "15s"))
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "exp" / "timed"
    assert "planned from the data and this machine" in result.stdout
    assert re.search(r"^  --batch_size 4: on cpu$", result.stdout, re.M)
    checkpoint = load(run_dir / "last.pth")
    assert "batch_size" in checkpoint["planned"] and "crop_size" not in checkpoint["planned"]  # given wins
    again = parse_args([f"@{run_dir / 'recipe.txt'}"])
    for dest in ("data_dir", "crop_size", "base_channels", "batch_size", "loss", "lr", "scale", "time"):
        assert getattr(again, dest) == checkpoint["args"][dest] or list(getattr(again, dest)) == list(
            checkpoint["args"][dest]
        ), dest
    # the recipe holds --time, a flag of training only: evaluating with the same recipe still works
    evaluated = run_script("main.py", f"@{run_dir / 'recipe.txt'}", "--resume", str(run_dir / "last.pth"),
                           "--eval_only")  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr
    assert 0 <= json.loads(evaluated.stdout.splitlines()[-1])["mean_iou"] <= 1


def test_the_width_measurement_leaves_the_random_state_as_a_run_of_the_recipe_finds_it(prepared_demo):
    # It builds and steps throwaway U-Nets; drawn from the run's RNG, they would give the planned run
    # other initial weights than `python main.py @recipe.txt` with the same seed.
    flags = ["--time", "10m", "--crop_size", "48", "--num_workers", "0"]
    args = parse_args(["--data_dir", str(prepared_demo), *flags])
    runtime = setup_runtime("cpu", "off", "off", 0, args.seed, False)
    layout = describe(args.data_dir)
    given = frozenset({"data_dir", "time", "crop_size", "num_workers"})
    state = torch.get_rng_state()
    planned = plan_recipe(
        args, Command(given, recipe=False), layout, get_image_format(args, layout, None), runtime, None
    )
    assert "base_channels" in [choice.dest for choice in planned]  # measured
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.slow
def test_a_run_under_time_ends_at_its_planned_step_with_the_learning_rate_decayed(tmp_path, prepared_demo):
    result = run_script(*time_command(prepared_demo, tmp_path, "15s", "--optimizer", "sgd", "--lr", "0.01"))
    assert result.returncode == 0, result.stderr
    checkpoint = load(tmp_path / "exp" / "timed" / "last.pth")
    plan = checkpoint["plan"]
    assert plan["budget"] == 15 and plan["step_s"] > 0 and plan["val_s"] > 0
    assert checkpoint["step"] == plan["total_steps"] > 0
    assert checkpoint["scheduler"]["_last_lr"] == [0.0, 0.0]
    assert re.search(r"^plan: \d+ steps \(\d+ epochs of 6\)", result.stdout, re.M)
    assert "optimizer" not in checkpoint["planned"]  # given: the command line wins


@pytest.mark.slow
def test_a_planned_run_stopped_by_sigterm_resumes_its_plan_and_its_choices(tmp_path, prepared_demo):
    command = time_command(prepared_demo, tmp_path, "40s")
    process = subprocess.Popen(
        [sys.executable, *command],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    for line in process.stdout:  # the plan is made: stop it a little into the run
        if line.startswith("plan: "):
            break
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=120)
    assert process.returncode == 143
    stopped = load(tmp_path / "exp" / "timed" / "last.pth")
    assert stopped["plan"]["spent"] > 0 and stopped["step"] < stopped["plan"]["total_steps"]
    result = run_script(*command, "--resume", "auto")
    assert result.returncode == 0, result.stderr
    assert "resuming" in result.stdout and "--batch_size 4: as planned" in result.stdout  # not re-made
    final = load(tmp_path / "exp" / "timed" / "last.pth")
    assert final["plan"]["budget"] == 40 and final["plan"]["spent"] > stopped["plan"]["spent"]
    assert final["step"] == final["plan"]["total_steps"]
    assert {k: final["args"][k] for k in final["planned"]} == {
        k: stopped["args"][k] for k in final["planned"]
    }


def test_time_with_eval_only_is_left_unused_not_refused():
    assert parse_args(["--eval_only", "--resume", "x.pth", "--time", "10m"]).time == 0
