"""Mask R-CNN meta-architecture: input normalization, FPN backbone, RPN, ROI heads (+ a pluggable mask head)."""
import mindspore as ms
from mindspore import nn, ops

from .fpn import FPN
from .resnet import ResNet
from .roi_heads import ROIHeads
from .rpn import RPN


class GeneralizedRCNN(nn.Cell):
    """Inference: uint8 images (N, 3, H, W) zero-padded, BGR, and image_size (N, 2) of the content ->
    (boxes, scores, classes, valid, complete[, mask probabilities]) in the coordinates of the (resized) input;
    `complete` (N,) is False where a fixed-size selection step may have cut the exact result short (see
    box_ops.nms and roi_heads.select_detections)."""

    def __init__(self, backbone, proposal_generator, roi_heads, pixel_mean, pixel_std, input_format,
                 size_divisibility):
        super().__init__()
        self.backbone = backbone
        self.proposal_generator = proposal_generator
        self.roi_heads = roi_heads
        self.pixel_mean = ms.Tensor(pixel_mean, ms.float32).reshape(1, -1, 1, 1)
        self.pixel_std = ms.Tensor(pixel_std, ms.float32).reshape(1, -1, 1, 1)
        if input_format not in ("BGR", "RGB"):
            raise ValueError(f"input format {input_format!r}: expected BGR or RGB")
        self.reverse_channels = input_format == "RGB"  # images arrive BGR
        self.size_divisibility = max(size_divisibility, 1)

    def normalize(self, images, image_size):
        """uint8 BGR (N, 3, H, W) -> float (x - mean) / std in the model's channel order, zero outside the
        content so padding is zeros after normalization (as detectron2 pads the normalized tensor)."""
        x = images.astype(ms.float32)
        if self.reverse_channels:
            x = ops.flip(x, (1,))
        x = (x - self.pixel_mean) / self.pixel_std
        rows = ops.arange(x.shape[2], dtype=ms.int32).reshape(1, 1, -1, 1) < image_size[:, 0].reshape(-1, 1, 1, 1)
        cols = ops.arange(x.shape[3], dtype=ms.int32).reshape(1, 1, 1, -1) < image_size[:, 1].reshape(-1, 1, 1, 1)
        return x * ops.logical_and(rows, cols).astype(ms.float32)

    def padded_size(self, image_size):
        """(N, 2) image sizes -> (N, 2) int32: each rounded up to a multiple of size_divisibility, the input
        detectron2 gives the network for that image alone. An input padded further (a batch of different sizes,
        a fixed canvas) computes each image as in an input of this size (layers/extent)."""
        d = self.size_divisibility
        return ((image_size.astype(ms.int32) + (d - 1)) // d) * d

    def features(self, images, image_size):
        """Pyramid features (p2, ..., p6) of uint8 images (N, 3, H, W), each image computed as in an input of its
        own padded size (layers/extent)."""
        return self.backbone(self.normalize(images, image_size), self.padded_size(image_size))

    def construct(self, images, image_size):
        features = self.features(images, image_size)
        padded_size = self.padded_size(image_size)
        proposals, _, valid, rpn_converged, _ = self.proposal_generator(features, image_size, padded_size)
        outputs = self.roi_heads(features, proposals, valid, image_size, padded_size)
        return outputs[:4] + (ops.logical_and(outputs[4], rpn_converged),) + outputs[5:]

    def losses(self, images, image_size, gt_boxes, gt_classes, gt_valid, gt_masks, rpn_keys, roi_keys, mask_random):
        """Training losses (rpn objectness, rpn box, box classification, box regression[, mask head's ...]) and
        nms_converged (N,) of the RPN's proposal selection (see box_ops.nms).

        gt_* hold K padded ground-truth slots per image (gt_valid marks real ones; gt_masks is the mask head's
        tuple of per-slot ground truth); rpn_keys, roi_keys and the mask head's tuple mask_random are uniform
        [0, 1) draws of the shapes random_input_shapes gives, which drive the random sampling, so that one step
        is a pure function of its inputs.
        """
        features = self.features(images, image_size)
        padded_size = self.padded_size(image_size)
        proposals, _, valid, converged, head_outputs = self.proposal_generator(features, image_size, padded_size)
        rpn_losses = self.proposal_generator.losses(head_outputs, gt_boxes, gt_valid, rpn_keys)
        roi_losses = self.roi_heads.losses(features, padded_size, proposals, valid, gt_boxes, gt_classes, gt_valid,
                                           gt_masks, roi_keys, mask_random)
        return rpn_losses + roi_losses, converged

    def random_input_shapes(self, num_images, height, width, num_gt_slots):
        """Shapes of the uniform draws losses takes for num_images inputs of height x width with num_gt_slots
        ground-truth slots: rpn_keys (N, anchors), roi_keys (N, candidates) and the mask head's tuple (for N times
        its ROIs per image), or () without a mask head."""
        rpn, roi_heads = self.proposal_generator, self.roi_heads
        num_candidates = roi_heads.num_sampling_candidates(rpn.num_train_proposals(height, width), num_gt_slots)
        mask_shapes = () if roi_heads.mask_head is None else roi_heads.mask_head.random_input_shapes(
            num_images * roi_heads.num_mask_rois)
        return (num_images, rpn.num_anchors(height, width)), (num_images, num_candidates), mask_shapes


def build_detector(cfg, mask_head_builder=None):
    """The detector described by `cfg`: each cell built from its config subtree and the shapes of its inputs;
    `mask_head_builder(cfg.model, features' {name: FeatureSpec})` adds a mask head."""
    m = cfg.model
    backbone = FPN(ResNet(m.backbone), m.fpn)
    features = backbone.output_shape()
    proposal_generator = RPN(m.rpn, m.anchor, features)
    mask_head = mask_head_builder(m, features) if mask_head_builder else None
    roi_heads = ROIHeads(m.roi_heads, m.box_head, features, m.num_classes, mask_head)
    return GeneralizedRCNN(backbone, proposal_generator, roi_heads, cfg.input.pixel_mean, cfg.input.pixel_std,
                           cfg.input.format, cfg.input.size_divisibility)
