"""What one cell hands the next besides tensors: the channels and stride of each feature map it produces, by name
(detectron2's ShapeSpec), so that a cell is built from its own config subtree and the shapes of its inputs."""
from typing import NamedTuple


class FeatureSpec(NamedTuple):
    channels: int
    stride: int  # input pixels per cell


def select_features(input_shape, names):
    """{name: FeatureSpec} in the order the features tuple holds them, names -> ((index, FeatureSpec), ...) of the
    named maps; an unknown name is a ValueError."""
    available = list(input_shape)
    missing = [name for name in names if name not in available]
    if missing:
        raise ValueError(f"features {missing} are not among the inputs {available}")
    return tuple((available.index(name), input_shape[name]) for name in names)
