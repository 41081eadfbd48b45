"""The training transform of an image's annotations (detectron2's ResizeTransform and HFlipTransform applied to
polygons and boxes, DatasetMapper's clipping and filter_empty_instances' box test)."""
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ResizeFlip:
    """The training transform of an image and its annotations: resize from (height, width) to (new_h, new_w),
    then an optional horizontal flip."""
    height: int
    width: int
    new_h: int
    new_w: int
    flip: bool

    def coords(self, points):
        """(P, 2) float64 (x, y) in original pixels -> transformed pixels, as detectron2 applies its
        ResizeTransform and HFlipTransform to polygon and box coordinates (float64)."""
        out = points * [self.new_w * 1.0 / self.width, self.new_h * 1.0 / self.height]
        if self.flip:
            out[:, 0] = self.new_w - out[:, 0]
        return out

    def boxes(self, boxes):
        """(N, 4) XYXY in original pixels -> (N, 4) float32 in the transformed image, clipped to it (float64
        arithmetic, then float32, as detectron2's transform_instance_annotations)."""
        corners = np.asarray(boxes, np.float64).reshape(-1, 4)[:, [0, 1, 2, 1, 0, 3, 2, 3]].reshape(-1, 4, 2)
        moved = self.coords(corners.reshape(-1, 2)).reshape(-1, 4, 2)
        out = np.concatenate([moved.min(1), moved.max(1)], axis=1).clip(min=0)
        return np.minimum(out, [self.new_w, self.new_h, self.new_w, self.new_h]).astype(np.float32)


def nonempty_boxes(boxes, threshold=1e-5):
    """(N, 4) XYXY -> (N,) bool: width and height above `threshold` (detectron2's Boxes.nonempty)."""
    return ((boxes[:, 2] - boxes[:, 0]) > threshold) & ((boxes[:, 3] - boxes[:, 1]) > threshold)
