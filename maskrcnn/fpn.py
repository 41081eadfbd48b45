"""Feature Pyramid Network over a bottom-up backbone: p2..p5 from res2..res5, plus p6 = stride-2 subsample of p5."""
from mindspore import nn, ops

from .layers.conv import XAVIER_FILL, Conv2d
from .layers.extent import zero_beyond
from .shape_spec import FeatureSpec


def upsample2x_nearest(x):
    """(N, C, H, W) -> (N, C, 2H, 2W), each value repeated 2 x 2: a broadcast, whose gradient is a cheap sum
    (MindSpore's CPU ResizeNearestNeighbor gradient is several times slower)."""
    n, c, h, w = x.shape
    return ops.broadcast_to(x.reshape(n, c, h, 1, w, 1), (n, c, h, 2, w, 2)).reshape(n, c, 2 * h, 2 * w)


class FPN(nn.Cell):
    """(N, 3, H, W) images and their extents (N, 2) -> (p2, p3, p4, p5, p6), each (N, out_channels, H / stride,
    W / stride), zero beyond each image's extent (see layers/extent).

    Named like detectron2 (`bottom_up`, `fpn_lateral{k}`, `fpn_output{k}`) so checkpoints map 1:1.
    """

    def __init__(self, bottom_up, cfg_fpn):
        super().__init__()
        self.bottom_up = bottom_up
        bottom_up_shape = bottom_up.output_shape()
        out_channels = cfg_fpn.out_channels
        for name, spec in bottom_up_shape.items():
            level = name[-1]
            setattr(self, f"fpn_lateral{level}", Conv2d(spec.channels, out_channels, 1, weight_init=XAVIER_FILL))
            setattr(self, f"fpn_output{level}", Conv2d(out_channels, out_channels, 3, padding=1,
                                                       weight_init=XAVIER_FILL))
        self.levels = tuple(name[-1] for name in bottom_up_shape)[::-1]  # coarsest first
        strides = [spec.stride for spec in bottom_up_shape.values()]
        self.strides = tuple(strides) + (2 * strides[-1],)
        self.out_channels = out_channels
        # p6 = max-pool of p5 with kernel 1, stride 2 (a stride-2 subsample); as an op rather than a strided
        # slice because MindSpore's CPU StridedSliceGrad fails on odd-sized maps.
        self.top_block = nn.MaxPool2d(1, 2)

    def output_shape(self):
        """{name: FeatureSpec} of p2 .. p6 (or from the finest level the bottom-up gives), finest first."""
        return {f"p{stride.bit_length() - 1}": FeatureSpec(self.out_channels, stride) for stride in self.strides}

    def construct(self, images, extents):
        bottom_up = self.bottom_up(images, extents)[::-1]
        strides = self.strides[:-1][::-1]
        prev = getattr(self, "fpn_lateral" + self.levels[0])(bottom_up[0])
        results = (self._output(self.levels[0], prev, extents, strides[0]),)
        for features, level, stride in zip(bottom_up[1:], self.levels[1:], strides[1:]):
            top_down = upsample2x_nearest(prev)
            prev = getattr(self, "fpn_lateral" + level)(features) + top_down
            results = (self._output(level, prev, extents, stride),) + results
        return results + (self.top_block(results[-1]),)

    def _output(self, level, x, extents, stride):
        """The 3x3 output conv of `level`, zero beyond the extents like its input."""
        return zero_beyond(getattr(self, "fpn_output" + level)(zero_beyond(x, extents, stride)), extents, stride)
