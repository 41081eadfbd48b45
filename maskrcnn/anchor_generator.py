"""Anchors: one size per pyramid level and several aspect ratios, laid on every feature-map cell."""
import math

import mindspore as ms
from mindspore import nn, ops

from .layers.extent import cells_inside


def cell_anchors(size, aspect_ratios):
    """(A, 4) XYXY anchors of area size**2 centred on the origin, one per aspect ratio (h / w)."""
    anchors = []
    for ratio in aspect_ratios:
        w = math.sqrt(size * size / ratio)
        h = ratio * w
        anchors.append((-w / 2.0, -h / 2.0, w / 2.0, h / 2.0))
    return ms.Tensor(anchors, ms.float32)


def grid_anchors(base_anchors, stride, offset, height, width):
    """(A, 4) anchors shifted to every cell of a height x width map -> (height * width * A, 4),
    ordered (y, x, anchor) like the flattened head outputs."""
    shifts_x = ops.arange(0, width, dtype=ms.float32) * stride + offset * stride
    shifts_y = ops.arange(0, height, dtype=ms.float32) * stride + offset * stride
    shift_y, shift_x = ops.meshgrid(shifts_y, shifts_x, indexing="ij")
    shifts = ops.stack((shift_x, shift_y, shift_x, shift_y), axis=-1).reshape(-1, 1, 4)
    return (shifts + base_anchors.reshape(1, -1, 4)).reshape(-1, 4)


class AnchorGenerator(nn.Cell):
    """Anchors for each feature map: tuple of (H_l * W_l * A, 4), A = len(cfg_anchor.aspect_ratios), with one
    size of cfg_anchor.sizes per level of `strides`."""

    def __init__(self, cfg_anchor, strides):
        super().__init__()
        if len(cfg_anchor.sizes) != len(strides):
            raise ValueError(f"{len(cfg_anchor.sizes)} anchor sizes for {len(strides)} feature levels")
        self.base_anchors = tuple(cell_anchors(size, cfg_anchor.aspect_ratios) for size in cfg_anchor.sizes)
        self.strides = tuple(strides)
        self.offset = cfg_anchor.offset
        self.num_anchors = len(cfg_anchor.aspect_ratios)

    def level_counts(self, height, width):
        """Anchors per level for an input of height x width (a multiple of the largest stride, or padded to one)."""
        return [math.ceil(height / s) * math.ceil(width / s) * self.num_anchors for s in self.strides]

    def construct(self, features):
        return tuple(grid_anchors(base, stride, self.offset, f.shape[-2], f.shape[-1])
                     for base, stride, f in zip(self.base_anchors, self.strides, features))

    def inside(self, features, extents):
        """(N, 2) int32 (H, W) extents -> per level (N, H_l * W_l * A) bool: the anchors of the cells that exist
        for each image (layers/extent.cells_inside), i.e. the anchors an input of that size would have."""
        masks = ()
        for stride, f in zip(self.strides, features):
            cells = cells_inside(extents, stride, f.shape[-2], f.shape[-1])[..., None]
            masks += (ops.broadcast_to(cells, cells.shape[:3] + (self.num_anchors,)).reshape(extents.shape[0], -1),)
        return masks
