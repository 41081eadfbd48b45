"""ROI heads: box classification/regression on proposals, detection selection, and an optional mask head.

The mask head is any Cell called as mask_head(features, boxes (N, D, 4), classes (N, D), valid (N, D)) ->
(N, D, S, S) mask probabilities in the box frame; this module knows nothing else about it.
"""
import mindspore as ms
from mindspore import nn, ops

from .box_coder import BoxCoder
from .box_head import FastRCNNFCHead, FastRCNNPredictor
from .box_ops import clip_boxes, nms
from .poolers import ROIPooler


def select_detections(scores, boxes, valid, score_thresh, nms_thresh, num_candidates, detections_per_image):
    """Per-class NMS over one image's (R, K) class scores and (R, K, 4) boxes, keeping the best detections.

    NMS runs on the `num_candidates` highest-scoring (box, class) pairs above `score_thresh`; it equals NMS
    over all pairs whenever `detections_per_image` of them survive (a pair's fate depends only on pairs
    scoring higher), which the returned `complete` flag reports.
    Returns boxes (D, 4), scores (D,), classes (D,) int32, valid (D,) bool, complete () bool.
    """
    num_classes = scores.shape[1]
    candidate = ops.logical_and(scores > score_thresh, valid[:, None])
    flat_scores = ops.where(candidate, scores, ops.full_like(scores, -1.0)).reshape(-1)
    top_scores, index = ops.topk(flat_scores, min(num_candidates, flat_scores.shape[0]))
    top_boxes = ops.gather(boxes.reshape(-1, 4), index, 0)
    top_classes = (index % num_classes).astype(ms.int32)
    top_valid = top_scores > score_thresh
    keep = nms(top_boxes, top_valid, nms_thresh, groups=top_classes)
    kept_scores = ops.where(keep, top_scores, ops.full_like(top_scores, -1.0))
    det_scores, order = ops.topk(kept_scores, detections_per_image)
    det_valid = det_scores > score_thresh
    complete = ops.logical_or(keep.sum() >= detections_per_image, ops.logical_not(top_valid[-1]))
    return (ops.gather(top_boxes, order, 0), ops.where(det_valid, det_scores, ops.zeros_like(det_scores)),
            ops.gather(top_classes, order, 0), det_valid, complete)


class ROIHeads(nn.Cell):
    """Box head over the pooled proposals; at inference also the final detections and their masks."""

    def __init__(self, cfg_model, feature_strides, mask_head=None):
        super().__init__()
        cfg_roi, cfg_box = cfg_model.roi_heads, cfg_model.box_head
        self.in_features = tuple(feature_strides).index(cfg_roi.in_features[0]), len(cfg_roi.in_features)
        strides = [feature_strides[name] for name in cfg_roi.in_features]
        resolution = cfg_box.pooler_resolution
        self.box_pooler = ROIPooler(resolution, strides, 0, cfg_box.canonical_box_size, cfg_box.canonical_level)
        self.box_head = FastRCNNFCHead(cfg_model.fpn.out_channels * resolution ** 2, cfg_box.num_fc, cfg_box.fc_dim)
        self.box_predictor = FastRCNNPredictor(cfg_box.fc_dim, cfg_model.num_classes)
        self.box_coder = BoxCoder(cfg_box.bbox_reg_weights)
        self.mask_head = mask_head
        self.num_classes = cfg_model.num_classes
        self.score_thresh = cfg_roi.score_thresh_test
        self.nms_thresh = cfg_roi.nms_thresh_test
        self.num_candidates = cfg_roi.nms_candidates_test
        self.detections_per_image = cfg_roi.detections_per_image

    def box_features(self, features, boxes, valid):
        """-> class logits (N, R, K + 1) and deltas (N, R, K * 4) for boxes (N, R, 4)."""
        first, count = self.in_features
        pooled = self.box_pooler(features[first:first + count], boxes, valid)
        cls_logits, deltas = self.box_predictor(self.box_head(pooled))
        num_images, num_boxes = boxes.shape[:2]
        return cls_logits.reshape(num_images, num_boxes, -1), deltas.reshape(num_images, num_boxes, -1)

    def decode_boxes(self, deltas, boxes, image_size):
        """(N, R, K * 4) deltas on (N, R, 4) boxes -> (N, R, K, 4) per-class boxes clipped to the images."""
        num_images, num_boxes = boxes.shape[:2]
        per_class = self.box_coder.decode(deltas.reshape(num_images, num_boxes, self.num_classes, 4),
                                          boxes[:, :, None, :])
        return clip_boxes(per_class, image_size)

    def construct(self, features, proposals, valid, image_size):
        """Inference -> boxes (N, D, 4), scores (N, D), classes (N, D), valid (N, D), complete (N,), and mask
        probabilities (N, D, S, S) when there is a mask head."""
        cls_logits, deltas = self.box_features(features, proposals, valid)
        scores = ops.softmax(cls_logits, -1)[..., :self.num_classes]
        boxes = self.decode_boxes(deltas, proposals, image_size)
        finite = ops.logical_and(ops.isfinite(boxes).all(-1).all(-1), ops.isfinite(scores).all(-1))
        valid = ops.logical_and(valid, finite)
        per_image = [select_detections(scores[i], boxes[i], valid[i], self.score_thresh, self.nms_thresh,
                                       self.num_candidates, self.detections_per_image)
                     for i in range(proposals.shape[0])]
        det_boxes, det_scores, det_classes, det_valid, complete = (ops.stack(x) for x in zip(*per_image))
        outputs = (det_boxes, det_scores, det_classes, det_valid, complete)
        if self.mask_head is not None:
            outputs += (self.mask_head(features, det_boxes, det_classes, det_valid),)
        return outputs
