"""Matching predictions (anchors, proposals) to ground truth by IoU, with padded ground-truth slots."""
import mindspore as ms
from mindspore import ops

IGNORE, NEGATIVE, POSITIVE = -1, 0, 1


def match(quality, gt_valid, thresholds, labels, allow_low_quality_matches):
    """quality (K, A) IoU of K ground-truth slots with A predictions, gt_valid (K,) ->
    matches (A,) int32 index of the best ground truth, match_labels (A,) int32 in {-1, 0, 1}.

    thresholds [t1, ..., tn] split IoU into n + 1 intervals labelled by `labels` (e.g. [0.3, 0.7] with
    [0, -1, 1]). With low-quality matches, every prediction whose IoU equals the best IoU some ground truth
    reaches is positive too, so each ground truth gets at least one positive (detectron2's Matcher).
    Invalid slots never match; without any valid ground truth every prediction is labelled labels[0].
    """
    quality = ops.where(gt_valid[:, None], quality, ops.full_like(quality, -1.0))
    matched_quality, matches = ops.amax(quality, 0), ops.argmax(quality, 0).astype(ms.int32)
    match_labels = ops.full(matched_quality.shape, labels[0], dtype=ms.int32)
    for threshold, label in zip(thresholds, labels[1:]):
        match_labels = ops.where(matched_quality >= threshold, ops.full_like(match_labels, label), match_labels)
    if allow_low_quality_matches:
        unmatchable = ops.full(gt_valid.shape, float("inf"), dtype=ms.float32)
        best_for_gt = ops.where(gt_valid, ops.amax(quality, 1), unmatchable)
        # A ground truth overlapping nothing has best IoU 0; it must not make every non-overlapping prediction
        # positive.
        is_best = ops.logical_and(quality == best_for_gt[:, None], best_for_gt[:, None] > 0).any(0)
        match_labels = ops.where(is_best, ops.full_like(match_labels, POSITIVE), match_labels)
    return matches, match_labels
