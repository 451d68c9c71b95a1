import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Real VOC 2012 / SBD files, present in the team's checkout next to the repository, not in a user's clone.
SAMPLES = ROOT.parent / "shared" / "data" / "voc-samples"


@pytest.fixture
def samples() -> Path:
    if not SAMPLES.is_dir():
        pytest.skip(f"real VOC samples not found at {SAMPLES}")
    return SAMPLES
