"""PointRend's point head: an MLP applied independently to every point's fine and coarse features."""
from mindspore import nn, ops
from mindspore.common.initializer import Normal

from maskrcnn.layers.conv import MSRA_FILL

from .layers.bilinear_sample import BilinearSample, BilinearSampleAddRelu


class StandardPointHead(nn.Cell):
    """fc1..fcN (1x1 convs, as Dense) with the coarse prediction concatenated to every layer's input.

    Both inputs of a layer are bilinear samples, and sampling is linear, so layer k's
    W_k [x; sample(coarse)] + b_k = W_k^x x + sample(coarse W_k^c^T) + b_k: the coarse maps are projected once
    per box cell (7 x 7) rather than per point, and the first layer's fine term is projected once per feature-map
    cell (`project_fine`) rather than per point. Each layer is then one matrix product and a fused
    sample + add + bias + ReLU. Only each box's class row of the predictor is evaluated.
    """

    def __init__(self, in_channels, num_classes, fc_dim, num_fc, coarse_pred_each_layer):
        super().__init__()
        self.fc_names = tuple(f"fc{k + 1}" for k in range(num_fc))
        self.coarse_pred_each_layer = coarse_pred_each_layer
        self.in_channels = in_channels
        in_features = in_channels + num_classes
        for name in self.fc_names:
            setattr(self, name, nn.Dense(in_features, fc_dim, weight_init=MSRA_FILL, bias_init="zeros"))
            in_features = fc_dim + (num_classes if coarse_pred_each_layer else 0)
        self.predictor = nn.Dense(in_features, num_classes, weight_init=Normal(0.001), bias_init="zeros")
        self.matmul_transposed = ops.MatMul(transpose_b=True)
        self.sample = BilinearSample()
        self.sample_add_relu = BilinearSampleAddRelu()

    def project_fine(self, fine_maps):
        """Channels-last fine feature maps, one per input level (their channels are fc1's first inputs, in order)
        -> each level's share of fc1's fine-feature term, (..., fc_dim) per level; their samples add up."""
        projected = ()
        offset = 0
        for maps in fine_maps:
            channels = maps.shape[-1]
            weight = self.fc1.weight[:, offset:offset + channels]
            projected += (self.matmul_transposed(maps.reshape(-1, channels), weight).reshape(
                maps.shape[:-1] + (weight.shape[0],)),)
            offset += channels
        return projected

    def construct(self, projected_fine, coarse, classes, points, box_index):
        """projected_fine (R * P, fc_dim): summed samples of project_fine's outputs at the points; coarse
        (R, O, O, K) channels-last coarse logits of each box; classes (R,); points (R * P, 2) box-relative
        and box_index (R * P,) the box of each point -> (R, P) point logits of each box's class."""
        num_boxes, side = coarse.shape[:2]
        coarse_rows = coarse.reshape(-1, coarse.shape[-1])
        x = projected_fine
        width = self.in_channels
        for k, name in enumerate(self.fc_names):
            layer = getattr(self, name)
            if k > 0:
                x = self.matmul_transposed(x, layer.weight[:, :width])
            if k == 0 or self.coarse_pred_each_layer:
                projected = self.matmul_transposed(coarse_rows, layer.weight[:, width:]).reshape(
                    num_boxes, side, side, -1)
                x = self.sample_add_relu(x, projected, points, box_index, layer.bias)
            else:
                x = ops.relu(ops.bias_add(x, layer.bias))
            width = layer.weight.shape[0]
        weight = ops.gather(self.predictor.weight, classes, 0)  # (R, fc_dim [+ K])
        logits = ops.bmm(x.reshape(num_boxes, -1, width), weight[:, :width, None]).reshape(num_boxes, -1)
        if self.coarse_pred_each_layer:
            coarse_term = ops.bmm(coarse.reshape(num_boxes, side * side, -1), weight[:, width:, None])
            logits = logits + self.sample(coarse_term.reshape(num_boxes, side, side, 1), points,
                                          box_index).reshape(logits.shape)
        return logits + ops.gather(self.predictor.bias, classes, 0)[:, None]
