"""Shared test fixtures: paths to ../shared (real COCO subset, detectron2 parity outputs), a tiny generated
dataset and model, and running entry points as a user does."""
import contextlib
import io
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
def detectron2_weights(tmp_path_factory):
    """(seed, BN statistics file in ../shared/parity) -> (path of detectron2's PointRend R50-FPN .pkl rebuilt by
    ../shared/parity/make_weights.py, path of the same weights converted with convert_checkpoint.py); each
    built once per session."""
    if not PARITY.is_dir():
        pytest.skip(f"{PARITY} is absent: clone the project beside ../shared to run this test")
    built = {}

    def build(seed, bn_file):
        if (seed, bn_file) not in built:
            pkl = tmp_path_factory.mktemp(f"seed{seed}") / f"weights_seed{seed}.pkl"
            subprocess.run([sys.executable, str(PARITY / "make_weights.py"), "--seed", str(seed), "--bn",
                            str(PARITY / bn_file), "--out", str(pkl)], check=True, capture_output=True)
            ckpt = pkl.with_suffix(".ckpt")
            subprocess.run([sys.executable, str(REPO_ROOT / "convert_checkpoint.py"), "--source", "detectron2",
                            "--input", str(pkl), "--output", str(ckpt)], check=True, capture_output=True,
                           cwd=REPO_ROOT)
            built[seed, bn_file] = pkl, ckpt
        return built[seed, bn_file]

    return build


@pytest.fixture(scope="session")
def seed0_pickle(detectron2_weights):
    """detectron2's PointRend R50-FPN weights for seed 0 with the calibrated FrozenBN statistics -> the .pkl."""
    return detectron2_weights(0, "bn_stats_seed0.npz")[0]


@pytest.fixture(scope="session")
def seed0_checkpoint(detectron2_weights):
    """The seed-0 weights converted with convert_checkpoint.py -> path of the .ckpt."""
    return detectron2_weights(0, "bn_stats_seed0.npz")[1]

# The quickstart model (configs/quickstart.yaml) at 96-pixel images with fewer proposals, op by op: seconds per run.
TINY_MODEL = ["--config_path", str(REPO_ROOT / "configs" / "quickstart.yaml"), "--input.min_size_test=96",
              "--input.max_size_test=96", "--input.min_size_train=[96]", "--input.max_size_train=96",
              "--input.train_canvases=[[96,96]]", "--input.test_canvases=[[96,96]]",
              "--model.rpn.pre_nms_topk_test=200", "--model.rpn.post_nms_topk_test=100",
              "--model.roi_heads.nms_candidates_test=100", "--model.roi_heads.detections_per_image=10",
              "--test.compile_stages=False"]
SHAPE_CLASSES = 4  # the categories of make_synthetic_dataset.py


@pytest.fixture(scope="session")
def shapes_dataset(tmp_path_factory):
    """make_synthetic_dataset.py's dataset with 4 train and 2 val images of 96 pixels -> its root (train/, val/,
    annotations/instances_{train,val}.json)."""
    import make_synthetic_dataset

    root = tmp_path_factory.mktemp("shapes") / "shapes"
    with contextlib.redirect_stdout(io.StringIO()):
        make_synthetic_dataset.main(["--output", str(root), "--num_train", "4", "--num_val", "2", "--image_size", "96"])
    return root


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """The quickstart model for the 4 shape classes as initialised (seed 0), naming no categories, as a detectron2
    model converted for a custom dataset does -> path of the .ckpt (run it with TINY_MODEL)."""
    import mindspore as ms

    from maskrcnn_pointrend.checkpoints import save_checkpoint
    from maskrcnn_pointrend.config import load_config
    from maskrcnn_pointrend.model import build_pointrend

    ms.set_seed(0)
    net = build_pointrend(load_config([*TINY_MODEL, f"--model.num_classes={SHAPE_CLASSES}"]))
    path = tmp_path_factory.mktemp("tiny") / "tiny.ckpt"
    save_checkpoint(path, net, {"num_classes": SHAPE_CLASSES})
    return path


def run_entry_point(script, *args, umask=None):
    """`python <script> args` in the repository with MindSpore's log level left to the scripts (GLOG_v unset)."""
    env = {k: v for k, v in os.environ.items() if k != "GLOG_v"}
    return subprocess.run([sys.executable, str(REPO_ROOT / script), *map(str, args)], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, preexec_fn=(lambda: os.umask(umask)) if umask else None)


def error_line(proc, prefix, alone=True):
    """The error a failed entry point printed as the last line of stderr, checked to start with `prefix`, with
    exit status 1 and neither a traceback nor a MindSpore warning; `alone`: the only line."""
    lines = proc.stderr.splitlines()
    assert proc.returncode == 1 and lines and lines[-1].startswith(prefix), proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "[WARNING]" not in proc.stderr, proc.stderr[-3000:]
    assert len(lines) == 1 or not alone, proc.stderr[-3000:]
    return lines[-1]
