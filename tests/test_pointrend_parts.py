"""PointRend's own pieces against small numpy references: the subdivision schedule, uncertain points on a grid
and with randomness, the coarse mask target (ROIAlign of the bitmask), the point labels, the loss weights and
the mask losses."""
import math

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor

from maskrcnn.losses import average_weights
from maskrcnn_pointrend.data.gt_masks import GRID_SCALE, mask_frame, sample_frame
from maskrcnn_pointrend.layers.bilinear_sample import BilinearSample
from maskrcnn_pointrend.mask_head import mask_losses, subdivision_schedule
from maskrcnn_pointrend.mask_targets import coarse_mask_targets, roi_align_points, sample_mask_grids
from maskrcnn_pointrend.point_features import uncertain_grid_points, uncertain_points_with_randomness
from tools.kernel_references import pooling_matrix, reference_bilinear_sample

ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")


@pytest.fixture(scope="module")
def sampler():
    return BilinearSample()


def sample_plane(plane, points):
    """grid_sample(align_corners=False, zero padding) of an (H, W) plane at [0, 1]-normalized points (P, 2)."""
    return reference_bilinear_sample(plane[None, :, :, None], points, np.zeros(len(points), np.int32))[:, 0]


@pytest.mark.parametrize("side, steps, points, expected", [(7, 5, 784, (28, 3)), (7, 5, 28 * 28 - 1, (14, 4)),
                                                            (7, 2, 100, (7, 2)), (4, 3, 4096, (32, 0))])
def test_subdivision_schedule_skips_steps_that_would_repredict_the_whole_grid(side, steps, points, expected):
    initial, left = subdivision_schedule(side, steps, points)
    assert (initial, left) == expected
    assert initial * 2 ** left == side * 2 ** steps  # the same output resolution
    # every skipped step's upsampled grid had no more cells than the points re-predicted
    assert all(4 * (side * 2 ** k) ** 2 <= points for k in range(int(math.log2(initial // side))))


def test_uncertain_grid_points_are_the_most_uncertain_cells_centres():
    rng = np.random.default_rng(0)
    uncertainty = rng.standard_normal((3, 6, 8)).astype(np.float32)
    index, points = uncertain_grid_points(Tensor(uncertainty), 10)
    for r in range(3):
        expected = np.argsort(-uncertainty[r].reshape(-1), kind="stable")[:10]
        np.testing.assert_array_equal(index.asnumpy()[r], expected)
        rows, cols = np.divmod(expected, 8)
        np.testing.assert_allclose(points.asnumpy()[r], np.stack([(cols + 0.5) / 8, (rows + 0.5) / 6], -1))


def test_uncertain_points_with_randomness_keeps_the_oversampled_points_of_least_confident_logit(sampler):
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((4, 7, 7)).astype(np.float32) * 3
    oversampled = rng.random((4, 30, 2), dtype=np.float32)
    fresh = rng.random((4, 5, 2), dtype=np.float32)
    points = uncertain_points_with_randomness(sampler, Tensor(logits), Tensor(oversampled), Tensor(fresh),
                                              12).asnumpy()
    for r in range(4):
        sampled = sample_plane(logits[r], oversampled[r])
        chosen = np.argsort(np.abs(sampled), kind="stable")[:12]  # detectron2: topk of -|logit|
        np.testing.assert_array_equal(points[r, :12], oversampled[r, chosen])
        np.testing.assert_array_equal(points[r, 12:], fresh[r])


def blob(rng, height, width):
    """A random (H, W) uint8 bitmask: the union of a few ellipses."""
    yy, xx = np.mgrid[:height, :width] + 0.5
    mask = np.zeros((height, width), bool)
    for _ in range(3):
        cy, cx = rng.uniform(0.2, 0.8) * height, rng.uniform(0.2, 0.8) * width
        ry, rx = rng.uniform(0.1, 0.4) * height, rng.uniform(0.1, 0.4) * width
        mask |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    return mask.astype(np.uint8)


@pytest.fixture(scope="module")
def instances():
    """Bitmasks of a 120 x 160 image, each's box, and its grid and frame as the training pipeline makes them."""
    rng = np.random.default_rng(2)
    bitmasks, boxes, grids, frames = [], [], [], []
    for _ in range(4):
        bitmask = np.zeros((120, 160), np.uint8)
        x0, y0 = rng.integers(0, 60), rng.integers(0, 40)
        w, h = rng.integers(20, 100), rng.integers(20, 80)
        bitmask[y0:y0 + h, x0:x0 + w] = blob(rng, h, w)[:120 - y0, :160 - x0]
        ys, xs = np.nonzero(bitmask)
        box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)
        frame = mask_frame(box)
        grid = np.rint(np.clip(sample_frame(bitmask, (0, 0), frame, 128), 0, 1) * GRID_SCALE).astype(np.uint8)
        bitmasks.append(bitmask), boxes.append(box), grids.append(grid), frames.append(frame)
    return np.stack(bitmasks), np.stack(boxes), np.stack(grids), np.stack(frames)


def grid_inputs(grids, frames):
    return Tensor(grids[..., None].astype(np.float32) / GRID_SCALE), Tensor(frames)


def test_coarse_mask_target_is_roi_align_of_the_bitmask_thresholded(sampler, instances):
    """detectron2's BitMasks.crop_and_resize: ROIAlign(7, aligned, adaptive sampling) of the float bitmask, then
    >= 0.5, for boxes around the instance (not its own box: training uses the box head's prediction)."""
    bitmasks, boxes, grids, frames = instances
    rng = np.random.default_rng(3)
    index = np.repeat(np.arange(4), 6).astype(np.int32)
    jitter = rng.uniform(-8, 8, (24, 4)).astype(np.float32)
    rois = boxes[index] + jitter
    rois[:, 2:] = np.maximum(rois[:, 2:], rois[:, :2] + 3)
    targets = coarse_mask_targets(sampler, *grid_inputs(grids, frames), Tensor(index), Tensor(rois), 7, 16).asnumpy()
    expected = np.stack([(pooling_matrix(np.r_[0, roi], 1.0, 120, 160, 7, 0) @ bitmasks[i].reshape(-1)).reshape(7, 7)
                         for roi, i in zip(rois, index)]) >= 0.5
    assert (targets == expected).mean() >= 0.995


def test_roi_align_points_are_roi_aligns_sampling_points_with_averaging_weights():
    boxes = np.array([[10.0, 20.0, 45.5, 30.0], [0.0, 0.0, 200.0, 3.0]], np.float32)
    points, weights = roi_align_points(Tensor(boxes), 7, 16)
    points = points.asnumpy().reshape(2, 7, 16, 7, 16, 2)
    weights = np.broadcast_to(weights.asnumpy(), (2, 7, 16, 7, 16))
    np.testing.assert_allclose(weights.sum((2, 4)), 1.0, rtol=1e-6)
    for r, (x0, y0, x1, y1) in enumerate(boxes):
        grid_y, grid_x = min(math.ceil((y1 - y0) / 7), 16), min(math.ceil((x1 - x0) / 7), 16)
        assert (weights[r] > 0).sum() == 49 * grid_y * grid_x
        for ph, pw, iy, ix in ((0, 0, 0, 0), (6, 3, grid_y - 1, grid_x - 1)):
            y = y0 + ph * (y1 - y0) / 7 + (iy + 0.5) * (y1 - y0) / 7 / grid_y  # ROIAlign's, in image pixels
            x = x0 + pw * (x1 - x0) / 7 + (ix + 0.5) * (x1 - x0) / 7 / grid_x
            np.testing.assert_allclose(points[r, ph, iy, pw, ix], [x, y], rtol=1e-5)


def test_point_labels_are_bilinear_samples_of_the_bitmask(sampler, instances):
    """detectron2's point labels: grid_sample of the float bitmask at the image points (zero outside)."""
    bitmasks, boxes, grids, frames = instances
    rng = np.random.default_rng(4)
    index = np.arange(4, dtype=np.int32)
    points = (boxes[:, None, :2] - 3 + rng.random((4, 200, 2)) * (boxes[:, None, 2:] - boxes[:, None, :2] + 6))
    labels = sample_mask_grids(sampler, *grid_inputs(grids, frames), Tensor(index),
                               Tensor(points.astype(np.float32))).asnumpy()
    for i in range(4):
        expected = sample_plane(bitmasks[i], points[i] / [160, 120])
        assert np.abs(labels[i] - expected).mean() <= 0.01 and np.abs(labels[i] - expected).max() <= 0.2


def test_average_weights_over_the_batch_or_per_image():
    counted = np.array([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]], bool)
    batch = average_weights(Tensor(counted), per_image=False).asnumpy()
    np.testing.assert_allclose(batch, counted / 4.0)
    image = average_weights(Tensor(counted), per_image=True).asnumpy()
    np.testing.assert_allclose(image, np.array([[1, 1, 1, 0], [3, 0, 0, 0], [0, 0, 0, 0]]) / 9.0)


def test_mask_losses_are_weighted_binary_cross_entropies():
    rng = np.random.default_rng(5)
    coarse, targets = rng.standard_normal((3, 7, 7)), (rng.random((3, 7, 7)) > 0.5).astype(np.float64)
    logits, labels = rng.standard_normal((3, 20)) * 4, rng.random((3, 20))
    weights = np.array([0.5, 0.5, 0.0])

    def bce(x, t):
        return -(t * np.log(1 / (1 + np.exp(-x))) + (1 - t) * np.log(1 - 1 / (1 + np.exp(-x))))

    loss_mask, loss_point = mask_losses(*(Tensor(a.astype(np.float32)) for a in (coarse, targets, logits, labels,
                                                                               weights)))
    assert float(loss_mask.asnumpy()) == pytest.approx((bce(coarse, targets).mean((1, 2)) * weights).sum(), rel=1e-5)
    assert float(loss_point.asnumpy()) == pytest.approx((bce(logits, labels).mean(1) * weights).sum(), rel=1e-5)
