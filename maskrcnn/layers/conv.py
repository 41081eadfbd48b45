"""Conv2d with an optional normalization and activation, named like detectron2's (conv.weight, conv.norm.*)."""
import mindspore as ms
from mindspore import Parameter, nn, ops
from mindspore.common.initializer import HeNormal, HeUniform, initializer

from .norm import FrozenBatchNorm2d

# detectron2's initialisations: MSRA fill for convs followed by ReLU, "Xavier" (Kaiming uniform, a=1) elsewhere.
MSRA_FILL = HeNormal(mode="fan_out", nonlinearity="relu")
XAVIER_FILL = HeUniform(negative_slope=1, mode="fan_in")


class Conv2d(nn.Cell):
    """conv -> norm -> activation; a FrozenBN is folded into the convolution (same result, one pass less)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True, norm=None,
                 relu=False, weight_init=MSRA_FILL):
        super().__init__()
        shape = (out_channels, in_channels, kernel_size, kernel_size)
        self.weight = Parameter(initializer(weight_init, shape, ms.float32), name="weight")
        self.bias = Parameter(initializer("zeros", (out_channels,), ms.float32), name="bias") if bias else None
        self.norm = norm
        self.fold_norm = isinstance(norm, FrozenBatchNorm2d)
        self.relu = relu
        self.stride = stride
        self.padding = padding

    def construct(self, x):
        if self.fold_norm:
            scale, shift = self.norm.scale_and_shift()
            weight = self.weight * scale.reshape(-1, 1, 1, 1)
            if self.bias is not None:
                shift = shift + self.bias * scale
            x = ops.conv2d(x, weight, shift, stride=self.stride, pad_mode="pad", padding=self.padding)
        else:
            x = ops.conv2d(x, self.weight, self.bias, stride=self.stride, pad_mode="pad", padding=self.padding)
            if self.norm is not None:
                x = self.norm(x)
        return ops.relu(x) if self.relu else x
