"""Boundary IoU (Cheng et al., CVPR 2021) as an IoU hook in pycocotools' COCOeval.

A mask's boundary is the band of its pixels within d pixels (chessboard distance) of its contour, the
image border counting as contour, with d = max(1, round(dilation_ratio * image diagonal)). Boundary AP
is COCO mask AP with IoU(dt, gt) = min(mask IoU, boundary IoU); a crowd ground truth keeps its mask
IoU (intersection over the detection's area), as in the authors' boundary-iou-api.
"""
import math

import cv2
import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.cocoeval import COCOeval

DEFAULT_DILATION_RATIO = 0.02


def boundary_width(height, width, dilation_ratio):
    """Band width d in pixels for an image of (height, width)."""
    return max(1, int(round(dilation_ratio * math.hypot(height, width))))


def mask_to_boundary(mask, dilation_ratio):
    """(H,W) bool mask -> (H,W) bool band: the mask minus its erosion by d 3x3 steps, zeros outside the image."""
    height, width = mask.shape
    boundary = np.zeros_like(mask, dtype=bool)  # same memory order: RLE encoding wants Fortran order
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return boundary
    cols = np.flatnonzero(mask.any(axis=0))
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    box = mask[y0:y1, x0:x1]
    # Everything outside the mask's box is background, so eroding the box padded with one ring of zeros
    # equals eroding the whole image padded with one ring of zeros (which makes the image border contour).
    padded = cv2.copyMakeBorder(box.astype(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    eroded = cv2.erode(padded, np.ones((3, 3), np.uint8),
                       iterations=boundary_width(height, width, dilation_ratio))[1:-1, 1:-1]
    boundary[y0:y1, x0:x1] = box & (eroded == 0)
    return boundary


def rle_to_boundary_rle(rle, dilation_ratio):
    """COCO RLE of an (H,W) mask -> COCO RLE of its (H,W) boundary band."""
    boundary = mask_to_boundary(mask_utils.decode(rle).view(bool), dilation_ratio)  # decode gives 0/1
    return mask_utils.encode(np.asfortranarray(boundary.astype(np.uint8)))


class BoundaryCOCOeval(COCOeval):
    """COCOeval on masks whose IoU is min(mask IoU, boundary IoU) against non-crowd ground truth.

    It runs as iouType "segm" (same preparation, matching and summary); only computeIoU changes.
    Boundaries are computed once per annotation, and only for (image, category) pairs that have both
    ground truth and detections.
    """

    def __init__(self, coco_gt, coco_dt, dilation_ratio=DEFAULT_DILATION_RATIO):
        super().__init__(coco_gt, coco_dt, iouType="segm")
        self.dilation_ratio = dilation_ratio
        self._boundaries = {}

    def _boundary(self, ann, source):
        key = (source, ann["id"])
        if key not in self._boundaries:
            self._boundaries[key] = rle_to_boundary_rle(ann["segmentation"], self.dilation_ratio)
        return self._boundaries[key]

    def _scored_pair(self, img_id, cat_id):
        """The ground truth and the detections COCOeval.computeIoU scores, detections in its order."""
        p = self.params
        cat_ids = [cat_id] if p.useCats else p.catIds
        gts = [g for c in cat_ids for g in self._gts[img_id, c]]
        dts = [d for c in cat_ids for d in self._dts[img_id, c]]
        order = np.argsort([-d["score"] for d in dts], kind="mergesort")[:p.maxDets[-1]]
        return gts, [dts[i] for i in order]

    def computeIoU(self, imgId, catId):
        mask_ious = super().computeIoU(imgId, catId)
        gts, dts = self._scored_pair(imgId, catId)
        regular = np.array([not g["iscrowd"] for g in gts], dtype=bool)
        if not dts or not regular.any():
            return mask_ious
        boundary_ious = mask_utils.iou([self._boundary(d, "dt") for d in dts],
                                       [self._boundary(g, "gt") for g, r in zip(gts, regular) if r],
                                       [0] * int(regular.sum()))
        ious = np.array(mask_ious, dtype=np.float64)
        ious[:, regular] = np.minimum(ious[:, regular], boundary_ious)
        return ious
