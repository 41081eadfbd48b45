"""PointRend's point head: an MLP applied independently to every point's fine and coarse features."""
import mindspore as ms
from mindspore import nn, ops
from mindspore.common.initializer import Normal

from maskrcnn.layers.conv import MSRA_FILL


class StandardPointHead(nn.Cell):
    """fc1..fcN (1x1 convs, as Dense) with the coarse prediction concatenated before every layer.

    construct(fine (R, Cf, P), coarse (R, K, P), classes (R,)) -> (R, P) logits of each box's class only: the
    other K - 1 outputs of the predictor are never used, so they are never computed.
    """

    def __init__(self, in_channels, num_classes, fc_dim, num_fc, coarse_pred_each_layer):
        super().__init__()
        self.fc_names = tuple(f"fc{k + 1}" for k in range(num_fc))
        self.coarse_pred_each_layer = coarse_pred_each_layer
        in_features = in_channels + num_classes
        for name in self.fc_names:
            setattr(self, name, nn.Dense(in_features, fc_dim, weight_init=MSRA_FILL, bias_init="zeros"))
            in_features = fc_dim + (num_classes if coarse_pred_each_layer else 0)
        self.predictor = nn.Dense(in_features, num_classes, weight_init=Normal(0.001), bias_init="zeros")

    def construct(self, fine, coarse, classes):
        num_boxes, _, num_points = fine.shape
        coarse = coarse.transpose(0, 2, 1).reshape(num_boxes * num_points, -1)
        x = ops.concat((fine.transpose(0, 2, 1).reshape(num_boxes * num_points, -1), coarse), -1)
        for name in self.fc_names:
            x = ops.relu(getattr(self, name)(x))
            if self.coarse_pred_each_layer:
                x = ops.concat((x, coarse), -1)
        weight = ops.gather(self.predictor.weight, classes, 0)  # (R, C)
        bias = ops.gather(self.predictor.bias, classes, 0)  # (R,)
        logits = ops.bmm(x.reshape(num_boxes, num_points, -1), weight[:, :, None])[..., 0]
        return logits + bias[:, None]
