"""A converted checkpoint in our parameter names and layouts, and the checks every converter passes it through.

Our names are detectron2's PointRend R50-FPN state-dict names (`backbone.bottom_up.res2.0.conv1.weight`,
`roi_heads.mask_head.point_head.fc1.weight`, ...). Layouts: conv weights OIHW, fully connected weights
(out, in) -- the point head's too (torch keeps its Conv1d weights as (out, in, 1)) --, FrozenBN as
`<conv>.norm.{weight,bias,running_mean,running_var}`. The checks need no table of names: they follow from
what each name says a tensor is, and the network the checkpoint is later loaded into has the final word
(`ckpt_io.load_into_network`).
"""
import re
from dataclasses import dataclass, field

import numpy as np

from .errors import CheckpointError

# Input conventions a checkpoint was trained with, recorded as metadata and applied as config overrides.
DETECTRON2_INPUT = {"input_format": "BGR", "pixel_mean": [103.530, 116.280, 123.675],
                    "pixel_std": [1.0, 1.0, 1.0], "stride_in_1x1": True}
RGB_IMAGENET_INPUT = {"input_format": "RGB", "pixel_mean": [123.675, 116.280, 103.530],
                     "pixel_std": [58.395, 57.120, 57.375], "stride_in_1x1": False}

NORM_LEAVES = ("weight", "bias", "running_mean", "running_var")
POINTREND_HEADS = ("roi_heads.mask_head.coarse_head", "roi_heads.mask_head.point_head")
RESNET_STAGES = ("res2", "res3", "res4", "res5")
FPN_LEVELS = (2, 3, 4, 5)
CLS_SCORE_WEIGHT = "roi_heads.box_predictor.cls_score.weight"  # (num_classes + 1, in), background last

_NORM = r"(weight|norm\.(weight|bias|running_mean|running_var))"
# (pattern of our names, rank of the tensor)
_TARGET_NAMES = [
    (rf"backbone\.bottom_up\.stem\.conv1\.{_NORM}", None),
    (rf"backbone\.bottom_up\.res[2-5]\.\d+\.(conv[1-3]|shortcut)\.{_NORM}", None),
    (r"backbone\.fpn_(lateral|output)[2-5]\.weight", 4),
    (r"proposal_generator\.rpn_head\.(conv|objectness_logits|anchor_deltas)\.weight", 4),
    (r"roi_heads\.box_head\.fc\d+\.weight", 2),
    (r"roi_heads\.box_predictor\.(cls_score|bbox_pred)\.weight", 2),
    (r"roi_heads\.mask_head\.coarse_head\.(reduce_spatial_dim_conv|reduce_channel_dim_conv)\.weight", 4),
    (r"roi_heads\.mask_head\.coarse_head\.(fc\d+|prediction)\.weight", 2),
    (r"roi_heads\.mask_head\.point_head\.(fc\d+|predictor)\.weight", 2),
    (r"(backbone\.fpn_(lateral|output)[2-5]|proposal_generator\.rpn_head\.\w+|roi_heads\.box_head\.fc\d+"
     r"|roi_heads\.box_predictor\.\w+|roi_heads\.mask_head\.(coarse|point)_head\.\w+)\.bias", 1),
]
_TARGET_NAMES = [(re.compile(p + "$"), rank) for p, rank in _TARGET_NAMES]


def class_count(params):
    """The number of classes the box classifier of `params` ({our name: array or Parameter}) predicts: its
    outputs less background; None when it has none (a backbone)."""
    weight = params.get(CLS_SCORE_WEIGHT)
    return None if weight is None else int(weight.shape[0]) - 1


def expected_rank(name):
    """Rank of the tensor our model calls `name`, or None for a name outside our model's name space."""
    for pattern, rank in _TARGET_NAMES:
        if pattern.match(name):
            if rank is None:  # a backbone conv or its FrozenBN
                return 1 if ".norm." in name else 4
            return rank
    return None


@dataclass
class ConvertedCheckpoint:
    """params: our name -> float32 array; dropped: reason -> source names not carried over."""
    params: dict
    metadata: dict
    dropped: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    def drop(self, reason, name):
        self.dropped.setdefault(reason, []).append(name)


def as_float_array(source_name, value):
    """A source tensor as a contiguous float32 array; anything but a real-valued array is an error."""
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiub":
        raise CheckpointError(f"{source_name}: expected a numeric array, got {type(value).__name__}"
                              f"{' of ' + str(value.dtype) if isinstance(value, np.ndarray) else ''}")
    return np.ascontiguousarray(value, dtype=np.float32)


def add_param(params, name, value, source_name):
    """params[name] = value, refusing two source tensors that map to one name."""
    if name in params:
        raise CheckpointError(f"two tensors map to {name} (the second is {source_name})")
    params[name] = value


def raise_unexpected(source, kind, names):
    """An error listing the tensors of `source` (a file) that no rule of the `kind` converter places or drops."""
    if names:
        raise CheckpointError(
            f"{source}: {len(names)} unexpected tensor(s): no {kind} conversion rule places them or knows them "
            f"safe to drop (is this a {kind} checkpoint? nothing was written): "
            + ", ".join(sorted(names)))


def _module_of(name):
    return name.rsplit(".", 1)[0]


def _numbered(names, prefix, pattern):
    """Numbers k of the modules `<prefix><pattern with k>` present in `names` (pattern has one group)."""
    regex = re.compile(re.escape(prefix) + pattern + r"\.")
    return sorted({int(m.group(1)) for m in map(regex.match, names) if m})


def _misshaped(params):
    problems = []
    for name, value in params.items():
        rank = expected_rank(name)
        if rank is None:
            problems.append(f"{name}: not one of our parameter names")
        elif value.ndim != rank or 0 in value.shape:
            problems.append(f"{name}: shape {tuple(value.shape)}, expected a non-empty {rank}-D tensor")
    for name, value in params.items():
        if name.endswith(".weight") and expected_rank(name) != 1:
            module = _module_of(name)
            for dependent in [f"{module}.bias"] + [f"{module}.norm.{leaf}" for leaf in NORM_LEAVES]:
                if dependent in params and params[dependent].shape != (value.shape[0],):
                    problems.append(f"{dependent}: shape {tuple(params[dependent].shape)}, but {name} has "
                                    f"{value.shape[0]} output channels")
    return problems


def _class_count_problems(params):
    """cls_score has K+1 outputs (background last); the class-specific predictors must agree on K."""
    k = class_count(params)
    if k is None:
        return []
    if k < 1:
        return [f"{CLS_SCORE_WEIGHT}: {k + 1} output(s), expected the classes plus background"]
    problems = []
    bbox = params.get("roi_heads.box_predictor.bbox_pred.weight")
    if bbox is not None and bbox.shape[0] not in (4 * k, 4):
        problems.append(f"roi_heads.box_predictor.bbox_pred.weight: {bbox.shape[0]} outputs, expected 4 x {k} "
                        f"classes (cls_score has {k} + 1)")
    point = params.get("roi_heads.mask_head.point_head.predictor.weight")
    if point is not None and point.shape[0] not in (k, 1):
        problems.append(f"roi_heads.mask_head.point_head.predictor.weight: {point.shape[0]} outputs, expected "
                        f"{k} classes")
    coarse = params.get("roi_heads.mask_head.coarse_head.prediction.weight")
    if coarse is not None and coarse.shape[0] % k:
        problems.append(f"roi_heads.mask_head.coarse_head.prediction.weight: {coarse.shape[0]} outputs, not a "
                        f"multiple of {k} classes")
    return problems


def _missing_in_modules(names):
    """Tensors missing from modules that are partly present (a conv without bias, a FrozenBN without stats)."""
    names = set(names)
    missing = []
    for module in sorted({_module_of(n) for n in names}):
        if module.endswith(".norm"):
            leaves = NORM_LEAVES
        elif module.startswith("backbone.bottom_up."):  # backbone convs have no bias, a FrozenBN instead
            leaves = ("weight",) + tuple(f"norm.{leaf}" for leaf in NORM_LEAVES)
        else:
            leaves = ("weight", "bias")
        missing += [f"{module}.{leaf}" for leaf in leaves if f"{module}.{leaf}" not in names]
    return sorted(set(missing))


def _missing_modules(names, scope):
    """Whole modules absent from a backbone-only (`scope="backbone"`) or detector checkpoint."""
    modules = {_module_of(n) for n in names if n.split(".")[-2] != "norm"}
    missing = []
    bottom_up = "backbone.bottom_up."
    if f"{bottom_up}stem.conv1" not in modules:
        missing.append(f"{bottom_up}stem.conv1.*")
    for stage in RESNET_STAGES:
        blocks = _numbered(names, f"{bottom_up}{stage}.", r"(\d+)")
        if not blocks:
            missing.append(f"{bottom_up}{stage}.*")
            continue
        for block in range(blocks[-1] + 1):
            convs = ("conv1", "conv2", "conv3") + (("shortcut",) if block == 0 else ())
            missing += [f"{bottom_up}{stage}.{block}.{conv}.*" for conv in convs
                        if f"{bottom_up}{stage}.{block}.{conv}" not in modules]
    if scope == "backbone":
        return missing
    missing += [f"backbone.fpn_{kind}{level}.*" for level in FPN_LEVELS for kind in ("lateral", "output")
                if f"backbone.fpn_{kind}{level}" not in modules]
    missing += [f"proposal_generator.rpn_head.{m}.*" for m in ("conv", "objectness_logits", "anchor_deltas")
                if f"proposal_generator.rpn_head.{m}" not in modules]
    missing += [f"roi_heads.box_predictor.{m}.*" for m in ("cls_score", "bbox_pred")
                if f"roi_heads.box_predictor.{m}" not in modules]
    heads = [("roi_heads.box_head.", None)]
    heads += [(f"{head}.", last) for head, last in zip(POINTREND_HEADS, ("prediction", "predictor"))
              if any(n.startswith(head + ".") for n in names)]
    for prefix, last in heads:
        fcs = _numbered(names, prefix, r"fc(\d+)")
        missing += [f"{prefix}fc{i}.*" for i in range(1, (fcs[-1] if fcs else 1) + 1) if i not in fcs]
        if last is not None and f"{prefix}{last}" not in modules:
            missing.append(f"{prefix}{last}.*")
    return missing


def finish_conversion(converted, source, scope):
    """Check `converted` (a CheckpointError lists mis-shaped or missing tensors), note absent PointRend
    heads and record num_classes; `scope` is "backbone" or "detector" (backbone, FPN, RPN, box head)."""
    params = converted.params
    problems = _misshaped(params) + _class_count_problems(params)
    if problems:
        raise CheckpointError(f"{source}: {len(problems)} mis-shaped tensor(s) (nothing was written):\n  "
                              + "\n  ".join(problems))
    missing = _missing_in_modules(params) + _missing_modules(params, scope)
    if missing:
        raise CheckpointError(f"{source}: the checkpoint is incomplete, {len(missing)} tensor(s)/module(s) "
                              f"missing (nothing was written):\n  " + "\n  ".join(missing))
    num_classes = class_count(params)
    if num_classes is not None:
        converted.metadata["num_classes"] = num_classes
    if scope == "detector":
        absent = [head for head in POINTREND_HEADS if not any(n.startswith(head + ".") for n in params)]
        if absent:
            converted.notes.append(
                f"PointRend heads absent from this checkpoint ({', '.join(absent)}): the model starts them "
                f"freshly initialised with detectron2's init when training; the loader logs their tensors")
