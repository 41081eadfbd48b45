"""The detector's building blocks against small reference implementations: anchors, NMS, matching, sampling, box
coding, mask pasting, upsampling and the ResNet variants."""
import math

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor, ops

from maskrcnn.anchor_generator import AnchorGenerator
from maskrcnn.box_coder import BoxCoder
from maskrcnn.box_ops import nms, pairwise_iou
from maskrcnn.fpn import upsample2x_nearest
from maskrcnn.matcher import IGNORE, NEGATIVE, POSITIVE, match
from maskrcnn.postprocess import paste_mask
from maskrcnn.resnet import ResNet
from maskrcnn.rpn import RPN
from maskrcnn.shape_spec import FeatureSpec
from maskrcnn_pointrend.config import load_config
from maskrcnn.sampler import subsample

ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")


def random_boxes(rng, n, extent=300.0, max_size=100.0):
    xy = rng.uniform(0, extent, (n, 2))
    wh = rng.uniform(1, max_size, (n, 2))
    return np.concatenate([xy, xy + wh], 1).astype(np.float32)


def reference_iou(a, b):
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def reference_nms(boxes, valid, groups, threshold):
    """Greedy NMS over boxes already sorted by score (torchvision's semantics, per group)."""
    iou = reference_iou(boxes, boxes)
    keep = np.zeros(len(boxes), bool)
    for i in range(len(boxes)):
        if valid[i] and not any(keep[j] and groups[j] == groups[i] and iou[i, j] > threshold for j in range(i)):
            keep[i] = True
    return keep


STRIDES = (4, 8, 16, 32, 64)


def feature_maps(height, width):
    """Zero feature maps of an input of height x width at STRIDES (ceil, as FPN's p6 pools p5)."""
    return tuple(Tensor(np.zeros((1, 1, -(-height // s), -(-width // s)), np.float32)) for s in STRIDES)


def test_anchors_inside_an_extent_are_those_an_input_of_that_size_has():
    generator = AnchorGenerator(load_config([]).model.anchor, STRIDES)
    canvas, extent = feature_maps(192, 256), (96, 160)  # a padded canvas and an image's own padded size
    inside = generator.inside(canvas, Tensor(np.array([extent], np.int32)))
    for anchors, mask, own in zip(generator(canvas), inside, generator(feature_maps(*extent))):
        np.testing.assert_array_equal(anchors.asnumpy()[mask.asnumpy()[0]], own.asnumpy())
    full = generator.inside(canvas, Tensor(np.array([[192, 256]], np.int32)))
    assert all(mask.asnumpy().all() for mask in full)


def test_rpn_labels_ignore_anchors_outside_the_image_and_never_match_them():
    cfg = load_config(["--model.rpn.nms_rounds=4"])
    rpn = RPN(cfg.model.rpn, cfg.model.anchor, {f"p{k + 2}": FeatureSpec(1, s) for k, s in enumerate(STRIDES)})
    canvas = feature_maps(128, 128)
    anchors = ops.concat(rpn.anchor_generator(canvas), 0)
    inside = ops.concat(rpn.anchor_generator.inside(canvas, Tensor(np.array([[64, 128]], np.int32))), 1)[0]
    # a box at the bottom of the image: its best anchors overall lie below it, over the padding
    gt_boxes = Tensor(np.array([[40.0, 50.0, 72.0, 82.0], [0, 0, 0, 0]], np.float32))
    _, labels = rpn.label_anchors(anchors, inside, gt_boxes, Tensor(np.array([True, False])))
    labels, inside = labels.asnumpy(), inside.asnumpy()
    assert (labels[~inside] == IGNORE).all()
    iou = reference_iou(gt_boxes.asnumpy()[:1], anchors.asnumpy())[0]
    assert iou[~inside].max() > iou[inside].max()  # so the low-quality match must come from the inside ones
    best_inside = inside & (iou == iou[inside].max())
    assert (labels[best_inside] == POSITIVE).all() and (labels[inside & (iou < 0.3)] == NEGATIVE).all()


def test_pairwise_iou_uses_continuous_box_sizes():
    rng = np.random.default_rng(0)
    a, b = random_boxes(rng, 40), random_boxes(rng, 30)
    np.testing.assert_allclose(pairwise_iou(Tensor(a), Tensor(b)).asnumpy(), reference_iou(a, b), atol=1e-6)


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_nms_equals_greedy_nms_per_group(threshold):
    rng = np.random.default_rng(int(threshold * 10))
    boxes = random_boxes(rng, 300, extent=150)
    valid = rng.random(300) > 0.1
    groups = rng.integers(0, 3, 300).astype(np.int32)
    keep, converged = nms(Tensor(boxes), Tensor(valid), threshold, 32, groups=Tensor(groups))
    assert converged.asnumpy()
    np.testing.assert_array_equal(keep.asnumpy(), reference_nms(boxes, valid, groups, threshold))


def test_nms_reports_when_its_rounds_do_not_reach_the_greedy_result():
    # A chain of boxes, each overlapping the next: box i survives iff i is even, a chain of 10 suppressions.
    boxes = np.array([[4.0 * i, 0, 4.0 * i + 32, 32] for i in range(10)], np.float32)
    valid = np.ones(10, bool)
    keep, converged = nms(Tensor(boxes), Tensor(valid), 0.7, 3)
    assert not converged.asnumpy()
    keep, converged = nms(Tensor(boxes), Tensor(valid), 0.7, 16)
    assert converged.asnumpy()
    np.testing.assert_array_equal(keep.asnumpy(), np.arange(10) % 2 == 0)


def test_matcher_thresholds_low_quality_matches_and_padding():
    quality = np.array([[0.9, 0.5, 0.2, 0.1],
                        [0.1, 0.6, 0.25, 0.0],
                        [0.95, 0.95, 0.95, 0.95]], np.float32)  # the last slot is padding
    gt_valid = np.array([True, True, False])
    matches, labels = match(Tensor(quality), Tensor(gt_valid), (0.3, 0.7), (0, -1, 1), True)
    np.testing.assert_array_equal(matches.asnumpy(), [0, 1, 1, 0])
    # 0: IoU 0.9 positive; 1: 0.6 in between, but the best anchor of gt 1: positive; 2: 0.25 negative;
    # 3: 0.1 negative. The padding slot's 0.95 matches nothing.
    np.testing.assert_array_equal(labels.asnumpy(), [1, 1, 0, 0])
    _, labels = match(Tensor(quality), Tensor(np.zeros(3, bool)), (0.5,), (0, 1), False)
    np.testing.assert_array_equal(labels.asnumpy(), [0, 0, 0, 0])


def test_subsample_takes_at_most_the_positive_fraction_and_fills_with_negatives():
    rng = np.random.default_rng(1)
    positive = np.zeros(1000, bool)
    positive[:300] = True
    negative = ~positive
    negative[900:] = False
    index, is_positive, sampled = (x.asnumpy() for x in subsample(
        Tensor(positive), Tensor(negative), 256, 0.25, Tensor(rng.random(1000, dtype=np.float32))))
    assert is_positive.sum() == 64 and sampled.sum() == 256
    assert positive[index[is_positive]].all() and negative[index[sampled & ~is_positive]].all()
    assert len(set(index[sampled].tolist())) == 256
    # Few candidates: every one is taken and the rest of the slots are empty.
    positive, negative = np.zeros(1000, bool), np.zeros(1000, bool)
    positive[:10], negative[10:30] = True, True
    index, is_positive, sampled = (x.asnumpy() for x in subsample(
        Tensor(positive), Tensor(negative), 256, 0.25, Tensor(rng.random(1000, dtype=np.float32))))
    assert is_positive.sum() == 10 and sampled.sum() == 30
    assert set(index[sampled].tolist()) == set(range(30))


def test_box_coder_decodes_what_it_encodes():
    rng = np.random.default_rng(2)
    reference, target = random_boxes(rng, 50), random_boxes(rng, 50)
    coder = BoxCoder((10.0, 10.0, 5.0, 5.0))
    deltas = coder.encode(Tensor(target), Tensor(reference))
    np.testing.assert_allclose(coder.decode(deltas, Tensor(reference)).asnumpy(), target, atol=1e-3)


def reference_paste(mask, box, height, width):
    """detectron2's paste: grid_sample (align_corners=False, zero padding) of the box-frame mask at every pixel
    centre, computed point by point."""
    side = mask.shape[0]
    padded = np.pad(mask, 1)
    out = np.zeros((height, width), np.float32)
    for y in range(height):
        for x in range(width):
            u = (x + 0.5 - box[0]) / (box[2] - box[0]) * side - 0.5
            v = (y + 0.5 - box[1]) / (box[3] - box[1]) * side - 0.5
            x0, y0 = math.floor(u), math.floor(v)
            fx, fy = u - x0, v - y0
            value = 0.0
            for dy, wy in ((0, 1 - fy), (1, fy)):
                for dx, wx in ((0, 1 - fx), (1, fx)):
                    yy, xx = y0 + dy, x0 + dx
                    if 0 <= yy < side and 0 <= xx < side:
                        value += wy * wx * padded[yy + 1, xx + 1]
            out[y, x] = value
    return out >= 0.5


def test_paste_mask_equals_pointwise_grid_sample():
    rng = np.random.default_rng(3)
    for box in ([3.3, 4.7, 20.2, 15.9], [-2.0, 10.5, 8.4, 31.0], [30.5, 20.2, 47.9, 39.9]):
        mask = rng.random((12, 12)).astype(np.float32)
        np.testing.assert_array_equal(paste_mask(mask, box, (40, 48)), reference_paste(mask, box, 40, 48))


def test_upsample2x_nearest_equals_nearest_interpolation():
    x = Tensor(np.random.default_rng(6).standard_normal((2, 3, 5, 7)).astype(np.float32))
    np.testing.assert_array_equal(upsample2x_nearest(x).asnumpy(),
                                  ops.interpolate(x, size=(10, 14), mode="nearest").asnumpy())


@pytest.mark.parametrize("depth, width, channels", [(18, 16, (16, 32, 64, 128)), (50, 64, (256, 512, 1024, 2048))])
def test_resnet_variants_shapes_channels_and_freezing(depth, width, channels):
    net = ResNet(load_config([f"--model.backbone.depth={depth}", f"--model.backbone.width={width}",
                              f"--model.backbone.norm={'BN' if depth == 18 else 'FrozenBN'}"]).model.backbone)
    outputs = net(Tensor(np.zeros((1, 3, 64, 96), np.float32)), Tensor(np.array([[64, 96]], np.int32)))
    assert [tuple(o.shape) for o in outputs] == [(1, c, 64 // s, 96 // s) for c, s in zip(channels, (4, 8, 16, 32))]
    assert list(net.output_shape().values()) == [FeatureSpec(c, s) for c, s in zip(channels, (4, 8, 16, 32))]
    frozen = [p.name for p in net.get_parameters() if not p.requires_grad]
    assert all(name.startswith(("stem.", "res2.")) or "norm" in name for name in frozen)
    assert any(p.name.startswith("res3.") and p.requires_grad for p in net.get_parameters())


def test_an_image_on_a_larger_canvas_is_computed_as_in_its_own_padded_input():
    """The quickstart network (ResNet-18 + FPN, random weights): an image of 64 x 90 (padded input 64 x 96) placed
    on a 128 x 160 canvas gives the same features inside its extent, the same proposals, the same pooled box
    features for boxes reaching its bottom-right edge (ROIAlign's clamp there), and the same detections."""
    from maskrcnn_pointrend.model import build_pointrend

    ms.set_seed(0)
    cfg = load_config(["--config_path", "configs/quickstart.yaml", "--model.backbone.norm=FrozenBN"])
    net = build_pointrend(cfg)
    net.set_train(False)
    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, (3, 64, 90), dtype=np.uint8)
    size = Tensor(np.array([[64, 90]], np.int32))
    boxes = Tensor(np.array([[[10.0, 20.0, 90.0, 64.0], [50.0, 0.0, 90.0, 64.0], [0.0, 0.0, 30.0, 30.0]]], np.float32))
    valid = Tensor(np.ones((1, 3), bool))
    results = []
    for canvas in ((64, 96), (128, 160)):
        images = np.zeros((1, 3) + canvas, np.uint8)
        images[0, :, :64, :90] = image
        features = net.features(Tensor(images), size)
        padded = net.padded_size(size)
        proposals, _, proposal_valid, _, _ = net.proposal_generator(features, size, padded)
        pooled = net.roi_heads.box_features(features, padded, boxes, valid)
        boxes_out, scores, classes, kept, _ = net.roi_heads.detect(features, proposals, proposal_valid, size, padded)
        kept = kept.asnumpy()[0]
        results.append({
            "features": [f.asnumpy()[..., :-(-64 // s), :-(-96 // s)] for f, s in zip(features, STRIDES)],
            "proposals": [proposals.asnumpy()[0][proposal_valid.asnumpy()[0]]], "pooled": [p.asnumpy() for p in pooled],
            "detections": [boxes_out.asnumpy()[0][kept], scores.asnumpy()[0][kept], classes.asnumpy()[0][kept]]})
    own, on_canvas = results
    assert len(own["proposals"][0]) > 50 and len(own["detections"][1]) > 0
    for name in own:
        for a, b in zip(own[name], on_canvas[name]):
            assert a.shape == b.shape, name
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4 * max(np.abs(a).max(), 1), err_msg=name)
