"""PointRend R-CNN: the Mask R-CNN detector of `maskrcnn` with PointRend's mask head."""
from maskrcnn.detector import build_detector

from .mask_head import PointRendMaskHead


def build_pointrend(cfg):
    """The PointRend model described by `cfg` (a maskrcnn.GeneralizedRCNN with a PointRendMaskHead)."""
    return build_detector(cfg, PointRendMaskHead)
