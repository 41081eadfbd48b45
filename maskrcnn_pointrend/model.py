"""PointRend R-CNN: the Mask R-CNN detector of `maskrcnn` with PointRend's mask head."""
from maskrcnn.detector import build_detector

from .mask_head import PointRendMaskHead

# The order of the losses GeneralizedRCNN.losses returns for this model.
LOSS_NAMES = ("loss_rpn_cls", "loss_rpn_loc", "loss_cls", "loss_box_reg", "loss_mask", "loss_mask_point")


def build_pointrend(cfg):
    """The PointRend model described by `cfg` (a maskrcnn.GeneralizedRCNN with a PointRendMaskHead)."""
    return build_detector(cfg, lambda cfg_model, input_shape: PointRendMaskHead(
        cfg_model.mask_head, cfg_model.point_head, input_shape, cfg_model.num_classes))
