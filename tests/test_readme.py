"""The README and the reports in docs/ only show what exists: the flag table is the parser's, and the
commands use real flags."""

import re
import shlex
import subprocess

import numpy as np
import pytest
from PIL import Image

from lab.readme_flags import flag_table
from main import get_args_parser
from tests.helpers import ROOT, run_script

README = (ROOT / "README.md").read_text()
DOCS = "\n".join(path.read_text() for path in sorted((ROOT / "docs").rglob("*.md")))


def test_flag_table_is_the_parsers():
    flags = (ROOT / "docs" / "flags.md").read_text()
    table = re.search(r"<!-- flags -->\n(.*?)\n<!-- /flags -->", flags, re.S).group(1)
    assert table == flag_table(get_args_parser()), "run `python lab/readme_flags.py` and paste its output"


def test_the_readme_is_a_manual_of_at_most_400_lines_with_its_links_in_place():
    assert len(README.splitlines()) <= 400
    for target in re.findall(r"\]\(((?:docs|lab|assets)/[^)#]+)", README):
        assert (ROOT / target).is_file(), target


def command_lines(text=README):
    """The lines of the bash blocks of `text`, and its inline `python ...` commands."""
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        yield from block.splitlines()
    yield from re.findall(r"(?<!`)`(python [^`]+)`", text)


def commands(script, text=README):
    """Every command of `text` that runs `script`, as argument lists."""
    for line in command_lines(text):
        for part in line.split("#")[0].split("&&"):
            words = shlex.split(part)
            if script in words:
                yield words[words.index(script) + 1 :]


def flags_of(parser):
    return {option for action in parser._actions for option in action.option_strings}


@pytest.mark.parametrize("text", [README, DOCS], ids=["README", "docs"])
def test_main_commands_use_existing_flags_that_parse(text):
    found = list(commands("main.py", text))
    assert len(found) >= 6
    parser = get_args_parser()
    for args in found:
        assert {a for a in args if a.startswith("--")} <= flags_of(parser), args
        parser.parse_args(args)  # exits (SystemExit) on a bad value


@pytest.mark.parametrize(
    "script",
    [
        "tools/voc.py",
        "tools/camvid.py",
        "tools/coco.py",
        "tools/predict.py",
        "tools/export.py",
        "tools/figures.py",
        "lab/benchmark.py",
        "lab/isbi_scores.py",
    ],
)
def test_tool_commands_exist_and_use_their_flags(script):
    found = list(commands(script)) + list(commands(script, DOCS))
    assert found and (ROOT / script).is_file()
    source = (ROOT / script).read_text()
    for args in found:
        for flag in (a for a in args if a.startswith("--")):
            assert f'"{flag}"' in source, (script, flag)


def test_the_plain_layout_conversion_example_writes_a_loadable_data_set(tmp_path, monkeypatch):
    from layouts import describe

    example = next(b for b in re.findall(r"```python\n(.*?)```", DOCS, re.S) if 'Path("my_images")' in b)
    (tmp_path / "my_images").mkdir()
    (tmp_path / "my_masks").mkdir()
    colours = np.zeros((20, 30, 3), dtype=np.uint8)
    colours[5:10, 5:20] = (255, 0, 0)
    colours[0, 0] = (9, 9, 9)  # a colour of no class: void
    Image.fromarray(np.full((20, 30, 3), 90, dtype=np.uint8)).save(tmp_path / "my_images/a.jpg")
    Image.fromarray(colours).save(tmp_path / "my_masks/a.png")
    monkeypatch.chdir(tmp_path)
    exec(example, {})
    layout = describe(tmp_path / "data/cracks")
    assert layout.kind == "plain" and layout.class_names == ("background", "crack")
    mask = layout.read_mask("a")
    assert mask[0, 0] == 255 and (mask[5:10, 5:20] == 1).all() and mask[15, 25] == 0
    assert layout.all_ids() == ["a"] and layout.split_ids("val") == ["a"]  # the one image is held out


@pytest.mark.slow
def test_the_onnx_example_runs_an_exported_model(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    import torch

    from model import UNet

    example = next(b for b in re.findall(r"```python\n(.*?)```", DOCS, re.S) if "onnxruntime" in b)
    config = {"in_channels": 3, "num_classes": 21, "base_channels": 4}
    torch.save({"model": UNet(**config).state_dict(), "model_config": config}, tmp_path / "best.pth")
    checkpoint, output = tmp_path / "best.pth", tmp_path / "model.onnx"
    exported = run_script("tools/export.py", "--checkpoint", str(checkpoint), "--output", str(output))
    assert exported.returncode == 0, exported.stderr
    Image.fromarray(np.full((45, 70, 3), 100, dtype=np.uint8)).save(tmp_path / "photo.jpg")
    monkeypatch.chdir(tmp_path)
    exec(example, {})
    assert Image.open(tmp_path / "photo_classes.png").size == (70, 45)


def test_the_isbi_preparation_commands_build_the_layout_the_recipe_reads(tmp_path):
    from layouts import describe

    isbi = ROOT.parent / "shared" / "data" / "isbi2012"
    if not isbi.is_dir():
        pytest.skip(f"real ISBI 2012 slices not found at {isbi}")
    block = next(b for b in re.findall(r"```bash\n(.*?)```", README, re.S) if "zhixuhao/unet" in b)
    steps = [line for line in block.splitlines() if not re.search(r"git clone|\.py", line)]
    membrane = tmp_path / "unet" / "data" / "membrane" / "train"  # what the clone holds
    membrane.mkdir(parents=True)
    for folder in ("image", "label"):
        (membrane / folder).symlink_to(isbi / "train" / folder)
    script = "\n".join(steps)
    done = subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    layout = describe(tmp_path / "data" / "isbi2012")
    assert layout.class_names == ("membrane", "cell") and layout.mask_values == (0, 255)
    assert [len(layout.split_ids(s)) for s in ("train", "val", "test")] == [20, 5, 5]
    recipe = get_args_parser().parse_args([f"@{ROOT / 'recipes' / 'isbi2012.txt'}"])
    assert recipe.data_dir == "data/isbi2012" and recipe.name == "isbi2012"
