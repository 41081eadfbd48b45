"""Shared test fixtures: paths to ../shared (real COCO subset, detectron2 parity outputs)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
COCO_MINI = SHARED / "data" / "coco_mini"
PARITY = SHARED / "parity"

sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("GLOG_v", "3")

requires_shared = pytest.mark.skipif(
    not SHARED.is_dir(), reason=f"{SHARED} is absent: clone the project beside ../shared to run this test")


@pytest.fixture(scope="session")
def seed0_pickle(tmp_path_factory):
    """detectron2's PointRend R50-FPN weights for seed 0 (../shared/parity/make_weights.py with the calibrated
    FrozenBN statistics) -> path of the .pkl."""
    if not PARITY.is_dir():
        pytest.skip(f"{PARITY} is absent: clone the project beside ../shared to run this test")
    pkl = tmp_path_factory.mktemp("seed0") / "weights_seed0.pkl"
    subprocess.run([sys.executable, str(PARITY / "make_weights.py"), "--seed", "0", "--bn",
                    str(PARITY / "bn_stats_seed0.npz"), "--out", str(pkl)], check=True, capture_output=True)
    return pkl


@pytest.fixture(scope="session")
def seed0_checkpoint(seed0_pickle):
    """The seed-0 weights converted with convert_checkpoint.py -> path of the .ckpt."""
    ckpt = seed0_pickle.with_suffix(".ckpt")
    subprocess.run([sys.executable, str(REPO_ROOT / "convert_checkpoint.py"), "--source", "detectron2", "--input",
                    str(seed0_pickle), "--output", str(ckpt)], check=True, capture_output=True, cwd=REPO_ROOT)
    return ckpt
