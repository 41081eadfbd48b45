"""evaluate_coco on coco_mini val: perfect detections, agreement with pycocotools, empty and partial
result sets, files written, bad results rejected."""
import contextlib
import copy
import io
import math

import cv2
import numpy as np
import pandas as pd
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from conftest import COCO_MINI, requires_shared
from maskrcnn_pointrend.evaluation import IOU_TYPES, STAT_NAMES, evaluate_coco

pytestmark = requires_shared
ANN_FILE = COCO_MINI / "annotations" / "instances_val2017.json"


@pytest.fixture
def coco_gt():
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(ANN_FILE))


def rle_result(image_id, category_id, bbox, score, mask):
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"image_id": image_id, "category_id": category_id, "bbox": [float(v) for v in bbox],
            "score": float(score), "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()}}


def ground_truth_as_detections(coco_gt, image_ids=None):
    anns = coco_gt.loadAnns(coco_gt.getAnnIds(imgIds=image_ids or [], iscrowd=False))
    return [rle_result(a["image_id"], a["category_id"], a["bbox"], 1.0, coco_gt.annToMask(a)) for a in anns]


def perturbed_detections(coco_gt):
    """GT turned into imperfect detections: every third image without detections, masks eroded, boxes shifted,
    scores spread, and one extra false positive per kept detection."""
    rng = np.random.default_rng(0)
    results = []
    for image_id in sorted(coco_gt.getImgIds())[1::3] + sorted(coco_gt.getImgIds())[2::3]:
        for a in coco_gt.loadAnns(coco_gt.getAnnIds(imgIds=[image_id], iscrowd=False)):
            mask = cv2.erode(coco_gt.annToMask(a), np.ones((3, 3), np.uint8), iterations=int(rng.integers(0, 3)))
            x, y, w, h = a["bbox"]
            box = [x + rng.uniform(-3, 3), y + rng.uniform(-3, 3), w * rng.uniform(0.9, 1.1), h]
            results.append(rle_result(image_id, a["category_id"], box, rng.uniform(0.3, 1.0), mask))
            results.append(rle_result(image_id, a["category_id"], [x + w / 2, y, w, h / 2], rng.uniform(0, 0.6),
                                      np.roll(mask, int(w / 2), axis=1)))
    return results


def pycocotools_stats(coco_gt, results, iou_type):
    """The 12 stats and printed summary of plain COCOeval (masks scored by mask area, as detectron2 does)."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        kept = results if iou_type == "bbox" else [{k: v for k, v in r.items() if k != "bbox"} for r in results]
        evaluator = COCOeval(coco_gt, coco_gt.loadRes(kept), iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
        start = len(printed.getvalue())
        evaluator.summarize()
    return list(evaluator.stats), printed.getvalue()[start:].splitlines()


def summary_blocks(log_text):
    """eval.log -> {iou type: its 12 summary lines}."""
    blocks, current = {}, None
    for line in log_text.splitlines():
        if line.startswith("Evaluate annotation type *"):
            current = line.split("*")[1]
            blocks[current] = []
        elif current and line.startswith(" Average"):
            blocks[current].append(line)
    return blocks


def test_ground_truth_as_detections_scores_one(coco_gt, tmp_path):
    results = ground_truth_as_detections(coco_gt)
    unchanged = copy.deepcopy(results)
    metrics = evaluate_coco(coco_gt, results, tmp_path, log=lambda line: None)
    assert results == unchanged
    for iou_type in IOU_TYPES:
        for stat in ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100"):
            assert metrics[iou_type][stat] == pytest.approx(1.0, abs=1e-12), (iou_type, stat)
        assert metrics[iou_type]["evaluate_s"] > 0 and metrics[iou_type]["accumulate_s"] > 0

    blocks = summary_blocks((tmp_path / "eval.log").read_text())
    assert list(blocks) == list(IOU_TYPES) and all(len(lines) == 12 for lines in blocks.values())
    table = pd.read_csv(tmp_path / "per_category_ap.csv")
    assert len(table) == len(coco_gt.getCatIds())
    present = table["gt_instances"] > 0
    assert (~present).sum() == 2  # coco_mini val lacks 2 of the 80 categories
    ap_columns = [f"{t}_{s}" for t in IOU_TYPES for s in ("AP", "AP50", "AP75")]
    assert np.allclose(table.loc[present, ap_columns], 1.0, rtol=0, atol=1e-12)
    assert table.loc[~present, ap_columns].isna().all().all()
    assert "boundary_AP75" in (tmp_path / "per_category_ap.txt").read_text()


def test_numbers_and_log_equal_pycocotools(coco_gt, tmp_path):
    results = perturbed_detections(coco_gt)
    metrics = evaluate_coco(coco_gt, results, tmp_path, log=lambda line: None)
    blocks = summary_blocks((tmp_path / "eval.log").read_text())
    for iou_type in ("bbox", "segm"):
        with contextlib.redirect_stdout(io.StringIO()):
            reference_gt = COCO(str(ANN_FILE))
        stats, printed = pycocotools_stats(reference_gt, results, iou_type)
        assert [metrics[iou_type][name] for name in STAT_NAMES] == pytest.approx(stats, abs=1e-12)
        assert blocks[iou_type] == printed
    # Eroded and shifted masks keep a fair mask IoU but lose boundary IoU.
    assert metrics["boundary"]["AP"] < metrics["segm"]["AP"]
    assert metrics["boundary"]["AP50"] <= metrics["segm"]["AP50"]


def test_empty_results_score_zero_like_cocoeval(coco_gt, tmp_path):
    metrics = evaluate_coco(coco_gt, [], tmp_path, log=lambda line: None)
    # COCOeval on a lone detection of a category no image has: it changes nothing, so it is what
    # COCOeval reports for no detections at all.
    absent = sorted(set(coco_gt.getCatIds()) - {a["category_id"] for a in coco_gt.dataset["annotations"]})
    image = coco_gt.dataset["images"][0]
    mask = np.zeros((image["height"], image["width"]), bool)
    mask[:10, :10] = True
    lone = [rle_result(image["id"], absent[0], [0, 0, 10, 10], 0.9, mask)]
    for iou_type in ("bbox", "segm"):
        stats, _ = pycocotools_stats(coco_gt, lone, iou_type)
        assert [metrics[iou_type][name] for name in STAT_NAMES] == stats
    assert all(metrics[t][name] == 0.0 for t in IOU_TYPES for name in STAT_NAMES)
    table = pd.read_csv(tmp_path / "per_category_ap.csv")
    assert (table.loc[table["gt_instances"] > 0, "segm_AP"] == 0.0).all()
    assert table.loc[table["gt_instances"] == 0, "boundary_AP"].isna().all()
    assert len(summary_blocks((tmp_path / "eval.log").read_text())) == 3


def test_images_without_detections_count_as_misses(coco_gt, tmp_path):
    image_ids = sorted(coco_gt.getImgIds())
    half = image_ids[::2]
    results = ground_truth_as_detections(coco_gt, half)
    lines = []
    everywhere = evaluate_coco(coco_gt, results, tmp_path / "all", iou_types=("segm", "boundary"), log=lines.append)
    assert f"on {len(image_ids)} images ({len(image_ids) - len(half)} without any detection)" in lines[0]
    found = len(coco_gt.getAnnIds(imgIds=half, iscrowd=False))
    assert found < len(coco_gt.getAnnIds(iscrowd=False))
    assert everywhere["segm"]["AR100"] < 1.0 and everywhere["boundary"]["AP"] < 1.0
    stats, _ = pycocotools_stats(coco_gt, results, "segm")
    assert [everywhere["segm"][name] for name in STAT_NAMES] == pytest.approx(stats, abs=1e-12)

    only_half = evaluate_coco(coco_gt, results, tmp_path / "half", iou_types=("boundary",), image_ids=half,
                              log=lambda line: None)
    assert only_half["boundary"]["AP"] == pytest.approx(1.0, abs=1e-12)
    assert only_half["boundary"]["AR100"] == pytest.approx(1.0, abs=1e-12)
    assert "bbox_AP" not in pd.read_csv(tmp_path / "half" / "per_category_ap.csv").columns


def test_bad_results_are_rejected_with_the_reason(coco_gt, tmp_path):
    good = ground_truth_as_detections(coco_gt, sorted(coco_gt.getImgIds())[:1])[0]
    other_image = sorted(coco_gt.getImgIds())[1]
    cases = {
        "category_id 999 is not a category": {**good, "category_id": 999},
        f"image_id {other_image} is not among the 1 evaluated images": {**good, "image_id": other_image},
        "segmentation size [10, 10] differs": {**good, "segmentation": {"size": [10, 10], "counts": "0"}},
        "lacks ['segmentation']": {k: v for k, v in good.items() if k != "segmentation"},
    }
    for message, result in cases.items():
        with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
            evaluate_coco(coco_gt, [good, result], tmp_path, image_ids=[good["image_id"]], log=lambda line: None)
    with pytest.raises(ValueError, match="iou_types"):
        evaluate_coco(coco_gt, [good], tmp_path, iou_types=("mask",), log=lambda line: None)
    assert not list(tmp_path.iterdir())  # nothing written for a rejected evaluation
    assert math.isfinite(evaluate_coco(coco_gt, [{k: v for k, v in good.items() if k != "segmentation"}],
                                       tmp_path, iou_types=("bbox",), log=lambda line: None)["bbox"]["AP"])
