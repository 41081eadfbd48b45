"""PointRend's training targets from ground-truth mask grids: the coarse mask target of each box and the soft
label of each training point, as detectron2 computes them from full-resolution bitmasks.

Ground truth comes as grids (S, G, G, 1) float32 in [0, 1] over frames (S, 4) (see data/gt_masks): bilinear
samples of a grid at image points are detectron2's bilinear samples of the instance's bitmask there. `index`
(R,) picks each box's ground-truth slot. `sampler` is a BilinearSample cell. Targets carry no gradient.
"""
import mindspore as ms
from mindspore import ops


def sample_mask_grids(sampler, grids, frames, index, image_points):
    """Bilinear samples of grids (S, G, G, 1) over frames (S, 4), slot index (R,), at image points (R, P, 2)
    -> (R, P); zero outside the frame (grid_sample's zero padding, as detectron2 samples the bitmask)."""
    box_frames = ops.gather(frames, index, 0)
    # padding slots have empty frames: keep their coordinates finite (far outside, so the samples are 0)
    size = ops.maximum(box_frames[:, None, 2:] - box_frames[:, None, :2], 1e-6)
    relative = (image_points - box_frames[:, None, :2]) / size
    num_boxes, num_points = relative.shape[:2]
    point_index = ops.broadcast_to(index.reshape(-1, 1), (num_boxes, num_points)).reshape(-1)
    samples = sampler(grids, relative.reshape(-1, 2), point_index).reshape(num_boxes, num_points)
    return ops.stop_gradient(samples)


def roi_align_points(boxes, side, max_samples):
    """ROIAlign's sampling points (aligned, sampling ratio 0: ceil(box side / side) samples per bin and axis) of
    boxes (R, 4) on a side x side bin grid, with at most max_samples per bin and axis ->
    points (R, side * S * side * S, 2) in image pixels, ordered (bin row, sample row, bin column, sample
    column), and weights (R, 1, S, 1, S) that average each bin's samples (0 for unused slots), S = max_samples."""
    extent = boxes[:, 2:] - boxes[:, :2]  # (R, 2) width, height
    count = ops.clamp(ops.ceil(extent / side), 1.0, float(max_samples))
    slot = ops.arange(max_samples, dtype=ms.float32)
    bins = ops.arange(side, dtype=ms.float32)
    # (R, 2, side, S): bin b, sample i of each axis at start + (b + (i + 0.5) / count) * extent / side
    offsets = (bins[None, None, :, None] + (slot[None, None, None, :] + 0.5) / count[:, :, None, None])
    coords = boxes[:, :2, None, None] + offsets * (extent / side)[:, :, None, None]
    used = (slot[None, None, :] < count[:, :, None]).astype(ms.float32)  # (R, 2, S)
    num_boxes = boxes.shape[0]
    x = ops.broadcast_to(coords[:, 0][:, None, None], (num_boxes, side, max_samples, side, max_samples))
    y = ops.broadcast_to(coords[:, 1][:, :, :, None, None], (num_boxes, side, max_samples, side, max_samples))
    points = ops.stack((x, y), -1).reshape(num_boxes, -1, 2)
    weights = (used[:, 1][:, None, :, None, None] * used[:, 0][:, None, None, None, :]
               / (count[:, 0] * count[:, 1]).reshape(-1, 1, 1, 1, 1))
    return points, weights


def coarse_mask_targets(sampler, grids, frames, index, boxes, side, max_samples):
    """(R, side, side) 0/1 coarse mask targets of boxes (R, 4): detectron2's ROIAlign (aligned, adaptive
    sampling) of the box's ground-truth bitmask onto side x side bins, then >= 0.5 (BitMasks.crop_and_resize).
    Exact up to 7 * max_samples pixels per box side; a larger box averages max_samples samples per bin side."""
    points, weights = roi_align_points(boxes, side, max_samples)
    samples = sample_mask_grids(sampler, grids, frames, index, points)
    samples = samples.reshape(boxes.shape[0], side, max_samples, side, max_samples)
    return ((samples * weights).sum((2, 4)) >= 0.5).astype(ms.float32)
