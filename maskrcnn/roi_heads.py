"""ROI heads: box classification/regression on proposals, detection selection, and an optional mask head.

Training losses average over the sampled ROIs of the device's batch, as detectron2 does
(loss_normalization "batch"), or over each image's ROIs and then over images ("image"), so that N devices
with B images each and one device with N * B images compute the same gradient.

The mask head is any Cell called as mask_head(features, boxes (N, D, 4), classes (N, D), valid (N, D)) ->
(N, D, S, S) mask probabilities in the box frame, with a method mask_head.losses(features, boxes (N, M, 4),
classes (N, M), weights (N, M), gt_index (N, M), gt_masks, random_inputs) -> tuple of losses, where weights
are each box's weight in the average over boxes (0 for boxes that are not foreground), gt_index the
ground-truth slot matched by each box, gt_masks the ground-truth masks per slot and random_inputs the uniform
draws of its training step, both tuples in whatever form the mask head takes them (random_input_shapes(R)
gives the shapes of random_inputs for R boxes); this module knows nothing else about it.
"""
import mindspore as ms
from mindspore import nn, ops

from .box_coder import BoxCoder
from .box_head import FastRCNNFCHead, FastRCNNPredictor
from .box_ops import clip_boxes, pairwise_iou
from .layers.nms import BatchedNMS
from .losses import average_weights, smooth_l1
from .matcher import NEGATIVE, POSITIVE, match
from .poolers import ROIPooler
from .sampler import subsample
from .shape_spec import select_features


def select_detections(scores, boxes, valid, score_thresh, nms, num_candidates, detections_per_image):
    """Per-class NMS over one image's (R, K) class scores and (R, K, 4) boxes, keeping the best detections.

    NMS runs on the `num_candidates` highest-scoring (box, class) pairs above `score_thresh`; it equals NMS
    over all pairs whenever `detections_per_image` of them survive (a pair's fate depends only on pairs
    scoring higher) and NMS converged, which the returned `complete` flag reports.
    nms: a layers.nms.BatchedNMS. Returns boxes (D, 4), scores (D,), classes (D,) int32, valid (D,) bool,
    complete () bool.
    """
    num_classes = scores.shape[1]
    candidate = ops.logical_and(scores > score_thresh, valid[:, None])
    flat_scores = ops.where(candidate, scores, ops.full_like(scores, -1.0)).reshape(-1)
    top_scores, index = ops.topk(flat_scores, min(num_candidates, flat_scores.shape[0]))
    top_boxes = ops.gather(boxes.reshape(-1, 4), index, 0)
    top_classes = (index % num_classes).astype(ms.int32)
    top_valid = top_scores > score_thresh
    keep, converged = nms(top_boxes[None], top_valid[None], top_classes[None])
    keep, converged = keep[0], converged[0]
    kept_scores = ops.where(keep, top_scores, ops.full_like(top_scores, -1.0))
    det_scores, order = ops.topk(kept_scores, detections_per_image)
    det_valid = det_scores > score_thresh
    enough = ops.logical_or(keep.sum() >= detections_per_image, ops.logical_not(top_valid[-1]))
    complete = ops.logical_and(enough, converged)
    return (ops.gather(top_boxes, order, 0), ops.where(det_valid, det_scores, ops.zeros_like(det_scores)),
            ops.gather(top_classes, order, 0), det_valid, complete)


class ROIHeads(nn.Cell):
    """Box head over the pooled proposals; at inference also the final detections and their masks.

    cfg_roi, cfg_box: the ROI heads' and the box head's settings; input_shape: {name: FeatureSpec} of the
    features; num_classes: the model's; mask_head: an optional mask head (see the module's docstring)."""

    def __init__(self, cfg_roi, cfg_box, input_shape, num_classes, mask_head=None):
        super().__init__()
        selected = select_features(input_shape, cfg_roi.in_features)
        first = selected[0][0]
        if [index for index, _ in selected] != list(range(first, first + len(selected))):
            raise ValueError(f"the ROI heads pool consecutive pyramid levels, got {cfg_roi.in_features}")
        self.in_features = first, len(selected)
        strides = [spec.stride for _, spec in selected]
        resolution = cfg_box.pooler_resolution
        self.box_pooler = ROIPooler(resolution, strides, 0, cfg_box.canonical_box_size, cfg_box.canonical_level)
        self.box_head = FastRCNNFCHead(selected[0][1].channels * resolution ** 2, cfg_box.num_fc, cfg_box.fc_dim)
        self.box_predictor = FastRCNNPredictor(cfg_box.fc_dim, num_classes)
        self.box_coder = BoxCoder(cfg_box.bbox_reg_weights)
        self.smooth_l1_beta = cfg_box.smooth_l1_beta
        self.train_on_pred_boxes = cfg_box.train_on_pred_boxes
        self.iou_threshold = cfg_roi.iou_threshold
        self.batch_size_per_image = cfg_roi.batch_size_per_image
        self.positive_fraction = cfg_roi.positive_fraction
        self.proposal_append_gt = cfg_roi.proposal_append_gt
        if cfg_roi.loss_normalization not in ("batch", "image"):
            raise ValueError(f"model.roi_heads.loss_normalization must be 'batch' or 'image', got "
                             f"{cfg_roi.loss_normalization!r}")
        self.per_image_losses = cfg_roi.loss_normalization == "image"
        self.mask_head = mask_head
        self.num_classes = num_classes
        self.score_thresh = cfg_roi.score_thresh_test
        self.nms = BatchedNMS(cfg_roi.nms_thresh_test, cfg_roi.nms_rounds)
        self.num_candidates = cfg_roi.nms_candidates_test
        self.detections_per_image = cfg_roi.detections_per_image
        # Foreground ROIs come first in a sampled image; there are at most this many, the mask head's ROIs.
        self.num_mask_rois = int(self.batch_size_per_image * self.positive_fraction)

    def num_sampling_candidates(self, num_proposals, num_gt_slots):
        """Candidates sampled from per image (the length of its random keys for the losses): the proposal slots,
        and the ground-truth slots when they are appended."""
        return num_proposals + (num_gt_slots if self.proposal_append_gt else 0)

    def box_features(self, features, padded_size, boxes, valid):
        """-> class logits (N, R, K + 1) and deltas (N, R, K * 4) for boxes (N, R, 4)."""
        first, count = self.in_features
        pooled = self.box_pooler(features[first:first + count], padded_size, boxes, valid)
        cls_logits, deltas = self.box_predictor(self.box_head(pooled))
        num_images, num_boxes = boxes.shape[:2]
        return cls_logits.reshape(num_images, num_boxes, -1), deltas.reshape(num_images, num_boxes, -1)

    def decode_boxes(self, deltas, boxes, image_size):
        """(N, R, K * 4) deltas on (N, R, 4) boxes -> (N, R, K, 4) per-class boxes clipped to the images."""
        num_images, num_boxes = boxes.shape[:2]
        per_class = self.box_coder.decode(deltas.reshape(num_images, num_boxes, self.num_classes, 4),
                                          boxes[:, :, None, :])
        return clip_boxes(per_class, image_size)

    def detect(self, features, proposals, valid, image_size, padded_size):
        """Inference on images of image_size (N, 2) in inputs of padded_size (N, 2) -> boxes (N, D, 4), scores
        (N, D), classes (N, D), valid (N, D) and complete (N,)."""
        cls_logits, deltas = self.box_features(features, padded_size, proposals, valid)
        scores = ops.softmax(cls_logits, -1)[..., :self.num_classes]
        boxes = self.decode_boxes(deltas, proposals, image_size)
        finite = ops.logical_and(ops.isfinite(boxes).all(-1).all(-1), ops.isfinite(scores).all(-1))
        valid = ops.logical_and(valid, finite)
        per_image = [select_detections(scores[i], boxes[i], valid[i], self.score_thresh, self.nms,
                                       self.num_candidates, self.detections_per_image)
                     for i in range(proposals.shape[0])]
        return tuple(ops.stack(x) for x in zip(*per_image))

    def construct(self, features, proposals, valid, image_size, padded_size):
        """Inference -> detect's outputs, and mask probabilities (N, D, S, S) when there is a mask head."""
        outputs = self.detect(features, proposals, valid, image_size, padded_size)
        if self.mask_head is not None:
            outputs += (self.mask_head(features, outputs[0], outputs[2], outputs[3]),)
        return outputs

    def label_and_sample(self, proposals, proposal_valid, gt_boxes, gt_classes, gt_valid, random_keys):
        """Sample `batch_size_per_image` ROIs per image, foreground (IoU >= threshold) first, at most
        `positive_fraction` of them; with proposal_append_gt the ground-truth boxes are candidates too.

        proposals (N, P, 4), proposal_valid (N, P), gt_* (N, K, ...), random_keys (N, P [+ K]) ->
        boxes (N, S, 4), classes (N, S) (num_classes for background), matched ground-truth slot (N, S),
        foreground (N, S), sampled (N, S).
        """
        if self.proposal_append_gt:
            proposals = ops.concat((proposals, gt_boxes), 1)
            proposal_valid = ops.concat((proposal_valid, gt_valid), 1)
        outputs = []
        for i in range(proposals.shape[0]):
            quality = pairwise_iou(gt_boxes[i], proposals[i])
            matches, labels = match(quality, gt_valid[i], (self.iou_threshold,), (NEGATIVE, POSITIVE), False)
            positive = ops.logical_and(proposal_valid[i], labels == POSITIVE)
            negative = ops.logical_and(proposal_valid[i], labels == NEGATIVE)
            index, foreground, sampled = subsample(positive, negative, self.batch_size_per_image,
                                                   self.positive_fraction, random_keys[i])
            matched = ops.gather(matches, index, 0)
            classes = ops.where(foreground, ops.gather(gt_classes[i], matched, 0),
                                ops.full_like(matched, self.num_classes))
            outputs.append((ops.gather(proposals[i], index, 0), classes, matched, foreground, sampled))
        return tuple(ops.stack(x) for x in zip(*outputs))

    def box_losses(self, cls_logits, deltas, boxes, classes, matched_gt_boxes, foreground, sampled):
        """Softmax cross-entropy over K + 1 classes, averaged over the sampled ROIs, and L1 on the ground-truth
        class's deltas of the foreground ones, divided by the same count (detectron2's fast_rcnn losses).
        Shapes (N, S, ...)."""
        weight = average_weights(sampled, self.per_image_losses)
        log_probs = ops.log_softmax(cls_logits, -1)
        class_log_probs = ops.gather_elements(log_probs, 2, classes[..., None].astype(ms.int32))[..., 0]
        loss_cls = -(class_log_probs * weight).sum()
        class_deltas = self._class_deltas(deltas, classes)
        targets = self.box_coder.encode(ops.where(foreground[..., None], matched_gt_boxes, boxes), boxes)
        loss = smooth_l1(class_deltas - ops.stop_gradient(targets), self.smooth_l1_beta).sum(-1)
        loss_box_reg = (loss * foreground.astype(ms.float32) * weight).sum()
        return loss_cls, loss_box_reg

    def _class_deltas(self, deltas, classes):
        """(N, S, K * 4) deltas, (N, S) classes (background clamped to the last class) -> (N, S, 4)."""
        num_images, num_boxes = classes.shape
        per_class = deltas.reshape(num_images, num_boxes, self.num_classes, 4)
        index = ops.clamp(classes, 0, self.num_classes - 1).astype(ms.int32).reshape(num_images, num_boxes, 1, 1)
        return ops.gather_elements(per_class, 2, ops.broadcast_to(index, (num_images, num_boxes, 1, 4)))[:, :, 0]

    def box_training(self, features, padded_size, sample, gt_boxes):
        """A label_and_sample result and gt_boxes (N, K, 4) -> ((loss_cls, loss_box_reg), the mask head's ROIs):
        the foreground slots' boxes (N, M, 4) -- the box head's regression for their ground-truth class when
        train_on_pred_boxes (no gradient) --, classes (N, M), loss weights (N, M) and ground-truth slots (N, M)."""
        boxes, classes, matched, foreground, sampled = sample
        cls_logits, deltas = self.box_features(features, padded_size, boxes, sampled)
        matched_gt_boxes = ops.gather_elements(gt_boxes, 1, ops.broadcast_to(matched[..., None], boxes.shape))
        losses = self.box_losses(cls_logits, deltas, boxes, classes, matched_gt_boxes, foreground, sampled)
        if self.train_on_pred_boxes:
            boxes = ops.stop_gradient(self.box_coder.decode(self._class_deltas(deltas, classes), boxes))
        num_fg = self.num_mask_rois
        fg_classes = ops.clamp(classes[:, :num_fg], 0, self.num_classes - 1)  # background slots weigh 0
        weights = average_weights(foreground[:, :num_fg], self.per_image_losses)
        return losses, (boxes[:, :num_fg], fg_classes, weights, matched[:, :num_fg])

    def losses(self, features, padded_size, proposals, proposal_valid, gt_boxes, gt_classes, gt_valid, gt_masks,
               roi_keys, mask_random):
        """Training: (loss_cls, loss_box_reg) + the mask head's losses on the foreground ROIs (box_training)."""
        sample = self.label_and_sample(proposals, proposal_valid, gt_boxes, gt_classes, gt_valid, roi_keys)
        losses, mask_rois = self.box_training(features, padded_size, sample, gt_boxes)
        if self.mask_head is None:
            return losses
        return losses + self.mask_head.losses(features, *mask_rois, gt_masks, mask_random)
