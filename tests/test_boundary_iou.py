"""Boundary IoU: the erosion-based band against a distance-to-contour reference, and the COCOeval hook."""
import contextlib
import io
import math

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from maskrcnn_pointrend.evaluation.boundary_iou import BoundaryCOCOeval, mask_to_boundary

RATIO = 0.02


def reference_boundary(mask, dilation_ratio):
    """Mask pixels within chessboard distance d of the contour (background pixels next to the mask,
    the ring just outside the image included), d = max(1, round(ratio * image diagonal))."""
    height, width = mask.shape
    d = max(1, round(dilation_ratio * math.hypot(height, width)))
    padded = np.pad(mask, 1)
    grown = np.zeros_like(padded)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            grown |= np.roll(np.roll(padded, dy, axis=0), dx, axis=1)
    contour = np.argwhere(grown & ~padded)
    inside = np.argwhere(padded)
    band = np.zeros_like(padded)
    if len(inside):
        distance = np.abs(inside[:, None, :] - contour[None, :, :]).max(axis=2).min(axis=1)
        band[tuple(inside[distance <= d].T)] = True
    return band[1:-1, 1:-1]


def disk(height, width, cy, cx, radius):
    yy, xx = np.mgrid[:height, :width]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2


def shapes(height, width):
    """Named (H,W) bool masks: interior, touching the border, with a hole, tiny, empty, full."""
    rect = np.zeros((height, width), bool)
    rect[height // 4:height // 2, width // 3:width - 3] = True
    corner = np.zeros((height, width), bool)
    corner[:height // 2, :width // 5] = True
    corner[:height // 6, :width // 2] = True
    ring = disk(height, width, height / 2, width / 2, height / 2.5) & ~disk(height, width, height / 2, width / 2,
                                                                          height / 6)
    dot = np.zeros((height, width), bool)
    dot[height // 2, width // 2] = True
    return {"rect": rect, "corner_touching_border": corner, "ring": ring, "dot": dot,
            "empty": np.zeros((height, width), bool), "full": np.ones((height, width), bool),
            "disk_cut_by_border": disk(height, width, 0, width - 1, height / 2)}


@pytest.mark.parametrize("size, width_d", [((20, 20), 1), ((60, 80), 2), ((120, 160), 4), ((121, 9), 2)])
def test_boundary_band_equals_distance_to_contour(size, width_d):
    assert max(1, round(RATIO * math.hypot(*size))) == width_d  # the sizes cover d = 1, 2 and 4
    for name, mask in shapes(*size).items():
        np.testing.assert_array_equal(mask_to_boundary(mask, RATIO), reference_boundary(mask, RATIO),
                                      err_msg=f"{name} in {size}")


def test_border_pixels_of_an_object_are_boundary():
    full = np.ones((60, 80), bool)
    band = mask_to_boundary(full, RATIO)
    assert band[0].all() and band[-1].all() and band[:, 0].all() and band[:, -1].all()
    assert band[2:-2, 2:-2].sum() == 0  # d = 2: only two rings


def to_rle(mask):
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": rle["size"], "counts": rle["counts"].decode()}


def boundary_ious(gt_masks, gt_crowd, dt_masks, dt_scores):
    """BoundaryCOCOeval's IoU matrix (dt by descending score, gt in given order) on a one-image dataset."""
    height, width = gt_masks[0].shape
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = {
            "images": [{"id": 1, "height": height, "width": width}],
            "categories": [{"id": 1, "name": "thing"}],
            "annotations": [{"id": i + 1, "image_id": 1, "category_id": 1, "segmentation": to_rle(m),
                             "area": float(m.sum()), "bbox": list(mask_utils.toBbox(to_rle(m))), "iscrowd": c}
                            for i, (m, c) in enumerate(zip(gt_masks, gt_crowd))]}
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes([{"image_id": 1, "category_id": 1, "segmentation": to_rle(m), "score": s}
                                   for m, s in zip(dt_masks, dt_scores)])
        evaluator = BoundaryCOCOeval(coco_gt, coco_dt, RATIO)
        evaluator.evaluate()
    return evaluator.ious[1, 1]


def iou(a, b):
    return (a & b).sum() / (a | b).sum()


def test_coco_hook_uses_min_of_mask_and_boundary_iou_and_mask_iou_for_crowd():
    height, width = 120, 160
    person = disk(height, width, 60, 70, 30)
    edge = np.zeros((height, width), bool)
    edge[70:, 110:] = True  # touches the bottom and right borders
    crowd = np.zeros((height, width), bool)
    crowd[5:40, 5:60] = True
    hollow = reference_boundary(person, RATIO)  # boundary IoU 1 with person, mask IoU low: min matters
    dts = [np.roll(person, 3, axis=1), edge & ~disk(height, width, 119, 159, 12),
           crowd & disk(height, width, 20, 30, 18), person, hollow]
    scores = [0.9, 0.8, 0.7, 0.95, 0.85]
    ious = boundary_ious([person, edge, crowd], [0, 0, 1], dts, scores)

    order = np.argsort([-s for s in scores], kind="mergesort")
    for row, i in enumerate(order):
        dt = dts[i]
        for col, gt in enumerate([person, edge]):
            expected = min(iou(dt, gt), iou(reference_boundary(dt, RATIO), reference_boundary(gt, RATIO)))
            assert ious[row, col] == pytest.approx(expected, abs=1e-9)
        assert ious[row, 2] == pytest.approx((dt & crowd).sum() / dt.sum(), abs=1e-9)
    hollow_iou = ious[list(order).index(4), 0]
    assert hollow_iou == pytest.approx(iou(hollow, person), abs=1e-9) and hollow_iou < 0.5


def test_shift_lowers_boundary_iou_more_than_mask_iou():
    height, width = 240, 320
    gt = disk(height, width, 120, 160, 70)
    shifted = np.roll(gt, 4, axis=1)
    mask_iou = iou(shifted, gt)
    combined = boundary_ious([gt], [0], [shifted], [1.0])[0, 0]
    boundary_iou = iou(reference_boundary(shifted, RATIO), reference_boundary(gt, RATIO))
    assert combined == pytest.approx(boundary_iou, abs=1e-9)
    assert boundary_iou < mask_iou - 0.2 and mask_iou > 0.9
