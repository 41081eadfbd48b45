"""Multi-level ROI pooling: each box is pooled from the pyramid level that matches its size (FPN paper, eq. 1)."""
import math

import mindspore as ms
from mindspore import nn, ops

from .layers.roi_align import ROIAlignV2


def assign_boxes_to_levels(boxes, min_level, max_level, canonical_box_size, canonical_level):
    """(..., 4) XYXY -> (...) int32 index into [min_level, max_level], counted from min_level."""
    sizes = ops.sqrt((boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1]))
    levels = ops.floor(canonical_level + ops.log2(sizes / canonical_box_size + 1e-8))
    return (ops.clamp(levels, min_level, max_level) - min_level).astype(ms.int32)


class ROIPooler(nn.Cell):
    """(features per level, padded sizes (N, 2), boxes (N, R, 4), valid (N, R)) -> (N * R, C, S, S); invalid
    boxes pool zeros. Each image is pooled as from an input of its padded size (layers/extent)."""

    def __init__(self, output_size, strides, sampling_ratio=0, canonical_box_size=224, canonical_level=4):
        super().__init__()
        self.min_level = int(math.log2(strides[0]))
        self.max_level = int(math.log2(strides[-1]))
        self.canonical_box_size = canonical_box_size
        self.canonical_level = canonical_level
        self.roi_align = ROIAlignV2(output_size, tuple(1.0 / s for s in strides), sampling_ratio)

    def construct(self, features, padded_size, boxes, valid):
        num_images, num_boxes = boxes.shape[:2]
        levels = assign_boxes_to_levels(boxes, self.min_level, self.max_level, self.canonical_box_size,
                                        self.canonical_level)
        levels = ops.where(valid, levels, ops.full_like(levels, -1)).reshape(-1)
        batch_index = ops.broadcast_to(ops.arange(num_images, dtype=ms.float32).reshape(-1, 1, 1),
                                       (num_images, num_boxes, 1))
        rois = ops.concat((batch_index, boxes), -1).reshape(-1, 5)
        return self.roi_align(features, ops.stop_gradient(rois), levels, padded_size)
