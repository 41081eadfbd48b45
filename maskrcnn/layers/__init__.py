"""Operators with custom kernels."""
from maskrcnn.layers.roi_align import ROIAlignV2, roi_align_v2

__all__ = ["ROIAlignV2", "roi_align_v2"]
