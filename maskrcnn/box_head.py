"""Box head: two fully-connected layers over pooled ROI features, then class scores and per-class box deltas."""
from mindspore import nn, ops
from mindspore.common.initializer import Normal

from .layers.conv import XAVIER_FILL


class FastRCNNFCHead(nn.Cell):
    """(R, C, S, S) pooled features -> (R, fc_dim) after `num_fc` Linear + ReLU layers (fc1, fc2, ...)."""

    def __init__(self, in_features, num_fc, fc_dim):
        super().__init__()
        self.names = tuple(f"fc{k + 1}" for k in range(num_fc))
        for k, name in enumerate(self.names):
            setattr(self, name, nn.Dense(in_features if k == 0 else fc_dim, fc_dim, weight_init=XAVIER_FILL,
                                           bias_init="zeros"))

    def construct(self, x):
        x = x.reshape(x.shape[0], -1)
        for name in self.names:
            x = ops.relu(getattr(self, name)(x))
        return x


class FastRCNNPredictor(nn.Cell):
    """(R, D) -> class logits (R, K + 1), background last, and class-specific deltas (R, K * 4)."""

    def __init__(self, in_features, num_classes):
        super().__init__()
        self.cls_score = nn.Dense(in_features, num_classes + 1, weight_init=Normal(0.01), bias_init="zeros")
        self.bbox_pred = nn.Dense(in_features, num_classes * 4, weight_init=Normal(0.001), bias_init="zeros")

    def construct(self, x):
        return self.cls_score(x), self.bbox_pred(x)
