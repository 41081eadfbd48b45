"""torchvision's ImageNet ResNet state dicts (`resnet50-*.pth`) -> our backbone (`backbone.bottom_up.*`).

torchvision's ResNet strides in the 3x3 conv and was trained on RGB input normalised with ImageNet's
mean/std; both are recorded as metadata. Its classifier (`fc.*`) and BatchNorm step counters are dropped.
"""
import numpy as np

from .converted import (RGB_IMAGENET_INPUT, ConvertedCheckpoint, add_param, as_float_array, finish_conversion,
                        raise_unexpected)
from .errors import CheckpointError
from .resnet_names import bottom_up_name

_NORM_LEAVES = {leaf: leaf for leaf in ("weight", "bias", "running_mean", "running_var")}


def convert_torchvision(obj, source):
    """A torchvision ResNet state dict (or {"model": state dict}) -> ConvertedCheckpoint (backbone only)."""
    state = obj.get("model", obj) if isinstance(obj, dict) else obj
    if not (isinstance(state, dict) and state and all(isinstance(v, np.ndarray) for v in state.values())):
        raise CheckpointError(f"{source}: expected a torchvision state dict {{name: tensor}}, "
                              f"found {type(state).__name__}")
    converted = ConvertedCheckpoint(params={}, metadata={**RGB_IMAGENET_INPUT, "source": "torchvision"})
    unexpected = []
    for name, value in state.items():
        ours = bottom_up_name(name, ("downsample.0",), ("downsample.1",), _NORM_LEAVES)
        if name.startswith("fc."):
            converted.drop("ImageNet classifier", name)
        elif name.endswith(".num_batches_tracked"):
            converted.drop("BatchNorm step counters", name)
        elif ours is None:
            unexpected.append(name)
        else:
            add_param(converted.params, ours, as_float_array(name, value), name)
    raise_unexpected(source, "torchvision", unexpected)
    finish_conversion(converted, source, "backbone")
    return converted
