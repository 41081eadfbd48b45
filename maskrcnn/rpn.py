"""Region Proposal Network: a shared conv head over every pyramid level and proposal selection."""
import mindspore as ms
from mindspore import nn, ops
from mindspore.common.initializer import Normal

from .anchor_generator import AnchorGenerator
from .box_coder import BoxCoder
from .box_ops import clip_boxes, nonempty, pairwise_iou
from .layers.conv import Conv2d
from .layers.nms import BatchedNMS
from .losses import sigmoid_bce_with_logits, smooth_l1
from .matcher import IGNORE, NEGATIVE, POSITIVE, match
from .sampler import subsample
from .shape_spec import select_features


class RPNHead(nn.Cell):
    """3x3 conv + ReLU, then per-anchor objectness logits and box deltas, for each level.

    Returns (logits, deltas): tuples over levels of (N, H*W*A) and (N, H*W*A, 4), ordered (y, x, anchor).
    """

    def __init__(self, in_channels, num_anchors):
        super().__init__()
        self.conv = Conv2d(in_channels, in_channels, 3, padding=1, relu=True, weight_init=Normal(0.01))
        self.objectness_logits = Conv2d(in_channels, num_anchors, 1, weight_init=Normal(0.01))
        self.anchor_deltas = Conv2d(in_channels, num_anchors * 4, 1, weight_init=Normal(0.01))
        self.num_anchors = num_anchors

    def construct(self, features):
        logits = ()
        deltas = ()
        for x in features:
            t = self.conv(x)
            n, _, h, w = t.shape
            logits += (self.objectness_logits(t).transpose(0, 2, 3, 1).reshape(n, -1),)
            d = self.anchor_deltas(t).reshape(n, self.num_anchors, 4, h, w)
            deltas += (d.transpose(0, 3, 4, 1, 2).reshape(n, -1, 4),)
        return logits, deltas


def select_proposals(anchors, logits, deltas, inside, image_size, box_coder, pre_nms_topk, post_nms_topk, nms):
    """Top-scoring decoded anchors per level, clipped, NMS per level, then the best `post_nms_topk` overall.

    anchors: per level (A_l, 4); logits: per level (N, A_l); deltas: per level (N, A_l, 4); inside: per level
    (N, A_l) bool, the anchors that exist for each image (AnchorGenerator.inside); image_size (N, 2); nms: a
    layers.nms.BatchedNMS.
    Returns proposals (N, post_nms_topk, 4), objectness logits (N, post_nms_topk), valid (N, post_nms_topk)
    (slots beyond the number of surviving boxes are invalid) and nms_converged (N,) (see box_ops.nms).
    """
    num_images = image_size.shape[0]
    level_boxes, level_scores, level_keep = [], [], []
    converged = ops.ones((num_images,), ms.bool_)
    logits, deltas = ops.stop_gradient(logits), ops.stop_gradient(deltas)  # proposals are constants for the heads
    for level_anchors, level_logits, level_deltas, level_inside in zip(anchors, logits, deltas, inside):
        level_logits = ops.where(level_inside, level_logits, ops.full_like(level_logits, float("-inf")))
        k = min(pre_nms_topk, level_logits.shape[1])
        scores, index = ops.topk(level_logits, k)
        picked_deltas = ops.gather_elements(level_deltas, 1, ops.broadcast_to(index[..., None], (num_images, k, 4)))
        boxes = clip_boxes(box_coder.decode(picked_deltas, ops.gather(level_anchors, index, 0)), image_size)
        valid = ops.logical_and(nonempty(boxes), ops.logical_and(ops.isfinite(scores), ops.isfinite(boxes).all(-1)))
        keep, done = nms(boxes, valid)
        converged = ops.logical_and(converged, done)
        level_boxes.append(boxes)
        level_scores.append(scores)
        level_keep.append(keep)
    boxes = ops.concat(level_boxes, 1)
    scores = ops.concat(level_scores, 1)
    kept_scores = ops.where(ops.concat(level_keep, 1), scores, ops.full_like(scores, float("-inf")))
    top_scores, order = ops.topk(kept_scores, min(post_nms_topk, kept_scores.shape[1]))
    top_boxes = ops.gather_elements(boxes, 1, ops.broadcast_to(order[..., None], order.shape + (4,)))
    return top_boxes, top_scores, top_scores > float("-inf"), converged


class RPN(nn.Cell):
    """Proposals for each image from the pyramid features (and, for training, the raw head outputs).

    cfg_rpn: the RPN's settings; cfg_anchor: its anchors'; input_shape: {name: FeatureSpec} of the features."""

    def __init__(self, cfg_rpn, cfg_anchor, input_shape):
        super().__init__()
        selected = select_features(input_shape, cfg_rpn.in_features)
        channels = {spec.channels for _, spec in selected}
        if len(channels) != 1:
            raise ValueError(f"the RPN's shared head needs equal channels on {cfg_rpn.in_features}, got {channels}")
        self.feature_indices = tuple(index for index, _ in selected)
        self.anchor_generator = AnchorGenerator(cfg_anchor, [spec.stride for _, spec in selected])
        self.rpn_head = RPNHead(channels.pop(), self.anchor_generator.num_anchors)
        self.box_coder = BoxCoder(cfg_rpn.bbox_reg_weights)
        self.iou_thresholds = tuple(cfg_rpn.iou_thresholds)
        self.batch_size_per_image = cfg_rpn.batch_size_per_image
        self.positive_fraction = cfg_rpn.positive_fraction
        self.smooth_l1_beta = cfg_rpn.smooth_l1_beta
        self.nms = BatchedNMS(cfg_rpn.nms_thresh, cfg_rpn.nms_rounds)
        self.topk_train = (cfg_rpn.pre_nms_topk_train, cfg_rpn.post_nms_topk_train)
        self.topk_test = (cfg_rpn.pre_nms_topk_test, cfg_rpn.post_nms_topk_test)

    def num_anchors(self, height, width):
        """Anchors of an input of height x width: the length of an image's random keys for the losses."""
        return sum(self.anchor_generator.level_counts(height, width))

    def num_train_proposals(self, height, width):
        """Proposal slots per image in training on an input of height x width."""
        pre_nms_topk, post_nms_topk = self.topk_train
        return min(post_nms_topk, sum(min(pre_nms_topk, a) for a in self.anchor_generator.level_counts(height, width)))

    def construct(self, features, image_size, padded_size):
        """Images of image_size (N, 2) in inputs padded to padded_size (N, 2) (anchors over the input beyond it
        are left out: see AnchorGenerator.inside) -> proposals (N, P, 4), their objectness logits (N, P), valid
        (N, P), nms_converged (N,), and (anchors, inside, logits, deltas) for the losses."""
        features = tuple(features[i] for i in self.feature_indices)
        anchors = self.anchor_generator(features)
        inside = self.anchor_generator.inside(features, padded_size)
        logits, deltas = self.rpn_head(features)
        pre_nms_topk, post_nms_topk = self.topk_train if self.training else self.topk_test
        proposals, scores, valid, converged = select_proposals(anchors, logits, deltas, inside, image_size,
                                                               self.box_coder, pre_nms_topk, post_nms_topk, self.nms)
        return proposals, scores, valid, converged, (anchors, inside, logits, deltas)

    def label_anchors(self, anchors, inside, gt_boxes, gt_valid):
        """anchors (A, 4), inside (A,) bool, gt_boxes (K, 4), gt_valid (K,) -> matched slot (A,) and label (A,)
        (POSITIVE, NEGATIVE, IGNORE), matching only the anchors inside as if the others did not exist."""
        quality = pairwise_iou(gt_boxes, anchors)
        quality = ops.where(inside[None, :], quality, ops.full_like(quality, -1.0))
        matches, labels = match(quality, gt_valid, self.iou_thresholds, (NEGATIVE, IGNORE, POSITIVE), True)
        return matches, ops.where(inside, labels, ops.full_like(labels, IGNORE))

    def losses(self, head_outputs, gt_boxes, gt_valid, random_keys):
        """Objectness and box-delta losses on `batch_size_per_image` sampled anchors per image.

        head_outputs: (anchors, inside, logits, deltas) from construct; gt_boxes (N, K, 4), gt_valid (N, K);
        random_keys (N, A) uniform [0, 1) choosing the sampled anchors. Both losses are sums over the sampled
        anchors divided by batch_size_per_image * N. Anchors between the IoU thresholds (0.3, 0.7) are ignored,
        and so are the anchors that do not exist for an image (see construct).
        """
        anchors, inside, logits, deltas = head_outputs
        anchors = ops.concat(anchors, 0)
        inside, logits, deltas = ops.concat(inside, 1), ops.concat(logits, 1), ops.concat(deltas, 1)
        num_images = logits.shape[0]
        objectness, localization = 0.0, 0.0
        for i in range(num_images):
            matches, labels = self.label_anchors(anchors, inside[i], gt_boxes[i], gt_valid[i])
            index, is_positive, is_sampled = subsample(labels == POSITIVE, labels == NEGATIVE,
                                                       self.batch_size_per_image, self.positive_fraction,
                                                       random_keys[i])
            bce = sigmoid_bce_with_logits(ops.gather(logits[i], index, 0), is_positive.astype(ms.float32))
            objectness += (bce * is_sampled.astype(ms.float32)).sum()
            sampled_anchors = ops.gather(anchors, index, 0)
            matched_gt = ops.gather(gt_boxes[i], ops.gather(matches, index, 0), 0)
            targets = self.box_coder.encode(ops.where(is_positive[:, None], matched_gt, sampled_anchors),
                                            sampled_anchors)
            loss = smooth_l1(ops.gather(deltas[i], index, 0) - ops.stop_gradient(targets), self.smooth_l1_beta)
            localization += (loss.sum(-1) * is_positive.astype(ms.float32)).sum()
        normalizer = float(self.batch_size_per_image * num_images)
        return objectness / normalizer, localization / normalizer
