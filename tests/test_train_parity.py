"""Training parity with detectron2 (../shared/parity/train/README.md): for each fixture, the image and ground truth
built by our own pipeline from the COCO annotation equal what detectron2 fed, with detectron2's random choices
replayed our anchor labels, proposals, six losses and gradients equal detectron2's, and the mask targets we
build from our own ground-truth representation agree with detectron2's.

Replayed choices: RPN and ROI sampling through random keys (the recorded indices get the highest keys, in their
order, so our top-k sampler picks exactly them), and PointRend's two uniform draws as our random inputs. Where a
choice is not a random draw but a float decision at detectron2's precision, the test injects detectron2's
result, as the fixture README allows: the RPN proposals fed to the ROI heads (near-equal logits may order a few
proposals differently, and a different candidate list would make the recorded ROI indices meaningless), the
training points (the 147 of 588 oversampled points are a top-k of logits that agree to ~1e-4, so a near tie may
pick another point) and the mask targets (the loss comparison isolates the loss; our own targets are compared
separately).
"""
import json
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
from mindspore import ops

from conftest import PARITY, SHARED, requires_shared
from maskrcnn.box_ops import pairwise_iou
from maskrcnn_pointrend.config import load_config
from maskrcnn_pointrend.data.coco_json import load_coco_annotations
from maskrcnn_pointrend.data.mindrecord_schema import decode_instances, encode_record
from maskrcnn_pointrend.data.dataset import TRAIN_COLUMNS, TrainTransform
from maskrcnn_pointrend.data.gt_masks import GRID_SCALE
from maskrcnn_pointrend.data.transforms import read_image_bgr
from maskrcnn_pointrend.engine.train_step import loss_inputs
from maskrcnn_pointrend.mask_head import mask_losses
from maskrcnn_pointrend.mask_targets import coarse_mask_targets, sample_mask_grids
from maskrcnn_pointrend.model import LOSS_NAMES, load_model
from maskrcnn_pointrend.point_features import uncertain_points_with_randomness

pytestmark = requires_shared
FIXTURES = sorted((PARITY / "train").glob("*.npz"))
LOSS_RTOL = 1e-4
GRAD_RTOL = 1e-3


@pytest.fixture(scope="module", params=FIXTURES, ids=[f.stem for f in FIXTURES])
def fixture(request):
    return np.load(request.param)


def meta(fixture):
    return json.loads(str(fixture["meta_json"]))


def training_config(fixture):
    """Our settings for the fixture's fixed training transform: one short side, no flip, padded to a multiple
    of 32 as detectron2 pads one image."""
    config = meta(fixture)["config"]
    return load_config(["--input.train_canvases=[]", "--input.random_flip=none",
                        f"--input.min_size_train=[{config['INPUT.MIN_SIZE_TRAIN (overridden: fixed)']}]",
                        f"--input.max_size_train={config['INPUT.MAX_SIZE_TRAIN']}"])


def our_sample(fixture, cfg):
    """The fixture's image and annotations read from ../shared/data and put through our training transform ->
    {TRAIN_COLUMNS name: array with a batch axis}."""
    info = meta(fixture)
    ann_file = SHARED / "data" / info["annotation_file"]
    split = ann_file.stem[len("instances_"):]
    entry = next(e for e in load_coco_annotations(ann_file).images if e.image_id == info["image_id"])
    data = (ann_file.parents[1] / split / entry.file_name).read_bytes()
    transform = TrainTransform.from_config(cfg)
    out = transform.transform(read_image_bgr(data), decode_instances(encode_record(entry, data)),
                              cfg.input.min_size_train[0], False)
    return {name: value[None] for name, value in zip(TRAIN_COLUMNS, out)}


def selecting_keys(size, chosen_lists):
    """(size,) float32 random keys under which a top-k sampler picks exactly each list of chosen indices, in
    their order: the chosen ones get keys in (0.5, 1], decreasing along each list, all others lower."""
    keys = np.linspace(0.0, 0.4, size, dtype=np.float32)
    for chosen in chosen_lists:
        keys[chosen] = np.linspace(1.0, 0.6, max(len(chosen), 1), dtype=np.float32)[:len(chosen)]
    return keys


def padded(rows, slots, fill=0.0):
    """(F, ...) -> (slots, ...) with the rows after F set to fill."""
    out = np.full((slots,) + rows.shape[1:], fill, rows.dtype)
    out[:len(rows)] = rows
    return out


@pytest.fixture(scope="module")
def replay(fixture, detectron2_weights):
    """run_replay's results; `pytest -s` prints the fixture's figures (README, "Training parity") afterwards."""
    info = meta(fixture)
    result = run_replay(fixture, detectron2_weights(info["seed"], info["bn_file"])[1])
    yield result
    print(f"\n{Path(info['image_file']).stem} (seed {info['seed']}): " + "; ".join(parity_figures(fixture, result)))


def run_replay(fixture, checkpoint):
    """Our network, inputs and outputs for the fixture, forward and backward with detectron2's choices."""
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    cfg = training_config(fixture)
    net, _ = load_model(cfg, checkpoint)
    net.set_train(True)
    sample = our_sample(fixture, cfg)
    canvas = sample["image"].shape[2:]
    batch = tuple(sample[name] for name in TRAIN_COLUMNS)
    slots = cfg.input.max_instances
    (_, num_anchors), (_, num_candidates), (oversampled, _) = net.random_input_shapes(1, *canvas, slots)
    num_proposals = int(fixture["roi_num_rpn_proposals"])
    post_nms = net.proposal_generator.num_train_proposals(*canvas)

    def candidate(index):  # detectron2's candidate index -> ours: [proposal slots | ground-truth slots]
        return np.where(index < num_proposals, index, post_nms + index - num_proposals)

    rpn_keys = selecting_keys(num_anchors, [fixture["rpn_sample_pos_idx"], fixture["rpn_sample_neg_idx"]])
    roi_keys = selecting_keys(num_candidates, [candidate(fixture["roi_sample_pos_idx"]),
                                              candidate(fixture["roi_sample_neg_idx"])])
    num_fg = oversampled[0]
    randomness = (rpn_keys[None], roi_keys[None], (padded(fixture["point_rand_oversample"], num_fg, 0.5),
                                                   padded(fixture["point_rand_random"], num_fg, 0.5)))
    inputs = loss_inputs(batch, randomness)
    proposals = ms.Tensor(padded(fixture["rpn_proposal_boxes"], post_nms)[None])
    proposal_valid = ms.Tensor((np.arange(post_nms) < num_proposals)[None])
    injected = [ms.Tensor(padded(fixture["mask_coarse_targets"].astype(np.float32), num_fg)),
                ms.Tensor(padded(fixture["point_coords"], num_fg, 0.5)),
                ms.Tensor(padded(fixture["point_labels"], num_fg))]
    roi_heads, mask_head = net.roi_heads, net.roi_heads.mask_head
    seen = {}

    def losses_with_detectron2_choices(images, image_size, gt_boxes, gt_classes, gt_valid, rpn_keys, roi_keys,
                                       coarse_targets, points, point_labels):
        """GeneralizedRCNN.losses with detectron2's proposals, training points and mask targets injected."""
        features = net.features(images, image_size)
        head_outputs = net.proposal_generator(features, image_size, net.padded_size(image_size))[-1]
        rpn_losses = net.proposal_generator.losses(head_outputs, gt_boxes, gt_valid, rpn_keys)
        rois = roi_heads.label_and_sample(proposals, proposal_valid, gt_boxes, gt_classes, gt_valid, roi_keys)
        box_losses, (boxes, classes, weights, _) = roi_heads.box_training(features, net.padded_size(image_size),
                                                                          rois, gt_boxes)
        classes = classes.reshape(-1)
        maps = mask_head.channels_last(features)
        coarse = mask_head.coarse_logits(maps, boxes)
        class_coarse = mask_head.class_coarse_logits(coarse, classes)
        point_logits = mask_head.point_logits(mask_head.projected_point_maps(maps), boxes, coarse, classes, points)
        seen.update(rois=rois, boxes=boxes, class_coarse=class_coarse, point_logits=point_logits)
        losses = rpn_losses + box_losses + mask_losses(class_coarse, coarse_targets, point_logits, point_labels,
                                                       weights.reshape(-1))
        return ops.stack(losses).sum(), ops.stack(losses)

    params = net.trainable_params()
    replay_inputs = (*inputs[:5], *inputs[6:8], *injected)
    (_, losses), grads = ms.value_and_grad(losses_with_detectron2_choices, None, params, has_aux=True)(
        *replay_inputs)
    own_losses, own_converged = net.losses(*inputs)
    return {"net": net, "cfg": cfg, "sample": sample, "inputs": inputs, "losses": losses.asnumpy(),
            "grads": {p.name: g.asnumpy() for p, g in zip(params, grads)}, "seen": seen,
            "own_losses": np.array([float(x.asnumpy()) for x in own_losses]), "num_fg": num_fg,
            "own_converged": bool(own_converged.asnumpy().all())}


def test_our_pipeline_feeds_what_detectron2_fed(fixture, replay):
    sample = replay["sample"]
    height, width = fixture["image_size"]
    assert tuple(sample["image_size"][0]) == (height, width)
    assert sample["image"].shape == tuple(fixture["input_tensor_shape"])
    np.testing.assert_array_equal(sample["image"][0, :, :height, :width], fixture["image_bgr"].transpose(2, 0, 1))
    assert not sample["image"][0, :, height:].any() and not sample["image"][0, :, :, width:].any()
    count = len(fixture["gt_boxes"])
    np.testing.assert_array_equal(sample["gt_valid"][0], np.arange(sample["gt_valid"].shape[1]) < count)
    np.testing.assert_array_equal(sample["gt_boxes"][0, :count], fixture["gt_boxes"])
    np.testing.assert_array_equal(sample["gt_classes"][0, :count], fixture["gt_classes"])


def test_anchor_labels_equal_detectron2s(fixture, replay):
    net, inputs = replay["net"], replay["inputs"]
    images, image_size, gt_boxes, _, gt_valid = inputs[:5]
    features = net.features(images, image_size)
    rpn = net.proposal_generator
    feature_maps = tuple(features[i] for i in rpn.feature_indices)
    anchors = ops.concat(rpn.anchor_generator(feature_maps), 0)
    inside = ops.concat(rpn.anchor_generator.inside(feature_maps, net.padded_size(image_size)), 1)[0]
    assert anchors.shape[0] == int(fixture["rpn_num_anchors"]) and inside.asnumpy().all()
    np.testing.assert_array_equal(anchors.asnumpy()[fixture["rpn_sample_pos_idx"]], fixture["rpn_pos_anchors"])
    _, labels = rpn.label_anchors(anchors, inside, gt_boxes[0], gt_valid[0])
    np.testing.assert_array_equal(labels.asnumpy(), fixture["rpn_anchor_labels_presample"])


def test_proposals_match_detectron2s(fixture, replay):
    net, inputs = replay["net"], replay["inputs"]
    images, image_size = inputs[:2]
    features = net.features(images, image_size)
    proposals, logits, valid, converged, _ = net.proposal_generator(features, image_size,
                                                                    net.padded_size(image_size))
    valid = valid.asnumpy()[0]
    ours, our_logits = proposals.asnumpy()[0][valid], logits.asnumpy()[0][valid]
    theirs, their_logits = fixture["rpn_proposal_boxes"], fixture["rpn_proposal_logits"]
    assert converged.asnumpy().all() and len(ours) == len(theirs)
    iou = pairwise_iou(ms.Tensor(theirs), ms.Tensor(ours)).asnumpy()
    assert (iou.max(1) >= 0.99).mean() >= 0.99
    # The logits agree to float32 accumulation over ~50 layers (measured: 3e-4 for logits of ~19, 2e-5
    # relative); where detectron2's logits differ by more than twice that, its order is ours.
    position = iou.argmax(1)
    errors = np.abs(our_logits[position] - their_logits)
    assert errors.max() <= 1e-4 * np.abs(their_logits).max()
    clearly_before = their_logits[:, None] - their_logits[None, :] > 2 * errors.max()
    assert not (clearly_before & (position[:, None] > position[None, :])).any()


def test_sampling_replays_detectron2s_choices(fixture, replay):
    boxes, classes, matched, foreground, sampled = (x.asnumpy()[0] for x in replay["seen"]["rois"])
    count = len(fixture["roi_sampled_idx"])
    num_fg = len(fixture["roi_sample_pos_idx"])
    assert sampled.sum() == count and foreground.sum() == num_fg and foreground[:num_fg].all()
    np.testing.assert_array_equal(boxes[:count], fixture["roi_sampled_boxes"])
    np.testing.assert_array_equal(classes[:count], fixture["roi_sampled_gt_classes"])
    np.testing.assert_array_equal(matched[:num_fg], fixture["roi_sampled_matched_gt"][:num_fg])
    mask_boxes = replay["seen"]["boxes"].asnumpy()[0, :num_fg]
    np.testing.assert_allclose(mask_boxes, fixture["mask_fg_boxes"], rtol=0, atol=1e-2)


def test_training_points_are_detectron2s(fixture, replay):
    num_fg = len(fixture["point_coords"])
    sampler = replay["net"].roi_heads.mask_head.sampler
    class_coarse = replay["seen"]["class_coarse"][:num_fg]
    np.testing.assert_allclose(class_coarse.asnumpy(), fixture["mask_coarse_logits_gtclass"], rtol=0, atol=2e-3)
    points = uncertain_points_with_randomness(sampler, class_coarse, ms.Tensor(fixture["point_rand_oversample"]),
                                              ms.Tensor(fixture["point_rand_random"]), 147).asnumpy()
    theirs = fixture["point_coords"]
    np.testing.assert_array_equal(points[:, 147:], theirs[:, 147:])
    # the uncertain points: the same set, up to near ties of the 147th and 148th logit
    shared = [len({tuple(p) for p in a} & {tuple(p) for p in b}) for a, b in zip(points[:, :147], theirs[:, :147])]
    assert np.sum(shared) >= 0.99 * num_fg * 147
    np.testing.assert_allclose(replay["seen"]["point_logits"].asnumpy()[:num_fg], fixture["point_logits_gtclass"],
                               rtol=0, atol=2e-3)


@pytest.mark.parametrize("index, name", list(enumerate(LOSS_NAMES)))
def test_losses_equal_detectron2s(fixture, replay, index, name):
    assert replay["losses"][index] == pytest.approx(float(fixture[name]), rel=LOSS_RTOL)


def gradient_tolerance(name):
    """Relative tolerances of a parameter's gradient: its l2 norm, its max-abs (and sum), and the largest
    elementwise difference of its full gradient over its max-abs.

    The issue asks 1e-3 throughout. Float32 does not determine a gradient behind ReLUs that closely: the
    gradient jumps wherever an activation crosses zero, so changing the input scale by one float32 ulp
    (1.2e-7) changes our own gradients -- res3's weight gradients by 1.5e-2 (norm of the difference over the
    norm) and their max-abs by up to 6.5e-3, single elements of the point head's fc1 gradient by 5.2e-3 of its
    max-abs -- and detectron2's rounding is another such perturbation. Measured against detectron2: above the
    ResNet (FPN, RPN, box and mask heads) every l2 and max-abs within 4e-4, full gradients within 5.2e-3 of
    max-abs (point head fc1; the predictors' within 2e-5); in the bottom-up ResNet l2 within 2e-3, max-abs and
    sums within 8e-3, res3.0.conv1's full gradient within 1.2e-2 of its max-abs."""
    return (5e-3, 2e-2, 3e-2) if name.startswith("backbone.bottom_up.") else (GRAD_RTOL, GRAD_RTOL, 1e-2)


def test_gradients_equal_detectron2s(fixture, replay):
    grads = replay["grads"]
    names = list(fixture["grad_names"])
    assert set(names) == set(grads) and not set(str(fixture["frozen_param_names"]).split()) & set(grads)
    failures = []
    for name, (ref_sum, ref_abs, ref_l2, ref_max) in zip(names, fixture["grad_stats"]):
        grad = grads[name].astype(np.float64)
        l2_tol, max_tol, _ = gradient_tolerance(name)
        checks = [("l2", np.sqrt((grad ** 2).sum()), ref_l2, l2_tol), ("max-abs", np.abs(grad).max(), ref_max, max_tol)]
        if abs(ref_sum) > 0.1 * ref_abs:  # a sum near zero next to its terms is rounding noise
            checks.append(("sum", grad.sum(), ref_sum, max_tol))
        failures += [f"{name} {stat}: {ours:.6g} vs {theirs:.6g}" for stat, ours, theirs, tol in checks
                     if abs(ours - theirs) > tol * abs(theirs)]
    for name in fixture["grad_key_names"]:
        if f"grad_full__{name}" in fixture:
            theirs = fixture[f"grad_full__{name}"]
            difference = np.abs(grads[name].reshape(theirs.shape) - theirs).max()
            if difference > gradient_tolerance(name)[2] * np.abs(theirs).max():
                failures.append(f"{name} full gradient: max difference {difference:.3g}")
    assert not failures, "\n".join(failures)


def own_targets(fixture, replay):
    """Our coarse targets and point labels, from our own mask grids, at detectron2's mask boxes and points."""
    sample, cfg = replay["sample"], replay["cfg"]
    sampler = replay["net"].roi_heads.mask_head.sampler
    grids = ms.Tensor(sample["gt_masks"][0, ..., None].astype(np.float32) / GRID_SCALE)
    frames = ms.Tensor(sample["gt_mask_frames"][0])
    index = ms.Tensor(fixture["roi_sampled_matched_gt"][:len(fixture["mask_fg_boxes"])].astype(np.int32))
    coarse = coarse_mask_targets(sampler, grids, frames, index, ms.Tensor(fixture["mask_fg_boxes"]),
                                 cfg.model.mask_head.output_side_resolution,
                                 cfg.model.mask_head.coarse_target_samples).asnumpy()
    labels = sample_mask_grids(sampler, grids, frames, index, ms.Tensor(fixture["point_coords_image"])).asnumpy()
    return coarse, labels


def test_our_own_mask_targets_agree_with_detectron2s(fixture, replay):
    coarse, labels = own_targets(fixture, replay)
    assert (coarse == fixture["mask_coarse_targets"]).mean() >= 0.995
    assert np.abs(labels - fixture["point_labels"]).mean() <= 0.05


def test_the_training_step_with_our_own_targets_stays_close(fixture, replay):
    """GeneralizedRCNN.losses as training runs it: our proposals and our own targets and points, detectron2's
    sampling keys. The RPN losses are detectron2's; the others move only as far as the inputs it chose for
    itself differ from detectron2's."""
    own, theirs = replay["own_losses"], fixture["losses"]
    assert replay["own_converged"]
    np.testing.assert_allclose(own[:2], theirs[:2], rtol=LOSS_RTOL)
    np.testing.assert_allclose(own[2:], theirs[2:], rtol=0.02)


PARAMETER_GROUPS = (("bottom-up ResNet", "backbone.bottom_up."), ("FPN", "backbone.fpn_"),
                    ("RPN head", "proposal_generator."), ("box head", "roi_heads.box_"),
                    ("mask head", "roi_heads.mask_head."))


def parity_figures(fixture, replay):
    """The measured agreement with detectron2, as text: worst relative error of the losses, of the gradients'
    l2 norm and max-abs per parameter group, of the key parameters' full gradients (over their max-abs), and our
    own targets' agreement."""
    figures = ["losses " + ", ".join(f"{name} {abs(ours - theirs) / abs(theirs):.1e}" for name, ours, theirs in
                                     zip(LOSS_NAMES, replay["losses"], fixture["losses"]))]
    for group, prefix in PARAMETER_GROUPS:
        worst = [0.0, 0.0]
        for name, (_, _, ref_l2, ref_max) in zip(fixture["grad_names"], fixture["grad_stats"]):
            if name.startswith(prefix):
                grad = replay["grads"][name].astype(np.float64)
                worst[0] = max(worst[0], abs(np.sqrt((grad ** 2).sum()) - ref_l2) / ref_l2)
                worst[1] = max(worst[1], abs(np.abs(grad).max() - ref_max) / ref_max)
        figures.append(f"{group} gradients l2 {worst[0]:.1e}, max-abs {worst[1]:.1e}")
    full = [(name, np.abs(replay["grads"][name].reshape(fixture[f"grad_full__{name}"].shape)
                          - fixture[f"grad_full__{name}"]).max() / np.abs(fixture[f"grad_full__{name}"]).max())
            for name in fixture["grad_key_names"] if f"grad_full__{name}" in fixture]
    figures.append("full gradients " + ", ".join(f"{name.rsplit('.', 2)[-2]}.{name.rsplit('.', 1)[-1]} {value:.1e}"
                                               for name, value in full))
    coarse, labels = own_targets(fixture, replay)
    figures.append(f"own coarse targets equal on {100 * (coarse == fixture['mask_coarse_targets']).mean():.2f}% of "
                   f"cells, point labels mean |difference| {np.abs(labels - fixture['point_labels']).mean():.4f}")
    figures.append("training step with its own targets: losses " + ", ".join(
        f"{abs(ours - theirs) / abs(theirs):.1e}" for ours, theirs in zip(replay["own_losses"], fixture["losses"])))
    return figures
