"""FLOPs (2 per multiply-add) of the inference stages of a PointRend network on one input, counted from its layers:
the convolutions and matrix products, which is what benchmark.py sets each stage's time against. Elementwise work,
sampling and selection are not counted."""
import math

import numpy as np


def weight_size(layer):
    """Multiply-adds of a Conv2d (per output cell) or nn.Dense (per row): its weight's size."""
    return int(np.prod(layer.weight.shape))


def cells(height, width, stride):
    """Cells of a map of `stride` over an input of height x width."""
    return math.ceil(height / stride) * math.ceil(width / stride)


def resnet_blocks(resnet):
    """[(conv, output stride)] of every convolution of a maskrcnn.resnet.ResNet."""
    convs = [(resnet.stem.conv1, 2)]
    stride = 4  # after the stem's max pool
    for name in resnet.stage_names:
        for block in getattr(resnet, name):
            block_in = stride
            for conv_name in ("conv1", "conv2", "conv3"):
                conv = getattr(block, conv_name, None)
                if conv is not None:
                    stride *= conv.stride
                    convs.append((conv, stride))
            if block.shortcut is not None:
                convs.append((block.shortcut, block_in * block.shortcut.stride))
    return convs


def backbone_flops(fpn, height, width):
    """ResNet + FPN on an input of height x width."""
    convs = resnet_blocks(fpn.bottom_up)
    for level in fpn.levels:
        stride = 2 ** int(level)
        convs += [(getattr(fpn, "fpn_lateral" + level), stride), (getattr(fpn, "fpn_output" + level), stride)]
    return sum(2 * weight_size(conv) * cells(height, width, stride) for conv, stride in convs)


def rpn_flops(rpn, height, width):
    """The RPN head on every level (proposal selection is not counted)."""
    head = rpn.rpn_head
    per_cell = sum(weight_size(conv) for conv in (head.conv, head.objectness_logits, head.anchor_deltas))
    return sum(2 * per_cell * cells(height, width, stride) for stride in rpn.anchor_generator.strides)


def box_head_flops(roi_heads, num_proposals):
    """The box head's fully-connected layers and predictor on num_proposals ROIs."""
    layers = [getattr(roi_heads.box_head, name) for name in roi_heads.box_head.names]
    layers += [roi_heads.box_predictor.cls_score, roi_heads.box_predictor.bbox_pred]
    return sum(2 * weight_size(layer) * num_proposals for layer in layers)


def mask_head_flops(mask_head, height, width, num_detections):
    """PointRend's coarse head on num_detections boxes, the point head's first-layer projection of its input maps
    and its layers on every subdivision point (only each box's class row of the predictor is computed)."""
    coarse = mask_head.coarse_head
    side = mask_head.coarse_side // 2
    per_box = weight_size(coarse.reduce_spatial_dim_conv) * side ** 2
    per_box += sum(weight_size(getattr(coarse, name)) for name in coarse.fc_names) + weight_size(coarse.prediction)
    point_head = mask_head.point_head
    fc_dim, in_channels = point_head.fc1.weight.shape
    num_classes = point_head.predictor.weight.shape[0]
    coarse_cells = coarse.output_shape[1] * coarse.output_shape[2]
    # the coarse terms of the layers and of the predictor's class row, projected once per box cell
    per_box += coarse_cells * num_classes * (fc_dim * len(point_head.fc_names) + 1)
    points = mask_head.initial_side ** 2 + mask_head.subdivision_steps * mask_head.subdivision_num_points
    per_point = (len(point_head.fc_names) - 1) * fc_dim * fc_dim + fc_dim
    projection = sum(cells(height, width, stride) for _, stride in mask_head.point_features) * (
        in_channels - num_classes) * fc_dim
    return 2 * (num_detections * (per_box + points * per_point) + projection)


def inference_flops(net, height, width, num_proposals, num_detections):
    """{stage: FLOPs} of benchmark.py's inference stages on an input of height x width."""
    roi_heads = net.roi_heads
    return {"backbone+fpn": backbone_flops(net.backbone, height, width),
            "rpn": rpn_flops(net.proposal_generator, height, width),
            "box_head": box_head_flops(roi_heads, num_proposals),
            "mask_head": mask_head_flops(roi_heads.mask_head, height, width, num_detections)}
