import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers import copy_tree  # noqa: E402
from tools.demo_data import make_demo_data  # noqa: E402
from tools.voc import prepare  # noqa: E402

# Real VOC 2012 / SBD files, present in the team's checkout next to the repository, not in a user's clone.
SAMPLES = ROOT.parent / "shared" / "data" / "voc-samples"


@pytest.fixture
def samples() -> Path:
    if not SAMPLES.is_dir():
        pytest.skip(f"real VOC samples not found at {SAMPLES}")
    return SAMPLES


@pytest.fixture(scope="session")
def demo_raw(tmp_path_factory) -> Path:
    """A raw VOC 2012 + SBD demo tree of 24 trainaug and 8 val images (shared: treat as read-only)."""
    return make_demo_data(tmp_path_factory.mktemp("raw"), seed=0, train=24, val=8)


@pytest.fixture(scope="session")
def prepared_demo(demo_raw, tmp_path_factory) -> Path:
    """demo_raw after tools/voc.py: ready to train on (shared: treat as read-only)."""
    root = copy_tree(demo_raw, tmp_path_factory.mktemp("prepared") / "data")
    prepare(root, workers=1, progress=False)
    return root


@pytest.fixture(autouse=True, scope="session")
def scan_cache(tmp_path_factory) -> Path:
    """Scans and prepared masks go to a fresh folder, not the user's ~/.cache (subprocesses inherit it)."""
    path = tmp_path_factory.mktemp("cache")
    os.environ["UNET_CACHE_DIR"] = str(path)
    return path
