"""PointRend's coarse mask head: a small conv + fully-connected predictor of a low-resolution mask per class."""
from mindspore import nn, ops
from mindspore.common.initializer import Normal

from maskrcnn.layers.conv import XAVIER_FILL, Conv2d


class CoarseMaskHead(nn.Cell):
    """(R, C, S, S) regular-grid point features -> (R, K, O, O) mask logits (O = output side resolution)."""

    def __init__(self, in_channels, input_side, conv_dim, fc_dim, num_fc, num_classes, output_side):
        super().__init__()
        self.reduce_spatial_dim_conv = Conv2d(in_channels, conv_dim, 2, stride=2, relu=True)
        self.fc_names = tuple(f"fc{k + 1}" for k in range(num_fc))
        in_features = conv_dim * (input_side // 2) ** 2
        for name in self.fc_names:
            setattr(self, name, nn.Dense(in_features, fc_dim, weight_init=XAVIER_FILL, bias_init="zeros"))
            in_features = fc_dim
        self.prediction = nn.Dense(fc_dim, num_classes * output_side ** 2, weight_init=Normal(0.001),
                                   bias_init="zeros")
        self.output_shape = (num_classes, output_side, output_side)

    def construct(self, x):
        x = self.reduce_spatial_dim_conv(x).reshape(x.shape[0], -1)
        for name in self.fc_names:
            x = ops.relu(getattr(self, name)(x))
        return self.prediction(x).reshape((x.shape[0],) + self.output_shape)
