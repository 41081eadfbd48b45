"""PointRend R-CNN: the Mask R-CNN detector of `maskrcnn` with PointRend's mask head, built from a config or
loaded from a checkpoint."""
import logging

from maskrcnn.detector import build_detector

from .categories import model_categories
from .checkpoints import config_overrides_from_metadata, load_into_network, read_checkpoint
from .mask_head import PointRendMaskHead

logger = logging.getLogger(__name__)

# The order of the losses GeneralizedRCNN.losses returns for this model.
LOSS_NAMES = ("loss_rpn_cls", "loss_rpn_loc", "loss_cls", "loss_box_reg", "loss_mask", "loss_mask_point")


def build_pointrend(cfg):
    """The PointRend model described by `cfg` (a maskrcnn.GeneralizedRCNN with a PointRendMaskHead)."""
    return build_detector(cfg, lambda cfg_model, input_shape: PointRendMaskHead(
        cfg_model.mask_head, cfg_model.point_head, input_shape, cfg_model.num_classes))


def load_model(cfg, checkpoint_path, given_categories=None):
    """(network in inference mode, categories) for a checkpoint that holds every tensor of the model (a partial
    one is an error naming what is missing), built as `cfg` says but with the checkpoint's input conventions
    and number of classes (they live in the network; the rest of cfg still applies). The categories
    (categories.model_categories, with `given_categories` when there) are settled before the network is built."""
    params, metadata = read_checkpoint(checkpoint_path)
    model_cfg = cfg.merged(config_overrides_from_metadata(metadata))
    categories = model_categories(metadata, model_cfg.model.num_classes, checkpoint_path, given_categories)
    net = build_pointrend(model_cfg)
    load_into_network(net, params, strict=True, log=logger)
    net.set_train(False)
    return net, categories
