"""Parity with detectron2: the same seed-0 weights on the same image give detectron2's detections
(../shared/parity/README.md), checked end to end through convert_checkpoint.py and infer.py, and stage by
stage (backbone and FPN features, RPN proposals)."""
import importlib.util
import json
import subprocess
import sys

import mindspore as ms
import numpy as np
import pytest

from conftest import PARITY, REPO_ROOT, requires_shared
from maskrcnn.box_ops import pairwise_iou
from maskrcnn_pointrend.config import load_config
from maskrcnn_pointrend.data.transforms import InferenceInput, read_image_bgr
from maskrcnn_pointrend.model import load_model

pytestmark = requires_shared
IMAGE = PARITY / "coco_397133_800.png"
REFERENCE = PARITY / "ref_seed0_coco_397133_800.npz"


def load_compare_module():
    spec = importlib.util.spec_from_file_location("parity_compare", PARITY / "compare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def reference():
    return np.load(REFERENCE)


@pytest.fixture(scope="module")
def stages(seed0_checkpoint):
    """Backbone, FPN and RPN outputs of our model on the parity image (eager) on its test canvas, the feature maps
    cropped to the extent of the image's own padded input."""
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    cfg = load_config([])
    net, _ = load_model(cfg, seed0_checkpoint)
    padded, size = InferenceInput.from_config(cfg.input)(read_image_bgr(IMAGE))
    images, image_size = ms.Tensor(padded[None]), ms.Tensor(np.array([size], np.int32))
    extents = net.padded_size(image_size)
    normalized = net.normalize(images, image_size)
    bottom_up = net.backbone.bottom_up(normalized, extents)
    pyramid = net.backbone(normalized, extents)
    proposals, _, valid, _, _ = net.proposal_generator(pyramid, image_size, extents)
    height, width = extents.asnumpy()[0]
    features = {name: f.asnumpy()[:, :, :-(-height // stride), :-(-width // stride)] for name, f, stride in zip(
        ["res2", "res3", "res4", "res5", "p2", "p3", "p4", "p5", "p6"], bottom_up + pyramid,
        [4, 8, 16, 32, 4, 8, 16, 32, 64])}
    return {"input_shape": (1, 3, height, width), "canvas": padded.shape[1:], "image_size": size,
            "features": features, "proposals": proposals.asnumpy()[0][valid.asnumpy()[0]]}


def test_input_is_padded_like_detectron2(stages, reference):
    assert tuple(stages["input_shape"]) == tuple(reference["input_tensor_shape"])
    assert stages["canvas"] == (800, 1344)  # computed on the test canvas, as if padded only to 800 x 1216
    assert tuple(stages["image_size"]) == tuple(reference["image_size"])


@pytest.mark.parametrize("name", ["res2", "res3", "res4", "res5", "p2", "p3", "p4", "p5", "p6"])
def test_features_match_detectron2(stages, reference, name):
    feature = stages["features"][name].astype(np.float64)
    assert feature.shape == tuple(reference[f"feat_{name}_shape"])
    _, _, ref_mean, ref_std, _, _ = reference[f"feat_{name}_stats"]
    assert abs(feature.mean() - ref_mean) <= 1e-3 * abs(ref_mean)
    assert abs(feature.std() - ref_std) <= 1e-3 * abs(ref_std)
    np.testing.assert_allclose(feature.reshape(-1)[:16], reference[f"feat_{name}_first16"], rtol=0, atol=1e-3)


def test_rpn_proposals_match_detectron2(stages, reference):
    ours = stages["proposals"]
    theirs = reference["rpn_proposal_boxes"]
    assert len(ours) == len(theirs)
    iou = pairwise_iou(ms.Tensor(theirs), ms.Tensor(ours)).asnumpy()
    assert (iou.max(axis=1) >= 0.99).mean() >= 0.95


def test_infer_cli_returns_detectron2_detections(seed0_checkpoint, reference, tmp_path):
    output = tmp_path / "detections.json"
    subprocess.run([sys.executable, str(REPO_ROOT / "infer.py"), "--checkpoint", str(seed0_checkpoint), "--image",
                    str(IMAGE), "--output", str(output)], check=True, cwd=REPO_ROOT, capture_output=True)
    detections = json.loads(output.read_text())
    ok, figure = load_compare_module().compare(reference, detections)
    assert ok, figure
