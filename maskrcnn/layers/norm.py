"""Normalization layers selectable by name: FrozenBN (detectron2's default for pretrained backbones), BN, GN."""
import mindspore as ms
from mindspore import Parameter, nn, ops


class FrozenBatchNorm2d(nn.Cell):
    """BatchNorm with fixed statistics and affine parameters: y = (x - mean) / sqrt(var + eps) * weight + bias.

    Parameter names (weight, bias, running_mean, running_var) are detectron2's, so checkpoints map 1:1.
    """

    def __init__(self, num_features, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = Parameter(ops.ones(num_features, ms.float32), name="weight", requires_grad=False)
        self.bias = Parameter(ops.zeros(num_features, ms.float32), name="bias", requires_grad=False)
        self.running_mean = Parameter(ops.zeros(num_features, ms.float32), name="running_mean", requires_grad=False)
        self.running_var = Parameter(ops.ones(num_features, ms.float32), name="running_var", requires_grad=False)

    def scale_and_shift(self):
        """(C,), (C,): the affine map this layer applies per channel."""
        scale = self.weight * ops.rsqrt(self.running_var + self.eps)
        return scale, self.bias - self.running_mean * scale

    def construct(self, x):
        scale, shift = self.scale_and_shift()
        return x * scale.reshape(1, -1, 1, 1) + shift.reshape(1, -1, 1, 1)


def build_norm(name, num_channels):
    """A normalization cell by config name: FrozenBN | BN | GN (32 groups)."""
    if name == "FrozenBN":
        return FrozenBatchNorm2d(num_channels)
    if name == "BN":
        return nn.BatchNorm2d(num_channels, eps=1e-5, momentum=0.9)
    if name == "GN":
        return nn.GroupNorm(32, num_channels, eps=1e-5)
    raise ValueError(f"unknown norm {name!r}; expected FrozenBN, BN or GN")
