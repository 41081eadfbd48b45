"""ROIAlignV2 over several FPN levels: detectron2 ROIAlign(aligned=True) as a MindSpore custom operator.

Each ROI is pooled from the one level named by `levels`; semantics are those of torchvision's roi_align
with aligned=True (box shifted by -0.5 feature pixel, adaptive ceil(size / output_size) sampling grid when
sampling_ratio is 0, bilinear samples outside [-1, size] count as zero), on the part of each map that exists for the
ROI's image (its extent, layers/extent.py): size is that part's, as in the image's own input.
"""
import mindspore as ms
import numpy as np
from mindspore import Tensor, nn, ops

from .build import COMMON_CSRC, KernelSources
from .custom_op import entry_point, to_float32

KERNELS = KernelSources(COMMON_CSRC, "roi_align")

_NUM_ROI_INPUTS = 5  # rois, levels, extents, spatial_scales, sampling_ratio


def _split_inputs(inputs, num_levels):
    """(features, rois, levels, extents) from the forward op's inputs (or their shapes or dtypes)."""
    if len(inputs) != num_levels + _NUM_ROI_INPUTS:
        raise ValueError(f"ROIAlignV2 has {num_levels} spatial scales but got "
                         f"{len(inputs) - _NUM_ROI_INPUTS} feature maps")
    return inputs[:num_levels], inputs[num_levels], inputs[num_levels + 1], inputs[num_levels + 2]


def _check_shapes(feature_shapes, rois_shape, levels_shape, extents_shape):
    """Raises ValueError unless features are (N, C, H_l, W_l), rois (R, 5), levels (R,) and extents (N, 2)."""
    if not feature_shapes or any(len(s) != 4 or tuple(s[:2]) != tuple(feature_shapes[0][:2])
                                 for s in feature_shapes):
        raise ValueError(f"ROIAlignV2 features must be (N, C, H, W) with equal N and C, got {feature_shapes}")
    if len(rois_shape) != 2 or rois_shape[1] != 5:
        raise ValueError(f"ROIAlignV2 rois must be (R, 5), got {rois_shape}")
    if tuple(levels_shape) != (rois_shape[0],):
        raise ValueError(f"ROIAlignV2 levels must be ({rois_shape[0]},), got {levels_shape}")
    if tuple(extents_shape) != (feature_shapes[0][0], 2):
        raise ValueError(f"ROIAlignV2 extents must be ({feature_shapes[0][0]}, 2), got {extents_shape}")


def _check_dtypes(feature_dtypes, rois_dtype, levels_dtype, extents_dtype):
    """Raises TypeError unless features and rois are float32 tensors, levels and extents int32."""
    if any(d.element_type() != ms.float32 for d in (*feature_dtypes, rois_dtype)) or \
            any(d.element_type() != ms.int32 for d in (levels_dtype, extents_dtype)):
        raise TypeError(f"ROIAlignV2 takes float32 features and rois, int32 levels and extents, got "
                        f"{list(feature_dtypes)}, {rois_dtype}, {levels_dtype}, {extents_dtype}")


def _forward_op(num_levels: int, output_size: int):
    """Custom op (features..., rois, levels, extents, spatial_scales, sampling_ratio) -> (R, C, P, P)."""

    def infer_shape(*shapes):
        _check_shapes(*_split_inputs(shapes, num_levels))
        return [shapes[num_levels][0], shapes[0][1], output_size, output_size]

    def infer_dtype(*dtypes):
        _check_dtypes(*_split_inputs(dtypes, num_levels))
        return ms.float32

    op = ops.Custom(entry_point(KERNELS, "RoiAlignV2Forward"), out_shape=infer_shape, out_dtype=infer_dtype,
                    func_type="aot")
    # PyNative caches inferred shapes by primitive attributes: ops differing only in output_size must differ here.
    op.add_prim_attr("output_size", output_size)
    return op


def _backward_op(num_levels: int):
    """Custom op (dout, rois, levels, extents, spatial_scales, sampling_ratio, features...) -> feature gradients."""
    return ops.Custom(entry_point(KERNELS, "RoiAlignV2Backward"),
                      out_shape=lambda *shapes: tuple(shapes[_NUM_ROI_INPUTS + 1:]),
                      out_dtype=(ms.float32,) * num_levels, func_type="aot")


class _PoolLevels(nn.Cell):
    """The custom forward op with its gradient; inputs are ordered (rois, levels, extents, features) because
    PyNative reads a custom bprop result whose first item is a tuple as (positional grads, keyword grads)."""

    def __init__(self, output_size: int, spatial_scales, sampling_ratio: int):
        super().__init__()
        self.spatial_scales = Tensor(np.asarray(spatial_scales, np.float32))
        self.sampling_ratio = Tensor(np.array([sampling_ratio], np.int32))
        self.pool = _forward_op(len(spatial_scales), output_size)
        self.pool_grad = _backward_op(len(spatial_scales))

    def construct(self, rois, levels, extents, features):
        return self.pool(*features, rois, levels, extents, self.spatial_scales, self.sampling_ratio)

    def bprop(self, rois, levels, extents, features, out, dout):
        feature_grads = self.pool_grad(dout, rois, levels, extents, self.spatial_scales, self.sampling_ratio,
                                       *features)
        return ops.zeros_like(rois), ops.zeros_like(levels), ops.zeros_like(extents), tuple(feature_grads)


class ROIAlignV2(nn.Cell):
    """Pools (R, C, P, P) from multi-level (N, C, H_l, W_l) features for ROIs (R, 5) on levels (R,).

    Args:
        output_size: P, the side of the pooled grid.
        spatial_scales: one float per level, 1 / stride of that level.
        sampling_ratio: samples per bin side; 0 for the adaptive ceil(roi_size / P).
    """

    def __init__(self, output_size: int, spatial_scales, sampling_ratio: int):
        super().__init__()
        if output_size < 1 or sampling_ratio < 0 or not spatial_scales:
            raise ValueError(f"ROIAlignV2 needs output_size >= 1, sampling_ratio >= 0 and at least one spatial "
                             f"scale, got {output_size}, {sampling_ratio}, {spatial_scales}")
        self.pool = _PoolLevels(output_size, spatial_scales, sampling_ratio)
        self.first_stride = round(1 / spatial_scales[0])

    def construct(self, features, rois, levels, extents=None):
        """features: tuple of L (N, C, H_l, W_l) (float16 ones are pooled in float32); rois: (R, 5) [batch, x1, y1,
        x2, y2] in image pixels; levels: (R,) int32 in [0, L), or -1 for a zero output; extents: (N, 2) int32 (H, W)
        of each image's input, by default the whole maps' -> float32."""
        if extents is None:
            num_images, _, height, width = features[0].shape
            extents = ops.broadcast_to(ms.Tensor([[height * self.first_stride, width * self.first_stride]], ms.int32),
                                       (num_images, 2))
        return self.pool(to_float32(rois), levels, extents.astype(ms.int32), tuple([to_float32(f) for f in features]))
