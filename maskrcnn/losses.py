"""Elementwise losses shared by the heads (no reduction: callers weight and normalize)."""
import mindspore as ms
from mindspore import ops


def sigmoid_bce_with_logits(logits, targets):
    """Binary cross-entropy of sigmoid(logits) against targets in [0, 1], numerically stable."""
    return ops.relu(logits) - logits * targets + ops.log1p(ops.exp(-ops.abs(logits)))


def smooth_l1(diff, beta):
    """Huber-like loss of `diff`; beta = 0 is plain L1 (detectron2's default for R-CNN heads)."""
    abs_diff = ops.abs(diff)
    if beta == 0:
        return abs_diff
    return ops.where(abs_diff < beta, 0.5 * abs_diff * abs_diff / beta, abs_diff - 0.5 * beta)


def average_weights(counted, per_image):
    """(N, R) bool of the terms a loss averages -> (N, R) float32 weights summing to 1 (0 without any term):
    1 / (terms in the batch), detectron2's average over a device's batch; or, when per_image, 1 / (terms in
    the image) / N, each image counting equally however the images are split across devices."""
    weight = counted.astype(ms.float32)
    if per_image:
        return weight / ops.maximum(weight.sum(1, keepdims=True), 1.0) / counted.shape[0]
    return weight / ops.maximum(weight.sum(), 1.0)
