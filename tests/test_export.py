"""export.py: the MindIR graph, loaded back, returns the eager model's raw outputs, and postprogress.py turns
them into the eager model's detections."""
import json
import subprocess
import sys

import mindspore as ms
import numpy as np
import pytest

from conftest import COCO_MINI, REPO_ROOT, requires_shared
from maskrcnn_pointrend.config import load_config
from maskrcnn_pointrend.data.transforms import read_image_bgr
from maskrcnn_pointrend.model import load_model
from maskrcnn_pointrend.predictor import Predictor
from maskrcnn_pointrend.raw_detections import coco_results, raw_from_outputs, save_raw

pytestmark = requires_shared
IMAGE_ID = 397133
IMAGE = COCO_MINI / "val2017" / f"{IMAGE_ID:012d}.jpg"


@pytest.fixture(scope="module")
def exported(seed0_checkpoint, tmp_path_factory):
    """Eager raw detections of the image, and the raw outputs of the exported MindIR run on the same input."""
    folder = tmp_path_factory.mktemp("export")
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    cfg = load_config([])
    net, categories = load_model(cfg, seed0_checkpoint)
    predictor = Predictor(net, cfg)
    image = read_image_bgr(IMAGE)
    padded, image_size = predictor.preprocess(image)
    eager = predictor.predict_preprocessed(padded, image_size, image.shape[:2], IMAGE_ID)
    subprocess.run([sys.executable, str(REPO_ROOT / "export.py"), "--checkpoint_path", str(seed0_checkpoint),
                    "--file_format", "MINDIR", "--output", str(folder / "pointrend"), "--input_size",
                    str(padded.shape[1]), str(padded.shape[2])], check=True, cwd=REPO_ROOT, capture_output=True)
    ms.set_context(mode=ms.GRAPH_MODE)
    try:
        graph = ms.nn.GraphCell(ms.load(str(folder / "pointrend.mindir")))
        outputs = graph(ms.Tensor(padded[None]), ms.Tensor(np.array([image_size], np.int32)))
        outputs = [o.asnumpy()[0] for o in outputs]
    finally:
        ms.set_context(mode=ms.PYNATIVE_MODE)
    return {"eager": eager, "outputs": outputs, "categories": categories, "folder": folder, "image": image}


def test_mindir_outputs_equal_the_eager_model(exported):
    eager = exported["eager"]
    boxes, scores, classes, valid, complete, mask_probs = exported["outputs"]
    assert complete
    assert valid.sum() == len(eager.scores) > 0
    np.testing.assert_allclose(boxes[valid], eager.boxes, rtol=0, atol=1e-4)
    np.testing.assert_allclose(scores[valid], eager.scores, rtol=0, atol=1e-4)
    np.testing.assert_array_equal(classes[valid], eager.classes)
    np.testing.assert_allclose(mask_probs[valid], eager.mask_probs, rtol=0, atol=1e-3)


def test_postprogress_of_mindir_outputs_gives_the_eager_detections(exported, tmp_path):
    eager = exported["eager"]
    raw = raw_from_outputs(exported["outputs"], IMAGE_ID, eager.original_size, eager.image_size)
    save_raw(raw, tmp_path / "raw")
    ann = json.loads((COCO_MINI / "annotations" / "instances_val2017.json").read_text())
    ann["images"] = [im for im in ann["images"] if im["id"] == IMAGE_ID]
    ann["annotations"] = [a for a in ann["annotations"] if a["image_id"] == IMAGE_ID]
    (tmp_path / "ann.json").write_text(json.dumps(ann))
    subprocess.run([sys.executable, str(REPO_ROOT / "postprogress.py"), "--raw_dir", str(tmp_path / "raw"),
                    "--ann_file", str(tmp_path / "ann.json"), "--output_dir", str(tmp_path / "out")],
                   check=True, cwd=REPO_ROOT, capture_output=True)
    from_mindir = json.loads((tmp_path / "out" / "results_segm_bbox.json").read_text())
    from_eager = coco_results(eager, [c[0] for c in exported["categories"]])
    assert len(from_mindir) == len(from_eager) > 0
    for got, want in zip(from_mindir, from_eager):
        assert (got["image_id"], got["category_id"], got["segmentation"]) == (
            want["image_id"], want["category_id"], want["segmentation"])
        np.testing.assert_allclose(got["bbox"], want["bbox"], atol=1e-3)
        assert abs(got["score"] - want["score"]) <= 1e-4
