"""PointRend R-CNN: the Mask R-CNN detector of `maskrcnn` with PointRend's mask head, and what its
training step takes besides the batch."""
import math

import numpy as np

from maskrcnn.detector import build_detector

from .mask_head import PointRendMaskHead

# The order of the losses GeneralizedRCNN.losses returns for this model.
LOSS_NAMES = ("loss_rpn_cls", "loss_rpn_loc", "loss_cls", "loss_box_reg", "loss_mask", "loss_mask_point")


def build_pointrend(cfg):
    """The PointRend model described by `cfg` (a maskrcnn.GeneralizedRCNN with a PointRendMaskHead)."""
    return build_detector(cfg, PointRendMaskHead)


def loss_random_shapes(cfg, batch_size, canvas):
    """Shapes of the uniform [0, 1) inputs of GeneralizedRCNN.losses after the batch, for images on a
    (H, W) canvas: rpn_keys (N, anchors), roi_keys (N, proposals [+ gt slots]), random_points and
    fresh_points (N * foreground slots, points, 2) for PointRend's training points."""
    m = cfg.model
    height, width = canvas
    if height % 32 or width % 32:
        raise ValueError(f"training canvas {canvas} must be a multiple of 32 on both sides")
    level_anchors = [math.ceil(height / 2 ** int(name[1:])) * math.ceil(width / 2 ** int(name[1:]))
                     * len(m.anchor.aspect_ratios) for name in m.rpn.in_features]
    num_anchors = sum(level_anchors)
    num_proposals = min(m.rpn.post_nms_topk_train, sum(min(m.rpn.pre_nms_topk_train, a) for a in level_anchors))
    num_rois = num_proposals + (cfg.input.max_instances if m.roi_heads.proposal_append_gt else 0)
    num_foreground = batch_size * int(m.roi_heads.batch_size_per_image * m.roi_heads.positive_fraction)
    num_points = m.point_head.train_num_points
    num_uncertain = int(m.point_head.importance_sample_ratio * num_points)
    return ((batch_size, num_anchors), (batch_size, num_rois),
            (num_foreground, num_points * m.point_head.oversample_ratio, 2),
            (num_foreground, num_points - num_uncertain, 2))


def draw_loss_randomness(rng, shapes):
    """float32 uniform [0, 1) arrays of the given shapes from a numpy Generator (one per training step, so a
    step is reproducible from its seed)."""
    return [rng.random(shape, dtype=np.float32) for shape in shapes]
