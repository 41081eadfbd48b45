"""ResNet bottom-up backbone (detectron2 layout: stem, res2..res5 of basic or bottleneck blocks).

Every cell takes the images' extents (N, 2) besides its input and computes each image as if alone in an input of
that size (see layers/extent).
"""
from mindspore import nn, ops

from .layers.conv import Conv2d
from .layers.extent import zero_beyond
from .layers.norm import build_norm
from .shape_spec import FeatureSpec

BLOCKS_PER_STAGE = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
STAGE_STRIDES = {"res2": 4, "res3": 8, "res4": 16, "res5": 32}


class BasicBlock(nn.Cell):
    """3x3 -> 3x3 with a projection shortcut when the shape changes (ResNet-18/34); the stride sits in the first
    conv. `in_stride`: input pixels per cell of the block's input."""

    def __init__(self, in_channels, out_channels, stride, norm, in_stride):
        super().__init__()
        self.in_stride, self.out_stride = in_stride, in_stride * stride
        if in_channels != out_channels or stride != 1:
            self.shortcut = Conv2d(in_channels, out_channels, 1, stride, bias=False,
                                   norm=build_norm(norm, out_channels))
        else:
            self.shortcut = None
        self.conv1 = Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False,
                            norm=build_norm(norm, out_channels), relu=True)
        self.conv2 = Conv2d(out_channels, out_channels, 3, padding=1, bias=False, norm=build_norm(norm, out_channels))

    def construct(self, x, extents):
        shortcut = x if self.shortcut is None else self.shortcut(x)
        x = self.conv1(zero_beyond(x, extents, self.in_stride))
        return ops.relu(self.conv2(zero_beyond(x, extents, self.out_stride)) + shortcut)


class BottleneckBlock(nn.Cell):
    """1x1 -> 3x3 -> 1x1 with a projection shortcut when the shape changes; the stride sits in the first
    1x1 conv (detectron2/MSRA weights) or in the 3x3 conv (torchvision/MindSpore zoo weights). `in_stride`:
    input pixels per cell of the block's input."""

    def __init__(self, in_channels, out_channels, bottleneck_channels, stride, norm, stride_in_1x1, in_stride):
        super().__init__()
        if in_channels != out_channels:
            self.shortcut = Conv2d(in_channels, out_channels, 1, stride, bias=False,
                                   norm=build_norm(norm, out_channels))
        else:
            self.shortcut = None
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv2_in_stride = in_stride * stride_1x1
        self.conv1 = Conv2d(in_channels, bottleneck_channels, 1, stride_1x1, bias=False,
                            norm=build_norm(norm, bottleneck_channels), relu=True)
        self.conv2 = Conv2d(bottleneck_channels, bottleneck_channels, 3, stride_3x3, padding=1, bias=False,
                            norm=build_norm(norm, bottleneck_channels), relu=True)
        self.conv3 = Conv2d(bottleneck_channels, out_channels, 1, bias=False, norm=build_norm(norm, out_channels))

    def construct(self, x, extents):
        shortcut = x if self.shortcut is None else self.shortcut(x)
        x = self.conv2(zero_beyond(self.conv1(x), extents, self.conv2_in_stride))
        return ops.relu(self.conv3(x) + shortcut)


class BasicStem(nn.Cell):
    """7x7 stride-2 conv, norm, ReLU, 3x3 stride-2 max pool: (N, 3, H, W) -> (N, 64, H/4, W/4)."""

    def __init__(self, norm, out_channels):
        super().__init__()
        self.conv1 = Conv2d(3, out_channels, 7, stride=2, padding=3, bias=False,
                            norm=build_norm(norm, out_channels), relu=True)
        self.max_pool = nn.MaxPool2d(3, 2, pad_mode="pad", padding=1)

    def construct(self, x, extents):
        # the ReLU output is >= 0, so zeros beyond the extent never win the max (detectron2 pads with -inf)
        return self.max_pool(zero_beyond(self.conv1(x), extents, 2))


class ResNet(nn.Cell):
    """Returns the feature maps named in cfg_backbone.out_features (subset of res2..res5) as a tuple, finest first.

    cfg_backbone: depth, norm, stride_in_1x1, freeze_at, out_features and width, the stem's output channels and
    res2's bottleneck width (64 in the standard networks); res2 has 4 * width output channels with bottleneck
    blocks (depth >= 50), width with basic blocks, and every later stage doubles them.
    """

    def __init__(self, cfg_backbone):
        super().__init__()
        depth, norm, width = cfg_backbone.depth, cfg_backbone.norm, cfg_backbone.width
        freeze_at, stride_in_1x1 = cfg_backbone.freeze_at, cfg_backbone.stride_in_1x1
        if depth not in BLOCKS_PER_STAGE:
            raise ValueError(f"ResNet depth {depth} is not supported; choose one of {sorted(BLOCKS_PER_STAGE)}")
        # Frozen stages never update statistics either: their norms become FrozenBN (as detectron2 does).
        stage_norm = lambda index: "FrozenBN" if index < freeze_at else norm
        self.stem = BasicStem(stage_norm(0), width)
        self.out_features = tuple(cfg_backbone.out_features)
        self.stage_names = tuple(name for name in STAGE_STRIDES if STAGE_STRIDES[name] <= max(
            STAGE_STRIDES[f] for f in self.out_features))
        bottleneck = depth >= 50
        in_channels, out_channels = width, 4 * width if bottleneck else width
        self.stage_channels = {}
        in_stride = STAGE_STRIDES[self.stage_names[0]]
        for index, (name, num_blocks) in enumerate(zip(self.stage_names, BLOCKS_PER_STAGE[depth])):
            first_stride = 1 if index == 0 else 2
            blocks = []
            for block_index in range(num_blocks):
                stride = first_stride if block_index == 0 else 1
                if bottleneck:
                    blocks.append(BottleneckBlock(in_channels, out_channels, out_channels // 4, stride,
                                                  stage_norm(index + 1), stride_in_1x1, in_stride))
                else:
                    blocks.append(BasicBlock(in_channels, out_channels, stride, stage_norm(index + 1), in_stride))
                in_channels = out_channels
                in_stride *= stride
            setattr(self, name, nn.CellList(blocks))
            self.stage_channels[name] = out_channels
            out_channels *= 2
        self.freeze_at = freeze_at
        self._freeze(freeze_at)

    def output_shape(self):
        """{name: FeatureSpec} of the maps construct returns, in order."""
        return {name: FeatureSpec(self.stage_channels[name], STAGE_STRIDES[name]) for name in self.out_features}

    def _freeze(self, freeze_at):
        """freeze_at=1 freezes the stem, 2 also res2, and so on (detectron2's convention)."""
        for cell in ([self.stem] + [getattr(self, name) for name in self.stage_names])[:freeze_at]:
            for param in cell.get_parameters():
                param.requires_grad = False

    def construct(self, x, extents):
        """(N, 3, H, W) images and their extents (N, 2) -> the out_features maps."""
        x = self.stem(x, extents)
        if self.freeze_at >= 1:
            x = ops.stop_gradient(x)
        outputs = ()
        for index, name in enumerate(self.stage_names):
            for block in getattr(self, name):
                x = block(x, extents)
            if index + 2 <= self.freeze_at:
                # Nothing below a frozen stage trains: do not back-propagate into it.
                x = ops.stop_gradient(x)
            if name in self.out_features:
                outputs += (x,)
        return outputs
