"""MindSpore Model Zoo checkpoints -> our names: Mask R-CNN R50-FPN (official/cv/MaskRCNN) and its ImageNet
ResNet-50 (the same backbone names without the `backbone.` prefix).

Layout differences handled here: the zoo's Dense weights are (in, out); its box classifier has 81 outputs
with background FIRST (ours: background last) and its box regressor 81 x 4 outputs, background included
(ours: 80 x 4). The zoo's FCN mask head and classifier are dropped, as are optimizer states.
The zoo model was trained on RGB input normalised with ImageNet mean/std, with the stride of each
ResNet block in its 3x3 conv; both are recorded as metadata.
"""
import re

import numpy as np

from .converted import (RGB_IMAGENET_INPUT, ConvertedCheckpoint, add_param, as_float_array, finish_conversion,
                        raise_unexpected)
from .errors import CheckpointError
from .resnet_names import bottom_up_name

_NORM_LEAVES = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean",
                "moving_variance": "running_var"}
_SHORTCUT_CONV = ("conv_down_sample", "down_sample_layer.0")
_SHORTCUT_NORM = ("bn_down_sample", "down_sample_layer.1")

_FPN = re.compile(r"fpn_ncek\.(lateral_convs_list|fpn_convs_list)\.(\d+)\.(weight|bias)")
_FPN_KIND = {"lateral_convs_list": "lateral", "fpn_convs_list": "output"}
_RPN = re.compile(r"rpn_with_loss\.rpn_convs_list\.(\d+)\.(rpn_conv|rpn_cls|rpn_reg)\.(weight|bias)")
_RPN_MODULE = {"rpn_conv": "conv", "rpn_cls": "objectness_logits", "rpn_reg": "anchor_deltas"}
_BOX = re.compile(r"rcnn_cls\.fpn_cls\.(shared_fc_\d+|cls_scores|reg_scores)\.(weight|bias)")
_BOX_MODULE = {"shared_fc_0": "roi_heads.box_head.fc1", "shared_fc_1": "roi_heads.box_head.fc2",
               "cls_scores": "roi_heads.box_predictor.cls_score",
               "reg_scores": "roi_heads.box_predictor.bbox_pred"}
_OPTIMIZER = re.compile(r"(moments|accum|momentum|learning_rate|global_step|scale_sense|loss_scale|epoch_num"
                        r"|step_num|current_iterator_step|last_overflow_iterator_step)(\..*)?")
_MASK_HEAD = "rcnn_mask."
_CLASSIFIER = "end_point."  # the ImageNet ResNet's fc
# Where the zoo model computes differently from ours (its official/cv/MaskRCNN sources): the weights carry
# over, but results will not match the zoo's own until the model is fine-tuned.
ZOO_COMPUTE_DIFFERENCES = (
    "zoo FPN upsamples with bilinear resize; ours with nearest x2",
    "zoo stem max-pool pads 'same' (bottom/right only); ours pads 1 on every side",
    "zoo anchors follow the legacy +1 convention with centres at (stride - 1) / 2, rounded; ours have "
    "offset model.anchor.offset and exact sizes (anchor order per location, ratios 0.5/1/2, and delta "
    "order dx, dy, dw, dh agree)",
    "zoo box encoding/decoding (MindSpore BoundingBoxEncode/Decode) uses width = x2 - x1 + 1; ours x2 - x1",
    "zoo RoIAlign has no half-pixel alignment (MindSpore ROIAlign, roi_end_mode 0); ours is aligned",
)


def _box_tensor(module, leaf, value):
    """A zoo Dense tensor in our layout: weight (in, out) -> (out, in); class rows to detectron2's order."""
    if leaf == "weight":
        if value.ndim != 2:
            raise CheckpointError(f"rcnn_cls.fpn_cls.{module}.weight: shape {value.shape}, expected (in, out)")
        value = np.ascontiguousarray(value.T)
    if module == "cls_scores":  # background first -> last
        value = np.concatenate([value[1:], value[:1]])
    elif module == "reg_scores":  # 4 rows per class, background's first: drop them
        value = value[4:]
    return np.ascontiguousarray(value)


def _detector_name(name):
    """(our name, zoo Dense module or None) for the zoo's FPN/RPN/box head names; (None, None) otherwise."""
    fpn = _FPN.fullmatch(name)
    if fpn:
        return f"backbone.fpn_{_FPN_KIND[fpn.group(1)]}{int(fpn.group(2)) + 2}.{fpn.group(3)}", None
    rpn = _RPN.fullmatch(name)
    if rpn and rpn.group(1) == "0":
        return f"proposal_generator.rpn_head.{_RPN_MODULE[rpn.group(2)]}.{rpn.group(3)}", None
    box = _BOX.fullmatch(name)
    if box and box.group(1) in _BOX_MODULE:
        return f"{_BOX_MODULE[box.group(1)]}.{box.group(2)}", box.group(1)
    return None, None


def _shared_rpn_copy(name, state):
    """True for rpn_convs_list.{1-4}.* equal to level 0's tensor (the zoo shares one RPN head)."""
    rpn = _RPN.fullmatch(name)
    if not rpn or rpn.group(1) == "0":
        return False
    first = f"rpn_with_loss.rpn_convs_list.0.{rpn.group(2)}.{rpn.group(3)}"
    if first not in state or not np.array_equal(state[first], state[name]):
        raise CheckpointError(f"{name} differs from {first}: our model has one RPN head shared by all levels")
    return True


def convert_mindspore_zoo(state, source):
    """{zoo parameter name: np.ndarray} -> ConvertedCheckpoint (a detector, or a backbone for ImageNet)."""
    converted = ConvertedCheckpoint(params={}, metadata={**RGB_IMAGENET_INPUT, "source": "mindspore_zoo"})
    unexpected = []
    for name, value in state.items():
        backbone_name = name[len("backbone."):] if name.startswith("backbone.") else name
        ours = bottom_up_name(backbone_name, _SHORTCUT_CONV, _SHORTCUT_NORM, _NORM_LEAVES)
        if ours is not None:
            add_param(converted.params, ours, as_float_array(name, value), name)
            continue
        ours, dense = _detector_name(name)
        if ours is not None:
            array = as_float_array(name, value)
            add_param(converted.params, ours, _box_tensor(dense, name.rsplit(".", 1)[1], array) if dense else array,
                      name)
        elif name.startswith(_MASK_HEAD):
            converted.drop("zoo FCN mask head (PointRend replaces it)", name)
        elif name.startswith(_CLASSIFIER):
            converted.drop("ImageNet classifier", name)
        elif _OPTIMIZER.fullmatch(name):
            converted.drop("optimizer and training-loop state", name)
        elif _shared_rpn_copy(name, state):
            converted.drop("copies of the shared RPN head", name)
        else:
            unexpected.append(name)
    raise_unexpected(source, "mindspore_zoo", unexpected)
    scope = "detector" if any(not n.startswith("backbone.bottom_up.") for n in converted.params) else "backbone"
    finish_conversion(converted, source, scope)
    if scope == "detector":
        converted.notes += [f"compute difference: {d}" for d in ZOO_COMPUTE_DIFFERENCES]
    return converted
