"""Detections in network-input pixels -> original image: rescaled boxes and box-frame masks pasted into the image.

Numpy, on the host: it runs once per image after the network, and works on outputs saved by any runtime.
"""
import math

import numpy as np


def rescale_detections(boxes, image_size, output_size):
    """(D, 4) boxes in the (h, w) network-input image -> (D, 4) in the (H, W) output image, clipped, and
    the (D,) mask of boxes that stay non-empty (detectron2 drops the others)."""
    (h, w), (out_h, out_w) = image_size, output_size
    scaled = np.asarray(boxes, np.float32) * np.array([out_w / w, out_h / h, out_w / w, out_h / h], np.float32)
    scaled[:, 0::2] = scaled[:, 0::2].clip(0, out_w)
    scaled[:, 1::2] = scaled[:, 1::2].clip(0, out_h)
    nonempty = (scaled[:, 2] > scaled[:, 0]) & (scaled[:, 3] > scaled[:, 1])
    return scaled, nonempty


def interpolation_weights(positions, size):
    """(n,) sample positions in index coordinates of an axis of `size` cells (cell k centred at k) -> (n, size)
    float32 bilinear weights, zero for cells outside the axis (grid_sample's zero padding)."""
    low = np.floor(positions)
    frac = (positions - low).astype(np.float32)
    weights = np.zeros((len(positions), size), np.float32)
    rows = np.arange(len(positions))
    for index, weight in ((low, 1.0 - frac), (low + 1, frac)):
        inside = (index >= 0) & (index < size)
        weights[rows[inside], index[inside].astype(np.int64)] = weight[inside]
    return weights


def _box_interpolation_weights(centers, start, end, mask_side):
    """Bilinear weights (len(centers), mask_side) of mask cells for image pixel centres along one axis, as
    grid_sample(align_corners=False, zero padding) samples a mask spanning [start, end]."""
    return interpolation_weights((centers - start) / (end - start) * mask_side - 0.5, mask_side)


def paste_mask(mask_probs, box, output_size, threshold=0.5):
    """(S, S) box-frame probabilities -> (H, W) bool image mask, as detectron2 pastes them (bilinear resampling
    of the mask over the box, then probability >= threshold), computed only around the box."""
    out_h, out_w = output_size
    x0, y0, x1, y1 = (float(v) for v in box)
    left, top = max(math.floor(x0) - 1, 0), max(math.floor(y0) - 1, 0)
    right, bottom = min(math.ceil(x1) + 1, out_w), min(math.ceil(y1) + 1, out_h)
    image_mask = np.zeros((out_h, out_w), bool)
    if right <= left or bottom <= top:
        return image_mask
    side = mask_probs.shape[0]
    row_weights = _box_interpolation_weights(np.arange(top, bottom, dtype=np.float32) + 0.5, y0, y1, side)
    col_weights = _box_interpolation_weights(np.arange(left, right, dtype=np.float32) + 0.5, x0, x1, side)
    region = row_weights @ np.asarray(mask_probs, np.float32) @ col_weights.T
    image_mask[top:bottom, left:right] = region >= threshold
    return image_mask
