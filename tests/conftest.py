"""Shared test fixtures: paths to ../shared (real COCO subset, detectron2 parity outputs)."""
import os
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
def seed0_checkpoint(tmp_path_factory):
    """detectron2's PointRend R50-FPN weights for seed 0 (../shared/parity/make_weights.py with the calibrated
    FrozenBN statistics), converted with convert_checkpoint.py -> path of the .ckpt."""
    if not PARITY.is_dir():
        pytest.skip(f"{PARITY} is absent: clone the project beside ../shared to run this test")
    import subprocess

    folder = tmp_path_factory.mktemp("seed0")
    pkl, ckpt = folder / "weights_seed0.pkl", folder / "weights_seed0.ckpt"
    subprocess.run([sys.executable, str(PARITY / "make_weights.py"), "--seed", "0", "--bn",
                    str(PARITY / "bn_stats_seed0.npz"), "--out", str(pkl)], check=True, capture_output=True)
    subprocess.run([sys.executable, str(REPO_ROOT / "convert_checkpoint.py"), "--source", "detectron2", "--input",
                    str(pkl), "--output", str(ckpt)], check=True, capture_output=True, cwd=REPO_ROOT)
    pkl.unlink()
    return ckpt
