"""Box geometry and non-maximum suppression with static shapes (validity masks instead of filtering)."""
import mindspore as ms
from mindspore import ops


def pairwise_iou(boxes1, boxes2):
    """(N, 4), (M, 4) XYXY -> (N, M) IoU, 0 where boxes do not overlap.

    Uses MindSpore's fused IOU kernel, which measures pixel-inclusive sizes (x2 - x1 + 1); shifting the
    far corners by -1 turns that into continuous sizes (x2 - x1), the convention of detectron2 and torchvision.
    """
    corner_shift = ms.Tensor([0.0, 0.0, 1.0, 1.0], boxes1.dtype)
    return ops.iou(boxes2 - corner_shift, boxes1 - corner_shift)


def clip_boxes(boxes, image_size):
    """(B, ..., 4) XYXY clipped to each image's (h, w) in image_size (B, 2)."""
    shape = (image_size.shape[0],) + (1,) * (boxes.ndim - 2)
    h = image_size[:, 0].astype(boxes.dtype).reshape(shape)
    w = image_size[:, 1].astype(boxes.dtype).reshape(shape)
    zero = ops.zeros_like(h)
    return ops.stack((ops.clamp(boxes[..., 0], zero, w), ops.clamp(boxes[..., 1], zero, h),
                      ops.clamp(boxes[..., 2], zero, w), ops.clamp(boxes[..., 3], zero, h)), axis=-1)


def nonempty(boxes):
    """(..., 4) -> (...) bool: width and height both positive."""
    return ops.logical_and(boxes[..., 2] > boxes[..., 0], boxes[..., 3] > boxes[..., 1])


def nms(sorted_boxes, valid, iou_threshold, rounds, groups=None):
    """Greedy NMS on (N, 4) boxes sorted by descending score -> keep (N,) bool and converged () bool.

    Invalid boxes are neither kept nor suppress others; with `groups` (N,) only boxes of the same group
    suppress each other (per-class NMS in one call). The greedy result is the unique fixed point of
    keep_i = valid_i and not any_{j < i}(IoU_ij > t and keep_j). Iterating that map from "keep all valid"
    reaches it after as many rounds as the longest chain of suppressions (a handful in practice), each round a
    matrix-vector product instead of N sequential steps. A fixed number of `rounds` (no data-dependent loop,
    which would make the compiled graph run op by op) gives the exact result whenever `converged` is True.
    """
    n = sorted_boxes.shape[0]
    earlier = ops.tril(ops.ones((n, n), ms.bool_), diagonal=-1)
    suppressors = ops.logical_and(pairwise_iou(sorted_boxes, sorted_boxes) > iou_threshold, earlier)
    suppressors = ops.logical_and(suppressors, valid[None, :])
    if groups is not None:
        suppressors = ops.logical_and(suppressors, groups[:, None] == groups[None, :])
    suppressors = suppressors.astype(ms.float32)

    def update(keep):
        blocked = ops.matmul(suppressors, keep.astype(ms.float32).reshape(n, 1)).reshape(n) > 0
        return ops.logical_and(valid, ops.logical_not(blocked))

    keep = valid
    for _ in range(rounds):
        keep = update(keep)
    return keep, ops.logical_not((update(keep) != keep).any())  # != rather than LogicalXor: no GPU kernel
