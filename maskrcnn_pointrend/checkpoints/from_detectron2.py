"""detectron2 checkpoints in our names: PointRend (current or pre-Nov-2020 names), plain Mask R-CNN R50-FPN,
and ImageNet backbones (detectron2's MSRA `R-50.pkl` in caffe2 names, or `stem.*`/`res*` backbone files).

Our names are detectron2's, so a detectron2 checkpoint mostly keeps its names: old PointRend names are
renamed the way detectron2 renames them when loading, the point head's Conv1d weights (out, in, 1) become
(out, in), and what our model has no place for is dropped and reported (a standard mask head, anchor
buffers). Anything else unknown is an error.
"""
import re

import numpy as np

from .converted import (DETECTRON2_INPUT, RGB_IMAGENET_INPUT, ConvertedCheckpoint, add_param, as_float_array,
                        finish_conversion, expected_rank, raise_unexpected)
from .errors import CheckpointError

# detectron2's FrozenBatchNorm2d eps: it starts running_var at 1 - eps so that a checkpoint without
# statistics (caffe2 folded them into scale and bias) gives exactly x * weight + bias.
FROZEN_BN_EPS = 1e-5

# (old prefix, new prefix): PointRend's weight format before Nov 2020, as detectron2 renames it on load.
_RENAMES_V1 = [
    ("roi_heads.mask_coarse_head.", "roi_heads.mask_head.coarse_head."),
    ("roi_heads.mask_point_head.", "roi_heads.mask_head.point_head."),
    ("roi_heads.mask_head.coarse_head.coarse_mask_fc", "roi_heads.mask_head.coarse_head.fc"),
]
_STANDARD_MASK_HEAD = re.compile(r"roi_heads\.mask_head\.(mask_fcn\d+|deconv|predictor)\.(weight|bias)$")
_ANCHOR_BUFFER = re.compile(r"proposal_generator\.anchor_generator\.cell_anchors\.\d+$")
_BACKBONE_FILE_NAME = re.compile(r"(stem|res[2-5])\.")
_BACKBONE_FILE_CLASSIFIER = ("stem.fc.weight", "stem.fc.bias")  # convert-torchvision-to-d2.py keeps fc there
_POINT_HEAD_WEIGHT = re.compile(r"roi_heads\.mask_head\.point_head\.\w+\.weight$")
_INPUT_BUFFERS = ("pixel_mean", "pixel_std")

_C2_STEM = {"conv1_w": "stem.conv1.weight", "res_conv1_bn_s": "stem.conv1.norm.weight",
            "res_conv1_bn_b": "stem.conv1.norm.bias"}
_C2_BLOCK = re.compile(r"res([2-5])_(\d+)_branch(1|2a|2b|2c)_(w|bn_s|bn_b)$")
_C2_BRANCH = {"1": "shortcut", "2a": "conv1", "2b": "conv2", "2c": "conv3"}
_C2_LEAF = {"w": "weight", "bn_s": "norm.weight", "bn_b": "norm.bias"}
_C2_CLASSIFIER = ("fc1000_w", "fc1000_b")


def state_dict_of(obj, source):
    """(state dict, other top-level entries) of what a detectron2 .pkl/.pth file holds."""
    if isinstance(obj, dict):
        for key in ("model", "blobs"):  # detectron2 files / caffe2 Detectron detection files
            if isinstance(obj.get(key), dict):
                return obj[key], {k: v for k, v in obj.items() if k != key}
        if obj and all(isinstance(k, str) for k in obj) and all(isinstance(v, np.ndarray) for v in obj.values()):
            return obj, {}
    raise CheckpointError(f"{source}: expected a state dict {{name: tensor}} or {{'model': state dict}}, "
                          f"found {type(obj).__name__}"
                          + (f" with keys {sorted(map(str, obj))[:10]}" if isinstance(obj, dict) else ""))


def current_name(name):
    """A detectron2 name with PointRend's pre-Nov-2020 prefixes replaced by the current ones."""
    for old, new in _RENAMES_V1:
        if name.startswith(old):
            name = new + name[len(old):]
    return name


def _input_metadata(state, extras, source):
    """BGR/MSRA conventions, or torchvision's for files made by detectron2's convert-torchvision-to-d2."""
    metadata = dict(RGB_IMAGENET_INPUT if extras.get("__author__") == "torchvision" else DETECTRON2_INPUT)
    for key in _INPUT_BUFFERS:
        if key in state:
            values = np.asarray(state[key], dtype=np.float64).reshape(-1)
            if values.size != 3:
                raise CheckpointError(f"{source}: {key} has {values.size} values, expected 3")
            metadata[key] = [float(v) for v in values]
    return metadata


def _point_head_weight(name, value):
    """torch Conv1d (out, in, 1) -> (out, in)."""
    if value.ndim == 3 and value.shape[2] == 1:
        return value[:, :, 0]
    if value.ndim == 2:
        return value
    raise CheckpointError(f"{name}: shape {value.shape}, expected a Conv1d weight (out, in, 1)")


def _convert_state(state, extras, source):
    converted = ConvertedCheckpoint(params={}, metadata=_input_metadata(state, extras, source))
    unexpected = []
    for name, value in state.items():
        if name in _INPUT_BUFFERS:
            converted.drop("input normalisation buffers (recorded as metadata)", name)
        elif name.endswith(".num_batches_tracked"):
            converted.drop("BatchNorm step counters", name)
        elif _ANCHOR_BUFFER.match(name):
            converted.drop("anchor buffers (the model makes its anchors from the config)", name)
        elif name in _BACKBONE_FILE_CLASSIFIER:
            converted.drop("ImageNet classifier", name)
        elif _STANDARD_MASK_HEAD.match(name):
            converted.drop("standard Mask R-CNN mask head (PointRend replaces it)", name)
        else:
            ours = current_name(name)
            if _BACKBONE_FILE_NAME.match(ours):
                ours = "backbone.bottom_up." + ours
            if expected_rank(ours) is None:
                unexpected.append(name)
                continue
            array = as_float_array(name, value)
            if _POINT_HEAD_WEIGHT.match(ours):
                array = _point_head_weight(name, array)
            add_param(converted.params, ours, array, name)
    raise_unexpected(source, "detectron2", unexpected)
    renamed = sum(current_name(n) != n for n in state)
    if renamed:
        converted.notes.append(f"{renamed} tensors renamed from PointRend's pre-Nov-2020 names")
    return converted


def _convert_caffe2_backbone(state, source):
    """detectron2's MSRA ImageNet backbones (`R-50.pkl`): caffe2 names, statistics folded into scale/bias."""
    converted = ConvertedCheckpoint(params={}, metadata=dict(DETECTRON2_INPUT))
    unexpected = []
    for name, value in state.items():
        block = _C2_BLOCK.match(name)
        if name.endswith("_momentum"):
            converted.drop("caffe2 optimizer momentum", name)
        elif name in _C2_CLASSIFIER:
            converted.drop("ImageNet classifier", name)
        elif name in _C2_STEM or block:
            ours = _C2_STEM.get(name) or "res{}.{}.{}.{}".format(
                block.group(1), int(block.group(2)), _C2_BRANCH[block.group(3)], _C2_LEAF[block.group(4)])
            add_param(converted.params, "backbone.bottom_up." + ours, as_float_array(name, value), name)
        else:
            unexpected.append(name)
    raise_unexpected(source, "detectron2", unexpected)
    norms = sorted({n[:-len(".weight")] for n in converted.params if n.endswith(".norm.weight")})
    for norm in norms:
        channels = converted.params[norm + ".weight"].shape
        converted.params[norm + ".running_mean"] = np.zeros(channels, np.float32)
        converted.params[norm + ".running_var"] = np.full(channels, 1.0 - FROZEN_BN_EPS, np.float32)
    converted.notes.append(f"{len(norms)} FrozenBN layers get running_mean 0 and running_var 1 - {FROZEN_BN_EPS} "
                           f"(caffe2 folded the statistics into scale and bias), as detectron2 does")
    return converted


def convert_detectron2(obj, source):
    """What a detectron2 .pkl/.pth holds -> ConvertedCheckpoint; `source` names the file in messages."""
    state, extras = state_dict_of(obj, source)
    if all("." not in name for name in state):
        converted = _convert_caffe2_backbone(state, source)
        converted.metadata["source"] = "detectron2 caffe2 ImageNet backbone"
    else:
        converted = _convert_state(state, extras, source)
        converted.metadata["source"] = "detectron2"
    if extras:
        converted.notes.append(f"top-level entries besides the weights, not used: {', '.join(sorted(extras))}")
    scope = "detector" if any(not n.startswith("backbone.bottom_up.") for n in converted.params) else "backbone"
    finish_conversion(converted, source, scope)
    return converted
