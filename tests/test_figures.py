import pytest

pytest.importorskip("matplotlib")  # a development requirement (requirements-dev.txt)

from PIL import Image  # noqa: E402

from model import UNet  # noqa: E402
from tools.figures import block_shapes, draw_architecture  # noqa: E402


def test_block_shapes_are_read_off_the_model():
    shapes = block_shapes(UNet(num_classes=5, base_channels=8), size=64)
    assert shapes["inc"] == (8, 64, 64) and shapes["down4"] == (128, 4, 4)
    assert shapes["up1"] == (64, 8, 8) and shapes["outc"] == (5, 64, 64)


def test_architecture_figure_is_drawn(tmp_path):
    draw_architecture(UNet(base_channels=8), tmp_path / "architecture.png")
    with Image.open(tmp_path / "architecture.png") as figure:
        assert figure.width > 600 and figure.height > 300


def test_without_matplotlib_the_tool_names_the_install_command():
    from tests.helpers import run_script

    hidden = "import runpy, sys; sys.modules['matplotlib'] = None; "
    hidden += "sys.argv = ['tools/figures.py', 'architecture']; "
    result = run_script("-c", hidden + "runpy.run_path('tools/figures.py', run_name='__main__')")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == "error: tools/figures.py draws with matplotlib: pip install matplotlib"
