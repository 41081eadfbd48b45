"""Point sampling for PointRend: bilinear features at box-relative points, regular grids and uncertain points.

Shapes: N images (or maps), R boxes (all images, image-major), P points per box, C channels. Coordinates are in
[0, 1] x [0, 1] of a box unless said otherwise, (x, y) order. Feature maps are channels-last (N, H, W, C) and
sampled features come out as rows (R * P, C), the layout the point head's matrix products take. `sampler` is a
maskrcnn_pointrend.layers.bilinear_sample.BilinearSample cell.
"""
import mindspore as ms
from mindspore import ops


def to_channels_last(maps):
    """(N, C, H, W) -> (N, H, W, C)."""
    return maps.transpose(0, 2, 3, 1)


def point_sample(sampler, maps, point_coords):
    """Bilinear samples of (N, H, W, C) maps at (N, P, 2) [0, 1]-normalized points of each map -> (N * P, C)
    (grid_sample with align_corners=False and zero padding)."""
    num_maps, num_points = point_coords.shape[:2]
    batch_index = ops.broadcast_to(ops.arange(num_maps, dtype=ms.int32).reshape(-1, 1), (num_maps, num_points))
    return sampler(maps, point_coords.reshape(-1, 2), batch_index.reshape(-1))


def regular_grid_points(side):
    """(side * side, 2) centres of a side x side grid over the unit square, row-major."""
    centres = (ops.arange(side, dtype=ms.float32) + 0.5) / side
    y, x = ops.meshgrid(centres, centres, indexing="ij")
    return ops.stack((x.reshape(-1), y.reshape(-1)), axis=-1)


def points_in_image(boxes, point_coords):
    """(R, 4) XYXY boxes, (R, P, 2) box-relative points -> (R, P, 2) image coordinates."""
    size = boxes[:, None, 2:] - boxes[:, None, :2]
    return point_coords * size + boxes[:, None, :2]


def sample_image_features(sampler, maps, stride, boxes, point_coords):
    """Features at box-relative points of each image's boxes: (N, H, W, C) maps of the given stride, boxes
    (N, B, 4) in image pixels, point_coords (N * B, P, 2) -> (N * B * P, C)."""
    num_images, num_boxes = boxes.shape[:2]
    image_points = points_in_image(boxes.reshape(-1, 4), point_coords)
    extent = ms.Tensor([maps.shape[2] * stride, maps.shape[1] * stride], ms.float32)
    return point_sample(sampler, maps, (image_points / extent).reshape(num_images, -1, 2))


def uncertain_grid_points(uncertainty, num_points):
    """(R, H, W) uncertainty -> indices (R, P) of the P most uncertain cells and their centres (R, P, 2)."""
    num_boxes, height, width = uncertainty.shape
    _, index = ops.topk(uncertainty.reshape(num_boxes, height * width), num_points)
    x = ((index % width).astype(ms.float32) + 0.5) / width
    y = ((index // width).astype(ms.float32) + 0.5) / height
    return index, ops.stack((x, y), axis=-1)


def uncertain_points_with_randomness(sampler, class_logits, random_points, fresh_points, num_uncertain):
    """Training points: the `num_uncertain` most uncertain of `random_points` (uncertainty of the bilinearly
    sampled logit, not sampled uncertainty) followed by `fresh_points`.

    class_logits (R, H, W) of each box's class; random_points (R, P_over, 2) and fresh_points (R, P_fresh, 2)
    uniform in [0, 1)^2 -> (R, num_uncertain + P_fresh, 2).
    """
    num_boxes, num_over = random_points.shape[:2]
    sampled = ops.stop_gradient(point_sample(sampler, class_logits[..., None], random_points))
    sampled = sampled.reshape(num_boxes, num_over)
    _, index = ops.topk(calculate_uncertainty(sampled), num_uncertain)
    chosen = ops.gather_elements(random_points, 1, ops.broadcast_to(index[..., None], index.shape + (2,)))
    return ops.concat((chosen, fresh_points), 1)


def calculate_uncertainty(logits):
    """Logits of the class of interest (any shape) -> uncertainty -|logit|: highest near the decision boundary."""
    return -ops.abs(logits)
