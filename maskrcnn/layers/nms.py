"""Greedy non-maximum suppression over rows of boxes sorted by descending score, as the RPN and the detection
selection run it: on the CPU an exact custom kernel (csrc/nms_cpu.cc, torchvision's IoU and greedy order), on other
devices box_ops.nms's fixed point of matrix products (exact whenever its rounds cover the longest suppression
chain, which it reports)."""
import mindspore as ms
import numpy as np
from mindspore import nn, ops

from ..box_ops import nms as fixed_point_nms
from .build import COMMON_CSRC, KernelSources
from .custom_op import entry_point

KERNELS = KernelSources(COMMON_CSRC, "nms")


class BatchedNMS(nn.Cell):
    """(boxes (B, N, 4) XYXY, each row sorted by descending score, valid (B, N) bool[, groups (B, N) int32]) ->
    keep (B, N) bool and converged (B,) bool.

    Invalid boxes are neither kept nor suppress others; with groups only boxes of the same group suppress each
    other. `rounds` bounds the fixed point off the CPU (box_ops.nms); the CPU kernel is always exact (converged).
    """

    def __init__(self, iou_threshold, rounds):
        super().__init__()
        self.iou_threshold = iou_threshold
        self.rounds = rounds
        self.on_cpu = ms.get_context("device_target") == "CPU"
        if self.on_cpu:
            self.threshold = ms.Tensor(np.array([iou_threshold], np.float32))
            self.kernel = ops.Custom(entry_point(KERNELS, "NmsForward"), out_shape=lambda *shapes: shapes[1],
                                     out_dtype=lambda *dtypes: ms.bool_, func_type="aot")

    def construct(self, boxes, valid, groups=None):
        if self.on_cpu:
            if groups is None:
                groups = ops.zeros(valid.shape, ms.int32)
            keep = self.kernel(boxes.astype(ms.float32), valid, groups.astype(ms.int32), self.threshold)
            return keep, ops.ones(valid.shape[:1], ms.bool_)
        rows = [fixed_point_nms(boxes[i], valid[i], self.iou_threshold, self.rounds,
                                None if groups is None else groups[i]) for i in range(boxes.shape[0])]
        keep, converged = zip(*rows)
        return ops.stack(keep), ops.stack(converged)
