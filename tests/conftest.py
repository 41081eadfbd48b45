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
