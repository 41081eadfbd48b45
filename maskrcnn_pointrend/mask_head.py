"""PointRend mask head: coarse masks from a regular point grid, refined by a point head on uncertain points."""
import mindspore as ms
from mindspore import nn, ops

from .coarse_mask_head import CoarseMaskHead
from .point_features import (calculate_uncertainty, point_sample, regular_grid_points, sample_image_features,
                             uncertain_grid_points)
from .point_head import StandardPointHead


def subdivision_schedule(output_side, steps, num_points):
    """(initial grid side, steps): skip the steps whose whole upsampled grid would be re-predicted anyway."""
    while 4 * output_side ** 2 <= num_points:
        output_side *= 2
        steps -= 1
    return output_side, steps


class PointRendMaskHead(nn.Cell):
    """Mask head for maskrcnn.ROIHeads: (features, boxes (N, D, 4), classes (N, D), valid (N, D)) ->
    (N, D, S, S) mask probabilities in the box frame, S = initial side * 2 ** steps (224 for R50-FPN)."""

    def __init__(self, cfg_model, feature_strides):
        super().__init__()
        cfg_mask, cfg_point = cfg_model.mask_head, cfg_model.point_head
        names = tuple(feature_strides)
        channels = cfg_model.fpn.out_channels
        self.coarse_features = tuple((names.index(n), feature_strides[n]) for n in cfg_mask.in_features)
        self.point_features = tuple((names.index(n), feature_strides[n]) for n in cfg_point.in_features)
        self.coarse_side = cfg_mask.pooler_resolution
        self.coarse_head = CoarseMaskHead(channels * len(self.coarse_features), self.coarse_side, cfg_mask.conv_dim,
                                          cfg_mask.fc_dim, cfg_mask.num_fc, cfg_model.num_classes,
                                          cfg_mask.output_side_resolution)
        self.point_head = StandardPointHead(channels * len(self.point_features), cfg_model.num_classes,
                                            cfg_point.fc_dim, cfg_point.num_fc, cfg_point.coarse_pred_each_layer)
        self.subdivision_num_points = cfg_point.subdivision_num_points
        self.initial_side, self.subdivision_steps = subdivision_schedule(
            cfg_mask.output_side_resolution, cfg_point.subdivision_steps, cfg_point.subdivision_num_points)
        self.output_side = self.initial_side * 2 ** self.subdivision_steps

    def _sample(self, features, levels, boxes, point_coords):
        """Features of the given levels at box-relative points, concatenated over levels -> (N * B, C, P)."""
        sampled = tuple(sample_image_features(features[index], stride, boxes, point_coords)
                        for index, stride in levels)
        return sampled[0] if len(sampled) == 1 else ops.concat(sampled, 1)

    def coarse_logits(self, features, boxes):
        """(N, B, 4) boxes -> (N * B, K, O, O) coarse mask logits."""
        num_boxes = boxes.shape[0] * boxes.shape[1]
        grid = ops.broadcast_to(regular_grid_points(self.coarse_side), (num_boxes, self.coarse_side ** 2, 2))
        sampled = self._sample(features, self.coarse_features, boxes, grid)
        return self.coarse_head(sampled.reshape(num_boxes, -1, self.coarse_side, self.coarse_side))

    def point_logits(self, features, boxes, coarse, classes, point_coords):
        """Point head logits (N * B, P) of each box's class at box-relative points (N * B, P, 2)."""
        fine = self._sample(features, self.point_features, boxes, point_coords)
        return self.point_head(fine, point_sample(coarse, point_coords), classes)

    def construct(self, features, boxes, classes, valid):
        num_images, num_boxes = boxes.shape[:2]
        total = num_images * num_boxes
        classes = classes.reshape(-1)
        coarse = self.coarse_logits(features, boxes)
        side = self.initial_side
        grid = ops.broadcast_to(regular_grid_points(side), (total, side * side, 2))
        mask_logits = self.point_logits(features, boxes, coarse, classes, grid).reshape(total, 1, side, side)
        for _ in range(self.subdivision_steps):
            side *= 2
            mask_logits = ops.interpolate(mask_logits, size=(side, side), mode="bilinear", align_corners=False)
            index, points = uncertain_grid_points(calculate_uncertainty(mask_logits[:, 0]),
                                                  self.subdivision_num_points)
            refined = self.point_logits(features, boxes, coarse, classes, points)
            mask_logits = ops.tensor_scatter_elements(mask_logits.reshape(total, side * side), index, refined,
                                                      axis=1).reshape(total, 1, side, side)
        probs = ops.sigmoid(mask_logits).reshape(num_images, num_boxes, side, side)
        return probs * valid.astype(ms.float32)[:, :, None, None]
