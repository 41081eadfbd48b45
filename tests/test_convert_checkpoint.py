"""convert_checkpoint.py and maskrcnn_pointrend.checkpoints: safe reading of pickled checkpoints, conversion of
detectron2 / MindSpore Model Zoo / torchvision weights to our names, our .ckpt metadata, loading with a report.

The reference for our names and shapes is ../shared/parity/pointrend_r50_fpn_keys.tsv (detectron2's state
dict; our point head weights are its Conv1d weights squeezed to 2-D). Synthetic checkpoints use those names
with channel counts shrunk by SHRINK so that they stay tiny.
"""
import contextlib
import io
import json
import logging
import os
import pickle
import stat
import zipfile

import mindspore as ms
import numpy as np
import pytest
from mindspore import nn

import convert_checkpoint
from conftest import PARITY, REPO_ROOT
from maskrcnn_pointrend.checkpoints import (CheckpointError, UnsafePickleError, config_overrides_from_metadata,
                                            convert_detectron2, convert_mindspore_zoo, convert_torchvision,
                                            load_into_network, load_pickled_checkpoint, read_checkpoint,
                                            save_checkpoint)
from maskrcnn_pointrend.config import load_config
from maskrcnn_pointrend.model import build_pointrend

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "checkpoints"
# Channel counts of the real model -> tiny ones; equal sizes stay equal, so layers stay consistent.
SHRINK = {64: 2, 128: 3, 256: 4, 512: 5, 1024: 6, 2048: 7, 12544: 8, 336: 9, 3920: 10, 81: 3, 320: 8, 80: 2,
          324: 12}
POINTREND_HEADS = ("roi_heads.mask_head.coarse_head.", "roi_heads.mask_head.point_head.")
POINT_HEAD_WEIGHTS = [f"roi_heads.mask_head.point_head.{m}.weight" for m in ("fc1", "fc2", "fc3", "predictor")]
IMAGENET_RGB = {"input_format": "RGB", "pixel_mean": [123.675, 116.28, 103.53],
                "pixel_std": [58.395, 57.12, 57.375], "stride_in_1x1": False}


def read_tsv(name, shrink=True):
    """{name: shape} from a parity tsv (name<TAB>AxBxC)."""
    shapes = {}
    with open(PARITY / name) as f:
        for line in f:
            key, shape = line.rstrip("\n").split("\t")
            shapes[key] = tuple(SHRINK.get(int(s), int(s)) if shrink else int(s) for s in shape.split("x"))
    return shapes


def ours(shapes):
    """detectron2 shapes -> our shapes (Conv1d weights squeezed)."""
    return {k: s[:2] if k in POINT_HEAD_WEIGHTS else s for k, s in shapes.items()}


def random_state(shapes, seed=0):
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}


def write_pickle(path, obj, protocol=pickle.HIGHEST_PROTOCOL):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)
    return str(path)


def run_cli(capsys, source, input_path, output_path):
    convert_checkpoint.main(["--source", source, "--input", str(input_path), "--output", str(output_path)])
    return capsys.readouterr().out


def shapes_of(params):
    return {k: tuple(v.shape) for k, v in params.items()}


@pytest.fixture(scope="module")
def d2_shapes():
    """detectron2 PointRend R50-FPN tensor shapes, shrunk."""
    if not PARITY.is_dir():
        pytest.skip(f"{PARITY} is absent")
    return read_tsv("pointrend_r50_fpn_keys.tsv")


# ---- reading pickles safely ----

class _RunsCommand:
    def __init__(self, callable_, arg):
        self.callable_, self.arg = callable_, arg

    def __reduce__(self):
        return self.callable_, (self.arg,)


@pytest.mark.parametrize("function, command", [
    (os.system, "touch {marker}"),
    (eval, "open({marker!r}, 'w').close()"),
])
def test_malicious_pkl_is_refused_and_nothing_runs(tmp_path, function, command):
    marker = str(tmp_path / "pwned")
    payload = {"model": {"backbone.fpn_lateral2.bias": np.zeros(3, np.float32),
                         "x": _RunsCommand(function, command.format(marker=marker))}}
    path = write_pickle(tmp_path / "evil.pkl", payload)
    with pytest.raises(UnsafePickleError) as error:
        load_pickled_checkpoint(path)
    assert path in str(error.value)
    assert error.value.global_name == f"{function.__module__}.{function.__name__}"  # posix.system, builtins.eval
    assert error.value.global_name in str(error.value)
    assert not os.path.exists(marker)


def test_malicious_torch_zip_is_refused_and_nothing_runs(tmp_path, capsys):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("evil/data.pkl", pickle.dumps({"conv1.weight": _RunsCommand(os.system, f"touch {marker}")}))
    with pytest.raises(SystemExit) as error:
        run_cli(capsys, "torchvision", path, tmp_path / "out.ckpt")
    assert "refused to unpickle" in str(error.value) and "system" in str(error.value)
    assert not marker.exists() and not (tmp_path / "out.ckpt").exists()


@pytest.mark.parametrize("fixture", ["torch_dtypes_zip.pth", "torch_dtypes_legacy.pth"])
def test_torch_files_read_exactly_as_torch_reads_them(fixture):
    """Both torch formats; float16/bfloat16/float64/int/bool, views with strides and storage offsets."""
    state = load_pickled_checkpoint(str(FIXTURES / fixture))
    expected = np.load(FIXTURES / "torch_dtypes.npz")
    assert list(state) == list(expected)
    for name in expected:
        assert state[name].dtype == expected[name].dtype, name
        np.testing.assert_array_equal(state[name], expected[name], err_msg=name)


def test_unreadable_files_are_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="cannot read checkpoint .*missing.pkl"):
        load_pickled_checkpoint(str(tmp_path / "missing.pkl"))
    (tmp_path / "junk.pkl").write_bytes(b"\x80\x05not a pickle at all")
    with pytest.raises(CheckpointError, match="junk.pkl: not a readable checkpoint pickle"):
        load_pickled_checkpoint(str(tmp_path / "junk.pkl"))


def test_a_deeply_nested_or_two_pickle_torch_zip_is_named(tmp_path, capsys):
    depth = 20000
    nested = b"\x80\x02" + b"]" * depth + b"a" * (depth - 1) + b"."  # lists in lists, 20,000 deep
    with zipfile.ZipFile(tmp_path / "deep.pth", "w") as archive:
        archive.writestr("deep/data.pkl", nested)
    with pytest.raises(SystemExit) as error:
        run_cli(capsys, "detectron2", tmp_path / "deep.pth", tmp_path / "out.ckpt")
    assert str(error.value).startswith(f"convert_checkpoint.py: error: {tmp_path / 'deep.pth'}: objects nested "
                                       "deeper than Python's recursion limit")
    with zipfile.ZipFile(tmp_path / "two.pth", "w") as archive:
        for root in ("a", "b"):
            archive.writestr(f"{root}/data.pkl", pickle.dumps({}))
    with pytest.raises(CheckpointError, match=r"two.pth: a zip file but not a torch checkpoint: 2 <name>/data.pkl "
                                              r"entries \(a/data.pkl, b/data.pkl\), a torch file has one"):
        load_pickled_checkpoint(str(tmp_path / "two.pth"))
    assert not (tmp_path / "out.ckpt").exists()


# ---- detectron2 ----

@pytest.fixture(scope="module")
def seed0(seed0_pickle, tmp_path_factory):
    """(detectron2 .pkl made by make_weights.py --seed 0, its conversion, the CLI's output)."""
    pkl, ckpt = seed0_pickle, tmp_path_factory.mktemp("seed0_cli") / "w0.ckpt"
    with contextlib.redirect_stdout(io.StringIO()) as out:
        convert_checkpoint.main(["--source", "detectron2", "--input", str(pkl), "--output", str(ckpt)])
    return pkl, ckpt, out.getvalue()


def test_seed0_detectron2_checkpoint_converts_completely(seed0):
    pkl, ckpt, out = seed0
    assert "311 tensors" in out
    expected = ours(read_tsv("pointrend_r50_fpn_keys.tsv", shrink=False))
    loaded = ms.load_checkpoint(str(ckpt))
    params = {k: v for k, v in loaded.items() if isinstance(v, ms.Parameter)}
    assert shapes_of(params) == expected
    with open(pkl, "rb") as f:
        source = pickle.load(f)["model"]
    for name in ["backbone.bottom_up.res4.5.conv2.norm.running_var", "roi_heads.box_predictor.cls_score.weight",
                 "roi_heads.mask_head.point_head.predictor.weight"]:
        np.testing.assert_array_equal(params[name].asnumpy(), source[name].reshape(expected[name]))
    _, metadata = read_checkpoint(str(ckpt))
    assert metadata["num_classes"] == 80 and metadata["input_format"] == "BGR"
    assert metadata["stride_in_1x1"] is True and metadata["converted_from"] == pkl.name


def test_converted_checkpoint_loads_into_our_model(seed0, caplog):
    """The seed-0 conversion fills every parameter of build_pointrend; a backbone alone leaves the rest fresh."""
    params, metadata = read_checkpoint(str(seed0[1]))
    net = build_pointrend(load_config([]).merged(config_overrides_from_metadata(metadata)))
    report = load_into_network(net, params, strict=True)
    assert report.missing == [] and len(report.loaded) == 311
    np.testing.assert_array_equal(net.parameters_dict()["roi_heads.mask_head.point_head.fc1.weight"].asnumpy(),
                                  params["roi_heads.mask_head.point_head.fc1.weight"])
    backbone = {k: v for k, v in params.items() if k.startswith("backbone.bottom_up.")}
    with caplog.at_level(logging.INFO):
        report = load_into_network(net, backbone, strict=False)
    assert len(report.loaded) == 265 and len(report.missing) == 311 - 265
    assert "46 tensors are not in the checkpoint and start fresh" in caplog.text
    assert "roi_heads.mask_head.coarse_head (8), roi_heads.mask_head.point_head (8)" in caplog.text


def test_pre_nov_2020_pointrend_pth_is_renamed_and_squeezed(tmp_path, capsys):
    """A torch .pth holding {"model": state dict, ...} with the old coarse/point head names."""
    out = run_cli(capsys, "detectron2", FIXTURES / "detectron2_pointrend_v1_tiny.pth", tmp_path / "v1.ckpt")
    assert "16 tensors renamed from PointRend's pre-Nov-2020 names" in out
    params, metadata = read_checkpoint(str(tmp_path / "v1.ckpt"))
    source = np.load(FIXTURES / "detectron2_pointrend_v1_tiny.npz")
    np.testing.assert_array_equal(params["roi_heads.mask_head.coarse_head.fc2.weight"],
                                  source["roi_heads.mask_coarse_head.coarse_mask_fc2.weight"])
    np.testing.assert_array_equal(params["roi_heads.mask_head.coarse_head.prediction.bias"],
                                  source["roi_heads.mask_coarse_head.prediction.bias"])
    np.testing.assert_array_equal(params["roi_heads.mask_head.point_head.fc3.weight"],
                                  source["roi_heads.mask_point_head.fc3.weight"][:, :, 0])
    np.testing.assert_array_equal(params["backbone.fpn_output4.weight"], source["backbone.fpn_output4.weight"])
    assert not any("mask_coarse_head" in n or "mask_point_head" in n for n in params)
    assert metadata["num_classes"] == SHRINK[81] - 1


def test_categories_are_recorded_when_they_fit_the_classes(tmp_path, capsys):
    source, output = FIXTURES / "detectron2_pointrend_v1_tiny.pth", tmp_path / "named.ckpt"
    categories = tmp_path / "categories.json"
    categories.write_text(json.dumps({"categories": [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}]}))
    convert_checkpoint.main(["--source", "detectron2", "--input", str(source), "--output", str(output),
                             "--categories", str(categories)])
    assert read_checkpoint(str(output))[1]["categories"] == [[3, "cat"], [7, "dog"]]  # class order: sorted by id
    categories.write_text(json.dumps([{"id": i, "name": f"c{i}"} for i in range(3)]))
    with pytest.raises(SystemExit) as error:
        convert_checkpoint.main(["--source", "detectron2", "--input", str(source), "--output",
                                 str(tmp_path / "other.ckpt"), "--categories", str(categories)])
    assert str(error.value) == (f"convert_checkpoint.py: error: checkpoint {source} predicts 2 classes, {categories} "
                                "has 3 categories")
    assert not (tmp_path / "other.ckpt").exists()


def test_pre_nov_2020_names_cover_the_whole_model(tmp_path, capsys, d2_shapes):
    run_cli(capsys, "detectron2", FIXTURES / "detectron2_pointrend_v1_tiny.pth", tmp_path / "v1.ckpt")
    params, _ = read_checkpoint(str(tmp_path / "v1.ckpt"))
    assert shapes_of(params) == ours(d2_shapes)


def test_plain_mask_rcnn_keeps_detector_drops_mask_head(tmp_path, capsys, d2_shapes):
    detector = {k: s for k, s in d2_shapes.items() if not k.startswith(POINTREND_HEADS)}
    mask_head = {f"roi_heads.mask_head.mask_fcn{i}.{leaf}": (4, 4, 3, 3) if leaf == "weight" else (4,)
                 for i in range(1, 5) for leaf in ("weight", "bias")}
    mask_head.update({"roi_heads.mask_head.deconv.weight": (4, 4, 2, 2), "roi_heads.mask_head.deconv.bias": (4,),
                      "roi_heads.mask_head.predictor.weight": (2, 4, 1, 1), "roi_heads.mask_head.predictor.bias": (2,)})
    state = random_state({**detector, **mask_head})
    state["pixel_mean"] = np.array([100.0, 110.0, 120.0], np.float32).reshape(3, 1, 1)
    state["pixel_std"] = np.array([1.0, 2.0, 3.0], np.float32).reshape(3, 1, 1)
    state["proposal_generator.anchor_generator.cell_anchors.0"] = np.zeros((3, 4), np.float32)
    path = write_pickle(tmp_path / "mask_rcnn.pkl", {"model": state, "__author__": "Detectron2 Model Zoo"})
    out = run_cli(capsys, "detectron2", path, tmp_path / "mask_rcnn.ckpt")
    assert "dropped 12 (standard Mask R-CNN mask head (PointRend replaces it))" in out
    assert "PointRend heads absent" in out and "freshly initialised" in out
    assert "anchor buffers" in out
    params, metadata = read_checkpoint(str(tmp_path / "mask_rcnn.ckpt"))
    assert shapes_of(params) == detector
    np.testing.assert_array_equal(params["roi_heads.box_head.fc1.weight"], state["roi_heads.box_head.fc1.weight"])
    assert metadata["pixel_mean"] == [100.0, 110.0, 120.0] and metadata["pixel_std"] == [1.0, 2.0, 3.0]


def _caffe2_name(name):
    """Our backbone name -> detectron2's MSRA R-50.pkl name (None for running stats, absent there)."""
    parts = name[len("backbone.bottom_up."):].split(".")
    module_leaf = ".".join(parts[2:] if parts[0] == "stem" else parts[3:])
    leaf = {"weight": "w", "norm.weight": "bn_s", "norm.bias": "bn_b"}.get(module_leaf)
    if leaf is None:
        return None
    if parts[0] == "stem":
        return "conv1_w" if leaf == "w" else f"res_conv1_{leaf}"
    branch = {"shortcut": "1", "conv1": "2a", "conv2": "2b", "conv3": "2c"}[parts[2]]
    return f"{parts[0]}_{parts[1]}_branch{branch}_{leaf}"


def test_caffe2_imagenet_r50_names(tmp_path, capsys, d2_shapes):
    backbone = {k: s for k, s in d2_shapes.items() if k.startswith("backbone.bottom_up.")}
    ours_state = random_state(backbone)
    blobs = {_caffe2_name(k): v for k, v in ours_state.items() if _caffe2_name(k)}
    blobs.update({"fc1000_w": np.ones((10, 7), np.float32), "fc1000_b": np.ones(10, np.float32),
                  "conv1_w_momentum": np.ones((2, 3, 7, 7), np.float32)})
    path = write_pickle(tmp_path / "R-50.pkl", blobs, protocol=2)
    out = run_cli(capsys, "detectron2", path, tmp_path / "r50.ckpt")
    assert "dropped 2 (ImageNet classifier)" in out and "dropped 1 (caffe2 optimizer momentum)" in out
    params, metadata = read_checkpoint(str(tmp_path / "r50.ckpt"))
    assert shapes_of(params) == backbone
    for name, value in params.items():
        if name.endswith("running_mean"):
            assert not value.any()
        elif name.endswith("running_var"):
            np.testing.assert_allclose(value, 1 - 1e-5)
        else:
            np.testing.assert_array_equal(value, ours_state[name])
    assert metadata["input_format"] == "BGR" and metadata["stride_in_1x1"] is True
    assert "num_classes" not in metadata


def test_detectron2_backbone_file_from_torchvision(d2_shapes):
    """detectron2's convert-torchvision-to-d2.py output: `stem.*`/`res*` names, torchvision conventions."""
    backbone = {k: s for k, s in d2_shapes.items() if k.startswith("backbone.bottom_up.")}
    state = {k[len("backbone.bottom_up."):]: v for k, v in random_state(backbone).items()}
    state.update({"stem.fc.weight": np.ones((10, 7), np.float32), "stem.fc.bias": np.ones(10, np.float32),
                  "res2.0.conv1.norm.num_batches_tracked": np.array(3)})
    converted = convert_detectron2({"model": state, "__author__": "torchvision", "matching_heuristics": True}, "tv")
    assert shapes_of(converted.params) == backbone
    assert converted.dropped["ImageNet classifier"] == ["stem.fc.weight", "stem.fc.bias"]
    assert {k: converted.metadata[k] for k in IMAGENET_RGB} == IMAGENET_RGB


# ---- errors: unexpected, mis-shaped, missing ----

@pytest.fixture()
def v1_state():
    return dict(np.load(FIXTURES / "detectron2_pointrend_v1_tiny.npz"))


def test_unexpected_tensor_is_an_error_and_nothing_is_written(tmp_path, capsys, v1_state):
    v1_state["roi_heads.keypoint_head.conv_fcn1.weight"] = np.zeros((2, 4, 3, 3), np.float32)
    path = write_pickle(tmp_path / "x.pkl", {"model": v1_state})
    with pytest.raises(SystemExit) as error:
        run_cli(capsys, "detectron2", path, tmp_path / "x.ckpt")
    assert "roi_heads.keypoint_head.conv_fcn1.weight" in str(error.value) and "nothing was written" in str(error.value)
    assert not (tmp_path / "x.ckpt").exists()


@pytest.mark.parametrize("name, shape, message", [
    ("backbone.fpn_lateral3.weight", (4, 5), "backbone.fpn_lateral3.weight: shape (4, 5), expected a non-empty 4-D"),
    ("backbone.bottom_up.res3.1.conv2.norm.bias", (5,), "has 3 output channels"),
    ("roi_heads.box_predictor.bbox_pred.weight", (12, 6), "expected 4 x 2 classes"),
    ("roi_heads.box_predictor.cls_score.weight", (1, 6), "1 output(s), expected the classes plus background"),
    ("roi_heads.mask_point_head.predictor.weight", (2, 9, 3), "expected a Conv1d weight (out, in, 1)"),
])
def test_misshaped_tensor_is_an_error(v1_state, name, shape, message):
    v1_state[name] = np.zeros(shape, np.float32)
    with pytest.raises(CheckpointError) as error:
        convert_detectron2({"model": v1_state}, "x.pkl")
    assert message in str(error.value)


@pytest.mark.parametrize("removed, listed", [
    (["backbone.bottom_up.res3.1.conv2.norm.running_var"], "backbone.bottom_up.res3.1.conv2.norm.running_var"),
    (["roi_heads.mask_point_head.fc2.bias"], "roi_heads.mask_head.point_head.fc2.bias"),
    ([f"backbone.fpn_output3.{leaf}" for leaf in ("weight", "bias")], "backbone.fpn_output3.*"),
    ([f"roi_heads.box_head.fc1.{leaf}" for leaf in ("weight", "bias")], "roi_heads.box_head.fc1.*"),
])
def test_missing_tensor_is_an_error(v1_state, removed, listed):
    for name in removed:
        del v1_state[name]
    with pytest.raises(CheckpointError, match="incomplete") as error:
        convert_detectron2({"model": v1_state}, "x.pkl")
    assert listed in str(error.value).split()


def test_missing_resnet_block_is_an_error(v1_state):
    for name in [n for n in v1_state if n.startswith("backbone.bottom_up.res4.2.")]:
        del v1_state[name]
    with pytest.raises(CheckpointError) as error:
        convert_detectron2({"model": v1_state}, "x.pkl")
    assert "backbone.bottom_up.res4.2.conv1.*" in str(error.value)


# ---- MindSpore Model Zoo ----

@pytest.fixture(scope="module")
def zoo_shapes():
    if not PARITY.is_dir():
        pytest.skip(f"{PARITY} is absent")
    return read_tsv("mindspore_zoo_maskrcnn_r50_params.tsv")


def test_zoo_mask_rcnn_lands_in_the_right_places(tmp_path, capsys, zoo_shapes, d2_shapes):
    state = random_state(zoo_shapes, seed=1)
    extras = {"moments.backbone.conv1.weight": state["backbone.conv1.weight"],
              "learning_rate": np.array(0.02, np.float32), "global_step": np.array(7, np.int32)}
    path = str(tmp_path / "zoo.ckpt")
    ms.save_checkpoint([{"name": k, "data": ms.Tensor(v)} for k, v in {**state, **extras}.items()], path)
    out = run_cli(capsys, "mindspore_zoo", path, tmp_path / "converted.ckpt")
    assert "dropped 12 (zoo FCN mask head (PointRend replaces it))" in out
    assert "dropped 3 (optimizer and training-loop state)" in out
    assert "PointRend heads absent" in out and "compute difference" in out
    params, metadata = read_checkpoint(str(tmp_path / "converted.ckpt"))
    assert shapes_of(params) == {k: s for k, s in d2_shapes.items() if not k.startswith(POINTREND_HEADS)}

    fc = "rcnn_cls.fpn_cls."
    np.testing.assert_array_equal(params["roi_heads.box_head.fc1.weight"], state[fc + "shared_fc_0.weight"].T)
    np.testing.assert_array_equal(params["roi_heads.box_head.fc2.bias"], state[fc + "shared_fc_1.bias"])
    cls_w, cls_b = state[fc + "cls_scores.weight"].T, state[fc + "cls_scores.bias"]  # (81, in), background first
    np.testing.assert_array_equal(params["roi_heads.box_predictor.cls_score.weight"][-1], cls_w[0])
    np.testing.assert_array_equal(params["roi_heads.box_predictor.cls_score.weight"][:-1], cls_w[1:])
    np.testing.assert_array_equal(params["roi_heads.box_predictor.cls_score.bias"], np.r_[cls_b[1:], cls_b[:1]])
    np.testing.assert_array_equal(params["roi_heads.box_predictor.bbox_pred.weight"],
                                  state[fc + "reg_scores.weight"].T[4:])
    np.testing.assert_array_equal(params["roi_heads.box_predictor.bbox_pred.bias"], state[fc + "reg_scores.bias"][4:])
    pairs = {
        "backbone.fpn_lateral3.weight": "fpn_ncek.lateral_convs_list.1.weight",
        "backbone.fpn_output5.bias": "fpn_ncek.fpn_convs_list.3.bias",
        "proposal_generator.rpn_head.objectness_logits.weight": "rpn_with_loss.rpn_convs_list.0.rpn_cls.weight",
        "proposal_generator.rpn_head.anchor_deltas.bias": "rpn_with_loss.rpn_convs_list.0.rpn_reg.bias",
        "backbone.bottom_up.stem.conv1.norm.running_var": "backbone.bn1.moving_variance",
        "backbone.bottom_up.res3.0.shortcut.weight": "backbone.layer2.0.conv_down_sample.weight",
        "backbone.bottom_up.res3.0.shortcut.norm.bias": "backbone.layer2.0.bn_down_sample.beta",
        "backbone.bottom_up.res5.2.conv3.norm.weight": "backbone.layer4.2.bn3.gamma",
        "backbone.bottom_up.res4.5.conv2.weight": "backbone.layer3.5.conv2.weight",
    }
    for ours_name, zoo_name in pairs.items():
        np.testing.assert_array_equal(params[ours_name], state[zoo_name], err_msg=ours_name)
    assert {k: metadata[k] for k in IMAGENET_RGB} == IMAGENET_RGB
    assert metadata["num_classes"] == SHRINK[81] - 1 and metadata["source"] == "mindspore_zoo"


def test_zoo_imagenet_resnet50_gives_the_backbone(zoo_shapes, d2_shapes):
    state = {}
    for name, value in random_state(zoo_shapes, seed=2).items():
        if name.startswith("backbone."):
            name = name[len("backbone."):].replace("conv_down_sample", "down_sample_layer.0")
            state[name.replace("bn_down_sample", "down_sample_layer.1")] = value
    state["end_point.weight"], state["end_point.bias"] = np.ones((10, 7), np.float32), np.ones(10, np.float32)
    converted = convert_mindspore_zoo(state, "resnet50_imagenet.ckpt")
    assert shapes_of(converted.params) == {k: s for k, s in d2_shapes.items() if k.startswith("backbone.bottom_up.")}
    np.testing.assert_array_equal(converted.params["backbone.bottom_up.res2.0.shortcut.norm.running_mean"],
                                  state["layer1.0.down_sample_layer.1.moving_mean"])
    assert converted.dropped == {"ImageNet classifier": ["end_point.weight", "end_point.bias"]}
    assert converted.metadata["stride_in_1x1"] is False and "num_classes" not in converted.metadata


def test_zoo_per_level_rpn_copies_must_equal_the_shared_head(zoo_shapes):
    state = random_state(zoo_shapes, seed=3)
    first = "rpn_with_loss.rpn_convs_list.0.rpn_conv.weight"
    state["rpn_with_loss.rpn_convs_list.1.rpn_conv.weight"] = state[first].copy()
    converted = convert_mindspore_zoo(state, "zoo.ckpt")
    assert converted.dropped["copies of the shared RPN head"] == ["rpn_with_loss.rpn_convs_list.1.rpn_conv.weight"]
    state["rpn_with_loss.rpn_convs_list.1.rpn_conv.weight"] += 1
    with pytest.raises(CheckpointError, match="one RPN head shared by all levels"):
        convert_mindspore_zoo(state, "zoo.ckpt")


# ---- torchvision ----

def test_torchvision_resnet50_pth(tmp_path, capsys):
    out = run_cli(capsys, "torchvision", FIXTURES / "torchvision_resnet50_tiny.pth", tmp_path / "tv.ckpt")
    assert "dropped 53 (BatchNorm step counters)" in out and "dropped 2 (ImageNet classifier)" in out
    params, metadata = read_checkpoint(str(tmp_path / "tv.ckpt"))
    source = np.load(FIXTURES / "torchvision_resnet50_tiny.npz")
    assert len(params) == len(source) - 53 - 2
    pairs = {"backbone.bottom_up.stem.conv1.weight": "conv1.weight",
             "backbone.bottom_up.stem.conv1.norm.running_mean": "bn1.running_mean",
             "backbone.bottom_up.res2.0.shortcut.weight": "layer1.0.downsample.0.weight",
             "backbone.bottom_up.res3.3.conv3.norm.running_var": "layer2.3.bn3.running_var",
             "backbone.bottom_up.res5.0.shortcut.norm.weight": "layer4.0.downsample.1.weight",
             "backbone.bottom_up.res5.2.conv3.norm.bias": "layer4.2.bn3.bias"}
    for ours_name, tv_name in pairs.items():
        np.testing.assert_array_equal(params[ours_name], source[tv_name], err_msg=ours_name)
    assert {k: metadata[k] for k in IMAGENET_RGB} == IMAGENET_RGB and metadata["source"] == "torchvision"


def test_torchvision_names_cover_our_backbone(d2_shapes):
    converted = convert_torchvision(load_pickled_checkpoint(str(FIXTURES / "torchvision_resnet50_tiny.pth")), "tv")
    assert shapes_of(converted.params) == {k: s for k, s in d2_shapes.items() if k.startswith("backbone.bottom_up.")}


def test_torchvision_unknown_tensor_is_an_error():
    state = dict(np.load(FIXTURES / "torchvision_resnet50_tiny.npz"))
    state["layer5.0.conv1.weight"] = np.zeros((2, 2, 1, 1), np.float32)
    with pytest.raises(CheckpointError, match="layer5.0.conv1.weight"):
        convert_torchvision(state, "tv.pth")


# ---- our .ckpt: metadata, reading, loading into a network ----

class _Predictor(nn.Cell):
    def __init__(self, num_classes):
        super().__init__()
        self.cls_score = nn.Dense(4, num_classes + 1)
        self.bbox_pred = nn.Dense(4, 4 * num_classes)


class _RoIHeads(nn.Cell):
    def __init__(self, num_classes):
        super().__init__()
        self.box_predictor = _Predictor(num_classes)


class _Backbone(nn.Cell):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, has_bias=True)
        self.fpn_lateral2 = nn.Conv2d(4, 4, 1, has_bias=True)


class _TinyNet(nn.Cell):
    def __init__(self, num_classes=3):
        super().__init__()
        self.backbone = _Backbone()
        self.roi_heads = _RoIHeads(num_classes)


def _params_for(net, seed=0):
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(v.shape).astype(np.float32) for k, v in net.parameters_dict().items()}


def _values(net):
    return {k: v.asnumpy().copy() for k, v in net.parameters_dict().items()}


def test_metadata_round_trip_and_config_overrides(tmp_path):
    net = _TinyNet()
    metadata = {**IMAGENET_RGB, "num_classes": 3, "source": "torchvision", "iteration": 1234}
    path = str(tmp_path / "model.ckpt")
    save_checkpoint(path, net, metadata)
    params, read_back = read_checkpoint(path)
    assert read_back == metadata
    assert shapes_of(params) == {k: tuple(v.shape) for k, v in net.parameters_dict().items()}
    assert set(ms.load_checkpoint(path)) >= set(params)
    cfg = load_config([]).merged(config_overrides_from_metadata(read_back))
    assert (cfg.input.format, cfg.input.pixel_mean, cfg.input.pixel_std) == ("RGB", IMAGENET_RGB["pixel_mean"],
                                                                             IMAGENET_RGB["pixel_std"])
    assert cfg.model.backbone.stride_in_1x1 is False and cfg.model.num_classes == 3


def test_save_is_atomic_and_replaces(tmp_path):
    path = str(tmp_path / "model.ckpt")
    umask = os.umask(0o027)
    try:
        save_checkpoint(path, {"a.weight": np.zeros((2, 2), np.float32)}, {"iteration": 1})
    finally:
        os.umask(umask)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640  # the umask's, not MindSpore's read-only 0400
    save_checkpoint(path, {"a.weight": np.ones((2, 2), np.float32)}, {"iteration": 2})
    params, metadata = read_checkpoint(path)
    assert metadata == {"iteration": 2} and params["a.weight"].sum() == 4
    assert os.listdir(tmp_path) == ["model.ckpt"]
    with pytest.raises(CheckpointError, match="JSON"):
        save_checkpoint(path, {"a.weight": np.zeros(2, np.float32)}, {"bad": object()})
    assert read_checkpoint(path)[1] == {"iteration": 2} and os.listdir(tmp_path) == ["model.ckpt"]


def test_read_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(str(tmp_path / "missing.ckpt"))
    (tmp_path / "junk.ckpt").write_bytes(b"junk" * 20)
    with pytest.raises(CheckpointError, match="cannot read checkpoint .*junk.ckpt"):
        read_checkpoint(str(tmp_path / "junk.ckpt"))
    with pytest.raises(CheckpointError, match="must end in .ckpt"):
        read_checkpoint(str(tmp_path / "model.pth"))


def test_load_into_network_loads_everything_and_logs_it(caplog):
    net = _TinyNet()
    params = _params_for(net)
    with caplog.at_level(logging.DEBUG):
        report = load_into_network(net, params, strict=True, log=logging.getLogger("load"))
    assert report.missing == [] and sorted(report.loaded) == sorted(params)
    for name, value in _values(net).items():
        np.testing.assert_array_equal(value, params[name])
    assert "loaded 8 tensors from the checkpoint: backbone.stem (2), backbone.fpn_lateral2 (2), " \
           "roi_heads.box_predictor.cls_score (2), roi_heads.box_predictor.bbox_pred (2)" in caplog.text
    assert "loaded roi_heads.box_predictor.bbox_pred.weight (12, 4)" in caplog.text


def test_missing_tensors_start_fresh_unless_strict(caplog):
    net = _TinyNet()
    params = {k: v for k, v in _params_for(net).items() if not k.startswith("roi_heads.")}
    before = _values(net)
    with pytest.raises(CheckpointError, match="lacks 4 tensor") as error:
        load_into_network(net, params, strict=True)
    assert "roi_heads.box_predictor.cls_score.bias" in str(error.value)
    assert all(np.array_equal(before[k], v) for k, v in _values(net).items())
    with caplog.at_level(logging.INFO):
        report = load_into_network(net, params, strict=False, log=logging.getLogger("load"))
    assert "4 tensors are not in the checkpoint and start fresh: roi_heads.box_predictor.cls_score (2), " \
           "roi_heads.box_predictor.bbox_pred (2)" in caplog.text
    assert sorted(report.missing) == sorted(k for k in before if k.startswith("roi_heads."))
    np.testing.assert_array_equal(_values(net)["roi_heads.box_predictor.cls_score.weight"],
                                  before["roi_heads.box_predictor.cls_score.weight"])


def test_unexpected_and_misshaped_tensors_are_errors_and_nothing_loads():
    net = _TinyNet()
    before = _values(net)
    params = _params_for(net)
    params["backbone.fpn_output2.weight"] = np.zeros((4, 4, 3, 3), np.float32)
    params["backbone.stem.bias"] = np.zeros(5, np.float32)
    with pytest.raises(CheckpointError) as error:
        load_into_network(net, params, strict=False)
    assert "backbone.fpn_output2.weight" in str(error.value)
    assert "backbone.stem.bias: checkpoint (5,), network (4,)" in str(error.value)
    assert all(np.array_equal(before[k], v) for k, v in _values(net).items())


def test_other_number_of_classes_is_named():
    params = _params_for(_TinyNet(num_classes=3))
    with pytest.raises(CheckpointError, match="checkpoint has 3 classes, config has 5"):
        load_into_network(_TinyNet(num_classes=5), params, strict=True)
