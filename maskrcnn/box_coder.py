"""Box <-> delta encoding (R-CNN parametrisation): dx, dy scaled by the reference size, dw, dh in log space."""
import math

from mindspore import ops

# Largest log-scale change a delta may apply: boxes can grow at most 1000/16 times per dimension.
DEFAULT_SCALE_CLAMP = math.log(1000.0 / 16)


def centers_and_sizes(boxes):
    """(..., 4) XYXY -> centre x, centre y, width, height, each (...)."""
    widths = boxes[..., 2] - boxes[..., 0]
    heights = boxes[..., 3] - boxes[..., 1]
    return boxes[..., 0] + 0.5 * widths, boxes[..., 1] + 0.5 * heights, widths, heights


class BoxCoder:
    """weights (wx, wy, ww, wh) scale the deltas: (1, 1, 1, 1) for the RPN, (10, 10, 5, 5) for the box head."""

    def __init__(self, weights, scale_clamp=DEFAULT_SCALE_CLAMP):
        self.weights = tuple(float(w) for w in weights)
        self.scale_clamp = scale_clamp

    def encode(self, target_boxes, reference_boxes):
        """(..., 4), (..., 4) XYXY -> (..., 4) deltas that decode reference_boxes into target_boxes."""
        wx, wy, ww, wh = self.weights
        ref_x, ref_y, ref_w, ref_h = centers_and_sizes(reference_boxes)
        tgt_x, tgt_y, tgt_w, tgt_h = centers_and_sizes(target_boxes)
        return ops.stack((wx * (tgt_x - ref_x) / ref_w, wy * (tgt_y - ref_y) / ref_h,
                          ww * ops.log(tgt_w / ref_w), wh * ops.log(tgt_h / ref_h)), axis=-1)

    def decode(self, deltas, reference_boxes):
        """(..., 4) deltas applied to broadcastable (..., 4) XYXY reference boxes -> (..., 4) XYXY."""
        wx, wy, ww, wh = self.weights
        ctr_x, ctr_y, widths, heights = centers_and_sizes(reference_boxes)
        dx = deltas[..., 0] / wx
        dy = deltas[..., 1] / wy
        dw = ops.clamp(deltas[..., 2] / ww, max=self.scale_clamp)
        dh = ops.clamp(deltas[..., 3] / wh, max=self.scale_clamp)
        pred_ctr_x = dx * widths + ctr_x
        pred_ctr_y = dy * heights + ctr_y
        pred_w = ops.exp(dw) * widths
        pred_h = ops.exp(dh) * heights
        return ops.stack((pred_ctr_x - 0.5 * pred_w, pred_ctr_y - 0.5 * pred_h,
                          pred_ctr_x + 0.5 * pred_w, pred_ctr_y + 0.5 * pred_h), axis=-1)
