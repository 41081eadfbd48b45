"""Images smaller than the input they share (a batch padded to its largest image, or a fixed canvas), computed as
if each were alone in an input of its own padded size, its `extent` (N, 2) (H, W) in input pixels.

Cell (y, x) of a map with stride s exists for an image iff its top-left corner (x * s, y * s) lies inside the
extent, i.e. iff it is one of the ceil(extent / s) rows and columns the image's own input would have. A 3x3
convolution at the extent's edge reads zero padding in the image's own input; here it reads the cells beyond, so
those must hold zeros (`zero_beyond`). Pointwise layers (1x1 and strided 1x1 convolutions, norms, ReLUs, sums)
need nothing: what they compute beyond the extent stays there. ROIAlignV2 takes the extents and pools each ROI from
the cells that exist for its image.
"""
import mindspore as ms
from mindspore import ops


def cells_inside(extents, stride, height, width):
    """(N, 2) int32 extents -> (N, height, width) bool: the cells of a (height, width) map of `stride` that exist
    for each image."""
    rows = ops.arange(height, dtype=ms.int32).reshape(1, -1, 1) * stride < extents[:, 0].reshape(-1, 1, 1)
    cols = ops.arange(width, dtype=ms.int32).reshape(1, 1, -1) * stride < extents[:, 1].reshape(-1, 1, 1)
    return ops.logical_and(rows, cols)


def zero_beyond(x, extents, stride):
    """(N, C, H, W) map of `stride` -> the map with the cells beyond each image's extent set to zero."""
    inside = cells_inside(extents, stride, x.shape[2], x.shape[3])
    return x * inside[:, None].astype(x.dtype)

