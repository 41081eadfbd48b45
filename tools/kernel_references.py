"""Numpy references of the custom kernels and the inputs that probe them, shared by the CPU tests (tests/) and the
GPU kernel check (tools/check_gpu_kernels.py). Numpy only: no MindSpore, no GPU.

- ROIAlignV2: a transcription of torchvision's roi_align(aligned=True) as one (P*P, H*W) pooling matrix per ROI,
  whose transpose gives the gradient, on the part of the map that exists for the ROI's image (its extent).
- Bilinear sampling: grid_sample(align_corners=False, padding_mode="zeros") of channels-last maps at
  [0, 1]-normalized points, and the fused relu(base + sample + bias), with their gradients.
"""
import itertools

import numpy as np

F32 = np.float32


# ---- ROIAlignV2 ----

def bilinear_taps(y, x, height, width):
    """[(flat index into (H, W), weight)] of one bilinear sample at feature coordinates (y, x)."""
    if not (-1 <= y <= height and -1 <= x <= width):
        return []
    y = F32(0) if y <= 0 else y
    x = F32(0) if x <= 0 else x
    y_low, x_low = int(y), int(x)
    if y_low >= height - 1:
        y_low = y_high = height - 1
        y = F32(y_low)
    else:
        y_high = y_low + 1
    if x_low >= width - 1:
        x_low = x_high = width - 1
        x = F32(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - F32(y_low), x - F32(x_low)
    hy, hx = F32(1) - ly, F32(1) - lx
    return [(y_low * width + x_low, hy * hx), (y_low * width + x_high, hy * lx),
            (y_high * width + x_low, ly * hx), (y_high * width + x_high, ly * lx)]


def pooling_matrix(roi, scale, height, width, output_size, sampling_ratio):
    """(P*P, H*W) matrix taking a flattened (H, W) plane to the (P, P) bins of roi [b, x1, y1, x2, y2]."""
    p = output_size
    start_x, start_y, end_x, end_y = (F32(v) * F32(scale) - F32(0.5) for v in roi[1:])
    bin_w, bin_h = (end_x - start_x) / F32(p), (end_y - start_y) / F32(p)
    grid_h = sampling_ratio if sampling_ratio > 0 else int(np.ceil((end_y - start_y) / F32(p)))
    grid_w = sampling_ratio if sampling_ratio > 0 else int(np.ceil((end_x - start_x) / F32(p)))
    count = max(grid_h * grid_w, 1)
    matrix = np.zeros((p * p, height * width))
    for ph, pw, iy, ix in itertools.product(range(p), range(p), range(grid_h), range(grid_w)):
        y = start_y + F32(ph) * bin_h + F32(iy + 0.5) * bin_h / F32(grid_h)
        x = start_x + F32(pw) * bin_w + F32(ix + 0.5) * bin_w / F32(grid_w)
        for index, weight in bilinear_taps(y, x, height, width):
            matrix[ph * p + pw, index] += weight / count
    return matrix


def cells_within(extent, scale, size):
    """Rows (or columns) of a level of `size` cells at `scale` that exist for an input extent of `extent` pixels."""
    return int(min(max(np.ceil(F32(extent) * F32(scale)), 1), size))


def reference_roi_align(features, rois, levels, scales, output_size, sampling_ratio, grad_output, extents=None):
    """Pooled (R, C, P, P) of features (L maps (N, C, H_l, W_l) with spatial `scales`) for rois (R, 5) on levels
    (R,) (-1: zero output), each from the cells of its image's extent ((N, 2) input pixels, default: whole maps),
    and the gradients of sum(pooled * grad_output) w.r.t. each feature level."""
    pooled = np.zeros(grad_output.shape)
    grads = [np.zeros(f.shape) for f in features]
    for r, (roi, level) in enumerate(zip(rois, levels)):
        if level < 0:
            continue
        batch = int(roi[0])
        _, channels, height, width = features[level].shape
        if extents is not None:
            height = cells_within(extents[batch][0], scales[level], height)
            width = cells_within(extents[batch][1], scales[level], width)
        matrix = pooling_matrix(roi, scales[level], height, width, output_size, sampling_ratio)
        plane = features[level][batch][:, :height, :width]
        pooled[r] = (plane.reshape(channels, -1) @ matrix.T).reshape(pooled.shape[1:])
        grads[level][batch][:, :height, :width] += (grad_output[r].reshape(channels, -1) @ matrix).reshape(
            channels, height, width)
    return pooled, grads


def make_features(rng, strides, canvas, channels, batch=2):
    """One (batch, channels, H/s, W/s) float32 map per stride of a (H, W) canvas."""
    return [rng.standard_normal((batch, channels, canvas[0] // s, canvas[1] // s)).astype(F32) for s in strides]


def make_rois(rng, canvas, num_levels):
    """(R, 5) ROIs on a 2-image batch of a (H, W) canvas and their (R,) levels, spread over all levels: ordinary
    boxes, boxes under one bin, elongated boxes, boxes on or across the border, the whole canvas, a 925 x 6 px box on
    level 0 (34 x 1 samples per bin on a 960 px wide canvas at stride 4), two skipped (-1) ROIs."""
    height, width = canvas
    groups = []
    for count, (min_size, max_size) in ((12, (8, 60)), (6, (0.2, 5)), (4, (100, 900))):
        x1, y1 = rng.uniform(0, width - 10, count), rng.uniform(0, height - 10, count)
        groups.append(np.stack([x1, y1, x1 + rng.uniform(min_size, max_size, count),
                                y1 + rng.uniform(min_size, max_size, count) / 4], 1))
    groups.append(np.array([[-6, -3, 20, 12], [width - 30, height - 9, width + 7, height + 5],
                            [0, 0, width, height], [5, 20, 930, 26], [100, 0, 104, height]]))
    boxes = np.concatenate(groups)
    batch = rng.integers(0, 2, len(boxes))
    levels = rng.integers(0, num_levels, len(boxes))
    levels[-2] = 0  # the 925 x 6 px box, on the finest level
    levels[[1, 13]] = -1
    return np.concatenate([batch[:, None], boxes], 1).astype(F32), levels.astype(np.int32)


# ---- bilinear sampling of channels-last maps ----

def bilinear_corners(points, batch_index, maps_shape):
    """(P, 4) flat row indices into the (N * H * W, C) rows of maps of shape (N, H, W, C) and (P, 4) float32 weights
    of the four corners of each [0, 1]-normalized point (x, y): pixel position x * W - 0.5, corners outside the map
    (and every corner of a non-finite point) weigh zero."""
    _, height, width, _ = maps_shape
    with np.errstate(invalid="ignore"):
        x = points[:, 0].astype(F32) * F32(width) - F32(0.5)
        y = points[:, 1].astype(F32) * F32(height) - F32(0.5)
        finite = np.isfinite(x) & np.isfinite(y)
        x, y = np.where(finite, x, 0), np.where(finite, y, 0)
        x0, y0 = np.floor(x), np.floor(y)
    fx, fy = x - x0, y - y0
    indices, weights = [], []
    for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1)):
        xi, yi = x0 + dx, y0 + dy
        inside = finite & (xi >= 0) & (xi < width) & (yi >= 0) & (yi < height)
        weight = (fy if dy else F32(1) - fy) * (fx if dx else F32(1) - fx)
        row = (batch_index.astype(np.int64) * height + np.where(inside, yi, 0).astype(np.int64)) * width + \
            np.where(inside, xi, 0).astype(np.int64)
        indices.append(np.where(inside, row, 0))
        weights.append(np.where(inside, weight, F32(0)))
    return np.stack(indices, 1), np.stack(weights, 1)


def reference_bilinear_sample(maps, points, batch_index):
    """Samples (P, C) of maps (N, H, W, C) at points (P, 2) of maps batch_index (P,)."""
    indices, weights = bilinear_corners(points, batch_index, maps.shape)
    rows = maps.reshape(-1, maps.shape[-1]).astype(np.float64)
    return np.einsum("pk,pkc->pc", weights.astype(np.float64), rows[indices])


def reference_bilinear_scatter(grad_output, points, batch_index, maps_shape):
    """The gradient (N, H, W, C) of sum(reference_bilinear_sample(maps, ...) * grad_output) w.r.t. the maps."""
    indices, weights = bilinear_corners(points, batch_index, maps_shape)
    grad = np.zeros((int(np.prod(maps_shape[:3])), maps_shape[3]))
    np.add.at(grad, indices.ravel(), (weights[:, :, None] * grad_output[:, None, :].astype(np.float64)).reshape(
        -1, maps_shape[3]))
    return grad.reshape(maps_shape)


def reference_sample_add_relu(base, maps, points, batch_index, bias, grad_output):
    """relu(base (P, C) + reference_bilinear_sample(maps, points, batch_index) + bias (C,)) and the gradients of
    sum(it * grad_output) w.r.t. base, maps and bias."""
    out = np.maximum(base + reference_bilinear_sample(maps, points, batch_index) + bias, 0)
    grad_base = np.where(out > 0, grad_output, 0).astype(np.float64)
    return out, (grad_base, reference_bilinear_scatter(grad_base, points, batch_index, maps.shape),
                 grad_base.sum(0))


def make_points(rng, count, num_maps, extent=(-0.2, 1.2)):
    """(P, 2) float32 points (x, y) and (P,) int32 batch index on num_maps maps: uniform over `extent` (so some
    fall outside the [0, 1] map), then edge cases: the map's corners and borders, exactly on pixel centres of a
    4x4 grid, just inside and outside the border, far away, and non-finite coordinates."""
    points = rng.uniform(*extent, (count, 2)).astype(F32)
    edges = np.array([[0, 0], [1, 1], [0, 1], [1, 0], [0.5, 0], [0, 0.5], [1, 0.5], [0.5, 1],
                      [0.125, 0.375], [0.625, 0.875], [1e-7, 1 - 1e-7], [-1e-7, 1 + 1e-7],
                      [-0.01, 0.5], [1.01, 0.5], [1e6, 0.5], [-1e30, 3e30],
                      [np.nan, 0.5], [0.5, np.inf], [-np.inf, np.nan]], F32)
    points = np.concatenate([points, edges])
    return points, rng.integers(0, num_maps, len(points)).astype(np.int32)
