"""The recipe planned from the data and the machine under --time without a recipe file."""

from __future__ import annotations

import pytest

from main import get_command, parse_args, recipe_lines
from planning import RULES, Choice, DataFacts, data_choices, flag_line, recipe_text, width_choice
from tests.helpers import ROOT

PHOTOS = DataFacts(
    images=367, short_side=360, channels=3, rgb8=True, classes=12, rarest_share=0.005, upright=True
)
FUNDUS = DataFacts(
    images=16, short_side=565, channels=3, rgb8=True, classes=2, rarest_share=0.125, upright=False
)
EM = DataFacts(images=20, short_side=512, channels=1, rgb8=False, classes=2, rarest_share=0.22, upright=True)


def chosen(facts: DataFacts, device: str = "cpu") -> dict:
    return {choice.dest: choice.value for choice in data_choices(facts, device)}


def test_road_photographs_get_jitter_class_weights_and_dice_and_no_turns():
    plan = chosen(PHOTOS)
    assert plan["color_jitter"] == 0.3 and plan["class_weights"] == "enet" and plan["loss"] == "ce+dice"
    assert not plan["vflip"] and not plan["rot90"]
    assert (plan["crop_size"], plan["scale"], plan["batch_size"]) == (256, (0.75, 1.25), 4)


def test_images_with_no_up_get_flips_and_quarter_turns_and_keep_their_colours():
    plan = chosen(FUNDUS)
    assert plan["vflip"] and plan["rot90"] and plan["color_jitter"] == 0.0
    assert plan["class_weights"] == "none" and plan["loss"] == "ce+dice"  # 2 classes, vessels 12.5%


def test_balanced_grayscale_classes_train_with_cross_entropy_alone():
    plan = chosen(EM)
    assert plan["loss"] == "ce" and plan["color_jitter"] == 0.0 and plan["class_weights"] == "none"


def test_the_crop_follows_the_image_size_and_the_device():
    small = DataFacts(100, 100, 3, True, 3, 0.3, True)
    assert chosen(small)["crop_size"] == 96
    assert chosen(PHOTOS, "cuda")["crop_size"] == 352 and chosen(PHOTOS, "cuda")["batch_size"] == 16
    large = DataFacts(100, 1024, 3, True, 3, 0.3, True)
    assert chosen(large)["scale"] == (0.5, 1.25) and chosen(large, "cuda")["crop_size"] == 512


def test_the_width_is_the_widest_whose_measured_steps_fit_and_wider_ones_are_not_measured():
    measured = []

    def step_time(width):
        measured.append(width)
        return {16: 0.5, 32: 1.5, 64: 6.0}[width]

    # 1,800 s x 0.9 = 1,620 s: 3,240 steps at 16, 1,080 at 32 (fewer than 1,200)
    choice = width_choice(PHOTOS, 4, 1800.0, step_time)
    assert choice.value == 16 and measured == [16, 32]
    assert "32: 1.5 s a step, 1080 steps" in choice.reason
    measured.clear()
    # 2,400 s: 1,440 steps at 32 (288 passes over 20 slices), 360 at 64
    assert width_choice(EM, 4, 2400.0, step_time).value == 32 and measured == [16, 32, 64]


def test_too_short_a_budget_still_gets_the_narrowest_width_and_says_so():
    choice = width_choice(PHOTOS, 4, 60.0, lambda width: 1.0)
    assert choice.value == 16 and "none does" in choice.reason


def test_a_recipe_file_means_nothing_is_planned_and_flags_given_are_known():
    command = get_command([f"@{ROOT / 'recipes' / 'drive.txt'}", "--time", "26m"], started=0.0)
    assert command.recipe and {"epochs", "time", "base_channels"} <= command.given
    command = get_command(["--data_dir", "x", "--time", "1m", "--crop_size", "128"], started=0.0)
    assert not command.recipe and command.given == {"data_dir", "time", "crop_size"}
    assert get_command(["--demo", "--time", "1m"], started=0.0).recipe


def test_the_written_recipe_gives_back_the_planned_and_given_flags(tmp_path):
    argv = ["--data_dir", "somewhere", "--time", "26m", "--crop_size", "128", "--name", "x"]
    args = parse_args(argv)
    planned = [
        Choice(c.dest, c.value, c.reason) for c in data_choices(FUNDUS, "cpu") if c.dest != "crop_size"
    ]
    planned.append(Choice("base_channels", 16, "measured"))
    for choice in planned:
        setattr(args, choice.dest, choice.value)
    recipe = tmp_path / "recipe.txt"
    recipe.write_text(recipe_text(recipe_lines(args, get_command(argv, 0.0), planned), "python main.py ..."))
    again = parse_args([f"@{recipe}"])
    for dest in ("data_dir", "time", "crop_size", "base_channels", "scale", "loss", "vflip", "rot90", "lr"):
        read, planned_value = getattr(again, dest), getattr(args, dest)
        assert (list(read) if dest == "scale" else read) == (
            list(planned_value) if dest == "scale" else planned_value
        )
    assert again.name == "unet"  # not the planned run's: a re-run names its own folder


@pytest.mark.parametrize(
    ("dest", "value", "line"),
    [("vflip", True, "--vflip"), ("vflip", False, ""), ("scale", (0.75, 1.25), "--scale 0.75 1.25"),
     ("lr", 0.001, "--lr 0.001"), ("loss", "ce+dice", "--loss ce+dice")],
)  # fmt: skip
def test_flag_lines_read_back_as_argparse_holds_them(dest, value, line):
    assert flag_line(dest, value) == line


def test_every_rule_is_in_the_docs_table():
    text = (ROOT / "docs" / "results" / "planned.md").read_text()
    for flags, rule in RULES:
        assert f"| `{flags}` | {rule} |" in text, flags
