"""PointRend mask head: coarse masks from a regular point grid, refined by a point head on uncertain points."""
import mindspore as ms
from mindspore import nn, ops

from maskrcnn.losses import sigmoid_bce_with_logits
from maskrcnn.shape_spec import select_features

from .coarse_mask_head import CoarseMaskHead
from .data.gt_masks import GRID_SCALE
from .layers.bilinear_sample import BilinearSample
from .mask_targets import coarse_mask_targets, sample_mask_grids
from .point_features import (calculate_uncertainty, points_in_image, regular_grid_points, sample_image_features,
                             to_channels_last, uncertain_grid_points, uncertain_points_with_randomness)
from .point_head import StandardPointHead


def subdivision_schedule(output_side, steps, num_points):
    """(initial grid side, steps): skip the steps whose whole upsampled grid would be re-predicted anyway (as
    detectron2 does, but never past the last step, so the output side stays output_side * 2 ** steps)."""
    while steps > 0 and 4 * output_side ** 2 <= num_points:
        output_side *= 2
        steps -= 1
    return output_side, steps


def mask_losses(class_coarse, coarse_targets, point_logits, point_labels, weights):
    """(loss_mask, loss_mask_point): binary cross-entropy of the class coarse logits (R, O, O) against the coarse
    targets and of the point logits (R, P) against the point labels, each averaged over a box's cells or
    points, then weighted by weights (R,)."""
    loss_mask = (sigmoid_bce_with_logits(class_coarse, coarse_targets).mean((1, 2)) * weights).sum()
    loss_point = (sigmoid_bce_with_logits(point_logits, point_labels).mean(-1) * weights).sum()
    return loss_mask, loss_point


class PointRendMaskHead(nn.Cell):
    """Mask head for maskrcnn.ROIHeads: (features, boxes (N, D, 4), classes (N, D), valid (N, D)) ->
    (N, D, S, S) mask probabilities in the box frame, S = initial side * 2 ** steps (224 for R50-FPN).

    cfg_mask, cfg_point: the coarse head's and the point head's settings; input_shape: {name: FeatureSpec} of the
    features; num_classes: the model's."""

    def __init__(self, cfg_mask, cfg_point, input_shape, num_classes):
        super().__init__()
        self.coarse_features = tuple((index, spec.stride)
                                     for index, spec in select_features(input_shape, cfg_mask.in_features))
        self.point_features = tuple((index, spec.stride)
                                    for index, spec in select_features(input_shape, cfg_point.in_features))
        coarse_channels = sum(input_shape[name].channels for name in cfg_mask.in_features)
        point_channels = sum(input_shape[name].channels for name in cfg_point.in_features)
        self.coarse_side = cfg_mask.pooler_resolution
        self.coarse_head = CoarseMaskHead(coarse_channels, self.coarse_side, cfg_mask.conv_dim, cfg_mask.fc_dim,
                                          cfg_mask.num_fc, num_classes, cfg_mask.output_side_resolution)
        self.point_head = StandardPointHead(point_channels, num_classes, cfg_point.fc_dim, cfg_point.num_fc,
                                            cfg_point.coarse_pred_each_layer)
        self.sampler = BilinearSample()
        self.coarse_target_samples = cfg_mask.coarse_target_samples
        self.subdivision_num_points = cfg_point.subdivision_num_points
        self.num_train_points = cfg_point.train_num_points
        self.num_oversampled_points = cfg_point.train_num_points * cfg_point.oversample_ratio
        self.num_uncertain_points = int(cfg_point.importance_sample_ratio * cfg_point.train_num_points)
        self.initial_side, self.subdivision_steps = subdivision_schedule(
            cfg_mask.output_side_resolution, cfg_point.subdivision_steps, cfg_point.subdivision_num_points)
        self.output_side = self.initial_side * 2 ** self.subdivision_steps

    def channels_last(self, features):
        """{feature index: (N, H, W, C)} of the levels the coarse and point heads read, transposed once."""
        return {index: to_channels_last(features[index])
                for index, _ in self.coarse_features + self.point_features}

    def coarse_logits(self, maps, boxes):
        """channels_last maps, (N, B, 4) boxes -> (N * B, K, O, O) coarse mask logits from a regular grid of
        points per box."""
        num_boxes = boxes.shape[0] * boxes.shape[1]
        grid = ops.broadcast_to(regular_grid_points(self.coarse_side), (num_boxes, self.coarse_side ** 2, 2))
        sampled = ops.concat([sample_image_features(self.sampler, maps[index], stride, boxes, grid)
                              for index, stride in self.coarse_features], -1)
        sampled = sampled.reshape(num_boxes, self.coarse_side, self.coarse_side, -1).transpose(0, 3, 1, 2)
        return self.coarse_head(sampled)

    def projected_point_maps(self, maps):
        """The point head's first-layer fine-feature term on every cell of its input levels (channels-last)."""
        return self.point_head.project_fine(tuple(maps[index] for index, _ in self.point_features))

    def point_logits(self, projected_maps, boxes, coarse, classes, point_coords):
        """Point head logits (N * B, P) of each box's class at box-relative points (N * B, P, 2)."""
        fine = sample_image_features(self.sampler, projected_maps[0], self.point_features[0][1], boxes, point_coords)
        for maps, (_, stride) in zip(projected_maps[1:], self.point_features[1:]):
            fine = fine + sample_image_features(self.sampler, maps, stride, boxes, point_coords)
        num_boxes, num_points = point_coords.shape[:2]
        box_index = ops.broadcast_to(ops.arange(num_boxes, dtype=ms.int32).reshape(-1, 1), (num_boxes, num_points))
        return self.point_head(fine, to_channels_last(coarse), classes, point_coords.reshape(-1, 2),
                               box_index.reshape(-1))

    def construct(self, features, boxes, classes, valid):
        num_images, num_boxes = boxes.shape[:2]
        total = num_images * num_boxes
        classes = classes.reshape(-1)
        maps = self.channels_last(features)
        coarse = self.coarse_logits(maps, boxes)
        projected_maps = self.projected_point_maps(maps)
        side = self.initial_side
        grid = ops.broadcast_to(regular_grid_points(side), (total, side * side, 2))
        mask_logits = self.point_logits(projected_maps, boxes, coarse, classes, grid).reshape(total, 1, side, side)
        for _ in range(self.subdivision_steps):
            side *= 2
            mask_logits = ops.interpolate(mask_logits, size=(side, side), mode="bilinear", align_corners=False)
            # a reshape rather than [:, 0]: MindSpore's CPU StridedSlice is ~15x slower than a copy
            index, points = uncertain_grid_points(calculate_uncertainty(mask_logits.reshape(total, side, side)),
                                                  self.subdivision_num_points)
            refined = self.point_logits(projected_maps, boxes, coarse, classes, points)
            mask_logits = ops.tensor_scatter_elements(mask_logits.reshape(total, side * side), index, refined,
                                                      axis=1).reshape(total, 1, side, side)
        probs = ops.sigmoid(mask_logits).reshape(num_images, num_boxes, side, side)
        return probs * valid.astype(ms.float32)[:, :, None, None]

    def class_coarse_logits(self, coarse, classes):
        """(R, K, O, O) coarse logits, (R,) classes -> (R, O, O) logits of each box's class."""
        side = coarse.shape[-1]
        index = ops.broadcast_to(classes.reshape(-1, 1, 1, 1), (coarse.shape[0], 1, side, side))
        return ops.gather_elements(coarse, 1, index)[:, 0]

    def training_points(self, class_coarse, random_points, fresh_points):
        """(R, O, O) class coarse logits and uniform points -> (R, P, 2) box-relative training points (constants)."""
        return ops.stop_gradient(uncertain_points_with_randomness(
            self.sampler, class_coarse, random_points, fresh_points, self.num_uncertain_points))

    def random_input_shapes(self, num_rois):
        """Shapes of the uniform draws losses takes for num_rois boxes: the oversampled candidate points and the
        points taken at random (detectron2's two torch.rand calls)."""
        num_random = self.num_train_points - self.num_uncertain_points
        return (num_rois, self.num_oversampled_points, 2), (num_rois, num_random, 2)

    def losses(self, features, boxes, classes, weights, gt_index, gt_masks, random_inputs):
        """Coarse-mask and point losses of boxes (N, M, 4) of ground-truth classes (N, M).

        weights (N, M): each box's weight in the average (maskrcnn.losses.average_weights); gt_index (N, M):
        the slot of each box's instance in gt_masks = (grids (N, K, G, G) uint8, the mask grids (x 255) over
        frames (N, K, 4), see data/gt_masks); random_inputs = (random_points (N * M, P_over, 2), fresh_points
        (N * M, P_fresh, 2)) uniform in [0, 1)^2 (random_input_shapes). Both losses are binary cross-entropy on
        the ground-truth class (mask_losses): loss_mask against the coarse targets, loss_mask_point against soft
        point labels (detectron2's mask_rcnn_loss and roi_mask_point_loss).
        """
        gt_grids, gt_frames = gt_masks
        random_points, fresh_points = random_inputs
        num_images = boxes.shape[0]
        classes = classes.reshape(-1).astype(ms.int32)
        flat_boxes = boxes.reshape(-1, 4)
        slots = gt_grids.shape[1]
        grids = gt_grids.reshape((num_images * slots,) + gt_grids.shape[2:] + (1,)).astype(ms.float32) / GRID_SCALE
        frames = gt_frames.reshape(-1, 4)
        index = (gt_index + ops.arange(num_images, dtype=gt_index.dtype).reshape(-1, 1) * slots).reshape(-1)
        maps = self.channels_last(features)
        coarse = self.coarse_logits(maps, boxes)
        class_coarse = self.class_coarse_logits(coarse, classes)
        coarse_targets = coarse_mask_targets(self.sampler, grids, frames, index, flat_boxes, class_coarse.shape[-1],
                                             self.coarse_target_samples)
        points = self.training_points(class_coarse, random_points, fresh_points)
        point_logits = self.point_logits(self.projected_point_maps(maps), boxes, coarse, classes, points)
        point_labels = sample_mask_grids(self.sampler, grids, frames, index, points_in_image(flat_boxes, points))
        return mask_losses(class_coarse, coarse_targets, point_logits, point_labels, weights.reshape(-1))
