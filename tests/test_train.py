"""The training job: its parts in process (solver, step, checkpoints, metrics, starting weights), and train.py
end to end on two real COCO images at a small canvas -- it learns, a killed job resumes to the same
parameters, two CPU workers match one process, a NaN stops the job before its update, and a bad
--pre_trained is an error before any training."""
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import mindspore as ms
import numpy as np
import pytest
from mindspore import nn, ops

from conftest import COCO_MINI, REPO_ROOT, TINY_MODEL, error_line, requires_shared, run_entry_point
from maskrcnn.layers.norm import FrozenBatchNorm2d
from maskrcnn_pointrend.checkpoints import CheckpointError, read_checkpoint, save_checkpoint
from maskrcnn_pointrend.config import load_config
from maskrcnn_pointrend.data.mindrecord_writer import convert_coco
from maskrcnn_pointrend.engine import (Checkpointer, NonFiniteLossError, TrainingMetrics, TrainStep, build_lr_schedule,
                                       build_optimizer, load_pretrained, parameter_groups, rank0_prepares,
                                       restore_parameters, step_randomness)
from maskrcnn_pointrend.engine.pretrained import CLASS_SPECIFIC_PREFIXES
from maskrcnn_pointrend.model import LOSS_NAMES, build_pointrend, load_model

# Two landscape images of coco_mini's train2017 (one canvas, so one batch can hold both).
TWO_IMAGES = (78499, 54718)
# The real model at a small canvas with fewer proposals and ROIs: a few seconds per CPU iteration.
SMALL = ["--input.train_canvases=[[320,448],[448,320]]", "--input.min_size_train=[320]", "--input.max_size_train=448",
         "--input.max_instances=20", "--model.rpn.pre_nms_topk_train=500", "--model.rpn.post_nms_topk_train=256",
         "--model.roi_heads.batch_size_per_image=128", "--solver.log_period=1"]
# Three iterations of the two images (in the LR warmup), a checkpoint after each, the last one kept; losses
# normalized per image, so that two workers on one image each compute what one process on both does.
SHORT_RUN = ["--solver.max_iter=3", "--solver.checkpoint_period=1", "--solver.keep_checkpoints=1",
             "--model.roi_heads.loss_normalization=image"]
ENV = {**os.environ, "GLOG_v": "3"}
TIMEOUT = 600


# ---- the parts, in process ----

def test_lr_schedule_scales_with_the_batch_warms_up_and_steps():
    cfg = load_config(["--solver.warmup_iters=100", "--solver.warmup_factor=0.001"])
    schedule = build_lr_schedule(cfg.solver, batch_size=8)  # half of solver.ims_per_batch = 16
    assert schedule.base_lr == pytest.approx(0.01)
    assert schedule(0) == pytest.approx(0.01 * 0.001)
    assert schedule(50) == pytest.approx(0.01 * (0.001 * 0.5 + 0.5))
    assert schedule(100) == pytest.approx(0.01) and schedule(59999) == pytest.approx(0.01)
    assert schedule(60000) == pytest.approx(0.001)  # as detectron2: the step's own iteration is decayed
    assert schedule(80000) == pytest.approx(0.0001)
    three_x_config = load_config(["--config_path", str(REPO_ROOT / "configs" / "pointrend_rcnn_R_50_FPN_3x.yaml")])
    three_x = build_lr_schedule(three_x_config.solver, 16)
    assert three_x(209999) == pytest.approx(0.02) and three_x(250000) == pytest.approx(0.0002)


class TinyNet(nn.Cell):
    """conv -> BN -> FrozenBN -> dense, with `losses(x, factor)` -> (mean square, factor * mean abs)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, has_bias=True, weight_init="ones", bias_init="zeros")
        self.bn = nn.BatchNorm2d(3)
        self.frozen = FrozenBatchNorm2d(3)
        self.fc = nn.Dense(3, 1, weight_init="ones", bias_init="zeros")

    def losses(self, x, factor):
        out = self.fc(self.frozen(self.bn(self.conv(x))).mean((2, 3)))
        return ((out ** 2).mean(), (out.abs() * factor).mean()), ops.ones((1,), ms.bool_)


def tiny_gradients(net, inputs):
    total = ms.grad(lambda x, factor: ops.stack(net.losses(x, factor)[0]).sum(), None, net.trainable_params())
    return {p.name: g.asnumpy() for p, g in zip(net.trainable_params(), total(*inputs))}


def test_sgd_follows_pytorch_with_no_weight_decay_on_norm_parameters():
    net = TinyNet()
    net.set_train(False)  # BN on its moving statistics
    groups = parameter_groups(net, 0.1, 0.0)
    assert {p.name for p in groups[0]["params"]} == {"conv.weight", "conv.bias", "fc.weight", "fc.bias"}
    assert {p.name for p in groups[1]["params"]} == {"bn.gamma", "bn.beta"}
    assert (groups[0]["weight_decay"], groups[1]["weight_decay"]) == (0.1, 0.0)
    cfg = load_config(["--solver.weight_decay=0.1", "--solver.weight_decay_norm=0.0", "--solver.momentum=0.5"])
    step = TrainStep(net, build_optimizer(net, cfg.solver), ("square", "abs"))
    inputs = (ms.Tensor(np.linspace(-1, 1, 32, dtype=np.float32).reshape(1, 2, 4, 4)), ms.Tensor(1.0))
    velocity = {}
    for iteration, lr in enumerate((0.01, 0.02)):
        before = {p.name: p.asnumpy().copy() for p in net.trainable_params()}
        grads = tiny_gradients(net, inputs)
        losses, applied, _ = step(iteration, inputs, lr)
        assert applied and losses.shape == (2,)
        for name, value in before.items():
            decay = 0.0 if name.startswith("bn.") else 0.1
            velocity[name] = 0.5 * velocity.get(name, 0.0) + grads[name] + decay * value  # torch.optim.SGD
            np.testing.assert_allclose(net.parameters_dict()[name].asnumpy(), value - lr * velocity[name],
                                       rtol=1e-5, atol=1e-7)
    assert set(step.state()) == {f"moments.{name}" for name in velocity}


def test_a_non_finite_loss_stops_before_the_update():
    net = TinyNet()
    step = TrainStep(net, build_optimizer(net, load_config([]).solver), ("square", "abs"))
    before = {p.name: p.asnumpy().copy() for p in net.get_parameters()}
    inputs = (ms.Tensor(np.ones((1, 2, 4, 4), np.float32)), ms.Tensor(float("inf")))
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss at iteration 7: abs = inf .*not applied"):
        step(7, inputs, 0.01)
    for name, value in before.items():
        np.testing.assert_array_equal(net.parameters_dict()[name].asnumpy(), value)
    assert not any(m.asnumpy().any() for m in step.state().values())


def test_mixed_precision_skips_overflowing_steps_and_lowers_the_loss_scale():
    net = TinyNet()
    step = TrainStep(net, build_optimizer(net, load_config([]).solver), ("square", "abs"), mixed_precision=True)
    inputs = (ms.Tensor(np.full((1, 2, 4, 4), 0.5, np.float32)), ms.Tensor(1.0))
    weights = net.conv.weight.asnumpy().copy()
    scales = [float(step.loss_scaler.scale_value.asnumpy())]
    for iteration in range(20):
        _, applied, _ = step(iteration, inputs, 0.01)
        if applied:
            break
        np.testing.assert_array_equal(net.conv.weight.asnumpy(), weights)  # a skipped step changes nothing
        scales.append(float(step.loss_scaler.scale_value.asnumpy()))
    assert applied and len(scales) > 1 and scales == [scales[0] / 2 ** k for k in range(len(scales))]
    assert not np.array_equal(net.conv.weight.asnumpy(), weights)
    assert {"loss_scaler.scale_value", "loss_scaler.counter"} <= set(step.state())


def flat(randomness):
    rpn_keys, roi_keys, mask_random = randomness
    return [rpn_keys, roi_keys, *mask_random]


def test_step_randomness_does_not_depend_on_how_the_batch_is_split():
    cfg = load_config(SMALL)
    net = build_pointrend(cfg)
    canvas, slots = (320, 448), cfg.input.max_instances
    whole = flat(step_randomness(net, 0, 5, 0, 2, canvas, slots))
    first, second = (flat(step_randomness(net, 0, 5, k, 1, canvas, slots)) for k in (0, 1))
    # anchors of 320 x 448 at strides 4..64, 256 proposals + 20 ground-truth slots, 2 x 32 mask ROIs (25% of 128)
    anchors = 3 * sum(-(-320 // s) * -(-448 // s) for s in (4, 8, 16, 32, 64))
    assert [a.shape for a in whole] == [(2, anchors), (2, 276), (64, 588, 2), (64, 49, 2)]
    for a, b, c in zip(whole, first, second):
        np.testing.assert_array_equal(a, np.concatenate([b, c]))
    assert not np.array_equal(whole[0], step_randomness(net, 0, 6, 0, 2, canvas, slots)[0])
    assert not np.array_equal(whole[0], step_randomness(net, 1, 5, 0, 2, canvas, slots)[0])


def test_checkpointer_keeps_the_last_k_and_points_at_complete_checkpoints(tmp_path):
    net = TinyNet()
    state = {"moments.fc.weight": ms.Parameter(ms.Tensor(np.full((1, 3), 2.0, np.float32)), name="m")}
    checkpointer = Checkpointer(str(tmp_path), keep=2)
    assert checkpointer.latest() is None
    for iteration in (1, 2, 3):
        net.fc.bias.set_data(ms.Tensor([float(iteration)], ms.float32))
        checkpointer.save(iteration, net, state, {"categories": [[1, "person"]]}, {"seed": 0})
    (tmp_path / ".model_0000004.tmp99.ckpt").write_bytes(b"a write cut short")
    names = sorted(os.listdir(tmp_path))
    assert "model_0000001.ckpt" not in names and "solver_0000001.ckpt" not in names
    assert {"model_0000002.ckpt", "solver_0000002.ckpt", "model_0000003.ckpt", "solver_0000003.ckpt"} <= set(names)
    saved = checkpointer.latest()
    assert saved.iteration == 3 and saved.model_path == str(tmp_path / "model_0000003.ckpt")
    assert saved.model["fc.bias"][0] == 3.0 and saved.model_metadata["categories"] == [[1, "person"]]
    assert saved.solver_metadata == {"seed": 0, "iteration": 3}
    np.testing.assert_array_equal(saved.solver["moments.fc.weight"], np.full((1, 3), 2.0))

    checkpointer.save(4, net, state, {}, {}, final=True)
    assert checkpointer.latest().iteration == 4 and (tmp_path / "model_final.ckpt").is_file()
    assert (tmp_path / "model_0000003.ckpt").is_file()
    target = {"m": ms.Parameter(ms.Tensor(np.zeros((1, 3), np.float32)), name="m")}
    with pytest.raises(CheckpointError, match="lacks 1 tensor"):
        restore_parameters(target, {}, "x.ckpt")
    with pytest.raises(CheckpointError, match=r"m: checkpoint \(3,\), expected \(1, 3\)"):
        restore_parameters(target, {"m": np.zeros(3, np.float32)}, "x.ckpt")
    os.remove(tmp_path / "solver_final.ckpt")
    with pytest.raises(CheckpointError, match="solver_final.ckpt does not exist"):
        checkpointer.latest()


def test_metrics_are_a_json_line_per_iteration_and_a_log_line_per_period(tmp_path, caplog):
    path = tmp_path / "metrics.json"
    path.write_text("".join(json.dumps({"iteration": i, "stale": i >= 3}) + "\n" for i in range(5)))
    metrics = TrainingMetrics(str(path), ("a", "b"), 3, 10, period=4, log=logging.getLogger("metrics_test"))
    with caplog.at_level(logging.INFO, logger="metrics_test"):
        for iteration in range(3, 10):  # resumed at 3: the lines 3 and 4 of the first attempt are replaced
            metrics.record(iteration, np.array([1.0, 0.5]), 0.01, iteration_time=2.0, data_time=0.1,
                           nms_converged=iteration != 6)
    metrics.close()
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["iteration"] for r in rows] == list(range(10)) and not any(r.get("stale") for r in rows)
    assert rows[4] == {"iteration": 4, "a": 1.0, "b": 0.5, "total_loss": 1.5, "lr": 0.01, "time": 2.0,
                       "data_time": 0.1, "eta_seconds": 10.0, "rpn_nms_converged": True}
    assert [r["rpn_nms_converged"] for r in rows[3:]] == [True, True, True, False, True, True, True]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith("iteration 6: the RPN's NMS did not reach its fixed point")
    progress = [m for m in caplog.messages if m.startswith("iter ")]
    assert [int(re.search(r"iter (\d+)/10", m).group(1)) for m in progress] == [4, 8, 10]
    assert "eta 0:00:00" in progress[-1] and "b 0.5000" in progress[-1]


def test_other_ranks_wait_for_what_rank_0_prepares(tmp_path):
    marker = tmp_path / "done"
    rank0_prepares(0, marker.exists, lambda: marker.write_text("x"), "write")
    assert marker.exists()
    late = tmp_path / "late"
    writer = threading.Timer(0.3, late.write_text, ("x",))
    writer.start()
    start = time.monotonic()
    rank0_prepares(1, late.exists, lambda: pytest.fail("only rank 0 prepares"), "write", poll_seconds=0.05)
    assert late.exists() and time.monotonic() - start >= 0.25


def test_pretrained_weights_for_other_classes_leave_out_only_class_specific_tensors(seed0_checkpoint, caplog):
    net = build_pointrend(load_config(["--model.num_classes=3"]))
    params, _ = read_checkpoint(seed0_checkpoint)
    log = logging.getLogger("pretrained_test")
    with caplog.at_level(logging.INFO, logger="pretrained_test"):
        report = load_pretrained(net, params, "seed0.ckpt", 3, log)
    class_specific = sorted(n for n in params if n.startswith(CLASS_SPECIFIC_PREFIXES))
    assert report.class_specific == class_specific and sorted(report.fresh) == class_specific
    assert len(report.loaded) == len(params) - len(class_specific)
    assert "seed0.ckpt predicts 80 classes, the dataset has 3" in caplog.text
    np.testing.assert_array_equal(net.parameters_dict()["backbone.fpn_output2.weight"].asnumpy(),
                                  params["backbone.fpn_output2.weight"])
    with pytest.raises(CheckpointError, match=r"(?s)--pre_trained seed0.ckpt: .*backbone.extra.weight"):
        load_pretrained(net, {**params, "backbone.extra.weight": np.zeros(3, np.float32)}, "seed0.ckpt", 3, log)


# ---- train.py end to end on two images of coco_mini ----

@pytest.fixture(scope="module")
def two_images(tmp_path_factory):
    """A COCO annotation file of TWO_IMAGES of coco_mini's train2017."""
    coco = json.loads((COCO_MINI / "annotations" / "instances_train2017.json").read_text())
    coco["images"] = [im for im in coco["images"] if im["id"] in TWO_IMAGES]
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] in TWO_IMAGES]
    path = tmp_path_factory.mktemp("two_images") / "instances_two.json"
    path.write_text(json.dumps(coco))
    return path


@pytest.fixture(scope="module")
def mindrecord(two_images, tmp_path_factory):
    output = tmp_path_factory.mktemp("two_images_mindrecord") / "train"
    convert_coco(two_images, COCO_MINI / "train2017", output)
    return output


def run_train(output_dir, mindrecord_dir, pre_trained, *extra):
    return subprocess.run([sys.executable, str(REPO_ROOT / "train.py"), f"--mindrecord_dir={mindrecord_dir}",
                           f"--pre_trained={pre_trained}", f"--output_dir={output_dir}", *SMALL, *extra],
                          cwd=REPO_ROOT, env=ENV, capture_output=True, text=True, timeout=TIMEOUT)


def final_params(output_dir):
    return read_checkpoint(output_dir / "model_final.ckpt")[0]


def digest_of(log_file):
    return re.search(r"parameters sha256 (\w+) after", log_file.read_text()).group(1)


@pytest.fixture(scope="module")
def reference(mindrecord, seed0_checkpoint, tmp_path_factory):
    """An uninterrupted SHORT_RUN of one process on both images per iteration."""
    output = tmp_path_factory.mktemp("reference")
    result = run_train(output, mindrecord, seed0_checkpoint, *SHORT_RUN, "--solver.images_per_device=2")
    assert result.returncode == 0, result.stderr[-3000:]
    return output


@requires_shared
def test_a_job_logs_every_iteration_and_writes_evaluable_checkpoints(reference):
    rows = [json.loads(line) for line in (reference / "metrics.json").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [0, 1, 2]
    schedule = build_lr_schedule(load_config([]).solver, 2)
    for row in rows:
        assert set(row) == {*LOSS_NAMES, "iteration", "total_loss", "lr", "time", "data_time", "eta_seconds",
                            "rpn_nms_converged"}
        assert row["total_loss"] == pytest.approx(sum(row[name] for name in LOSS_NAMES), rel=1e-6)
        assert row["lr"] == pytest.approx(schedule(row["iteration"]))
    assert "iter 3/3  total_loss" in (reference / "train_rank0.log").read_text()
    assert sorted(p.name for p in reference.glob("*.ckpt")) == [
        "model_0000002.ckpt", "model_final.ckpt", "solver_0000002.ckpt", "solver_final.ckpt"]
    assert json.loads((reference / "last_checkpoint").read_text())["model"] == "model_final.ckpt"
    loaded = json.loads((reference / "pretrained_load.json").read_text())
    assert len(loaded["loaded"]) == 311 and loaded["fresh"] == [] and loaded["class_specific_not_loaded"] == []
    net, categories = load_model(load_config(SMALL), reference / "model_final.ckpt")  # as eval.py loads it
    assert len(categories) == 80 and categories[0] == (1, "person")
    assert read_checkpoint(reference / "model_final.ckpt")[1]["iteration"] == 3


@requires_shared
def test_a_killed_job_resumes_to_the_parameters_of_an_uninterrupted_one(reference, mindrecord, seed0_checkpoint,
                                                                        tmp_path):
    args = [sys.executable, str(REPO_ROOT / "train.py"), f"--mindrecord_dir={mindrecord}",
            f"--pre_trained={seed0_checkpoint}", f"--output_dir={tmp_path}", *SMALL, *SHORT_RUN,
            "--solver.images_per_device=2"]
    job = subprocess.Popen(args, cwd=REPO_ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pointer = tmp_path / "last_checkpoint"
    deadline = time.monotonic() + TIMEOUT
    while not pointer.exists() and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    job.send_signal(signal.SIGKILL)
    assert job.wait() == -signal.SIGKILL  # killed during training, after its first checkpoint
    killed_at = Checkpointer(str(tmp_path), 1).latest().iteration
    assert 1 <= killed_at < 3

    result = run_train(tmp_path, mindrecord, seed0_checkpoint, *SHORT_RUN, "--solver.images_per_device=2",
                       "--resume")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"at iteration {killed_at}" in (tmp_path / "train_rank0.log").read_text()
    rows = [json.loads(line) for line in (tmp_path / "metrics.json").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [0, 1, 2]
    expected = final_params(reference)
    resumed = final_params(tmp_path)
    for name, value in expected.items():
        np.testing.assert_array_equal(resumed[name], value, err_msg=name)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@requires_shared
def test_two_cpu_workers_train_like_one_process_on_their_combined_batch(reference, two_images, seed0_checkpoint,
                                                                        tmp_path):
    output, mindrecord_dir = tmp_path / "out", tmp_path / "converted_by_rank_0"
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "run_distribute_train_cpu.sh"), str(COCO_MINI), str(mindrecord_dir),
         str(seed0_checkpoint), f"--ann_file={two_images}", f"--output_dir={output}", f"--master_port={free_port()}",
         *SMALL, *SHORT_RUN, "--solver.images_per_device=1"],
        cwd=REPO_ROOT, env=ENV, capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert digest_of(output / "train_rank0.log") == digest_of(output / "train_rank1.log")
    assert (mindrecord_dir / "_COMPLETE").is_file() and "converting" not in (output / "train_rank1.log").read_text()
    first = [json.loads((d / "metrics.json").read_text().splitlines()[0]) for d in (output, reference)]
    for name in LOSS_NAMES:  # the same images and sampling in the first iteration
        assert first[0][name] == pytest.approx(first[1][name], rel=1e-5)
    expected, start = final_params(reference), read_checkpoint(seed0_checkpoint)[0]
    distributed = final_params(output)
    assert max(np.abs(expected[n] - start[n]).max() for n in expected) > 1e-4  # training moved the weights
    assert max(np.abs(distributed[n] - expected[n]).max() for n in expected) <= 1e-5


@requires_shared
def test_the_model_learns_two_images(mindrecord, seed0_checkpoint, tmp_path):
    # one image per iteration, alternating; the seed-0 weights are far from trained, so a small LR is stable
    result = run_train(tmp_path, mindrecord, seed0_checkpoint, "--solver.max_iter=20",
                       "--solver.checkpoint_period=100", "--solver.images_per_device=1", "--solver.ims_per_batch=1",
                       "--solver.base_lr=0.001", "--solver.warmup_iters=3", "--input.random_flip=none")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "metrics.json").read_text().splitlines()]
    assert len(rows) == 20 and all(np.isfinite(r[name]) for r in rows for name in LOSS_NAMES)
    total = [r["total_loss"] for r in rows]
    # the level the loss reached (a median: a single-image step may spike) against the first two iterations
    assert np.median(total[-6:]) <= 0.6 * np.mean(total[:2]), total


@requires_shared
def test_a_non_finite_loss_stops_the_job_and_keeps_the_last_good_checkpoint(mindrecord, seed0_checkpoint, tmp_path):
    result = run_train(tmp_path, mindrecord, seed0_checkpoint, "--solver.base_lr=1000000.0",
                       "--solver.ims_per_batch=1", "--solver.images_per_device=1", "--solver.warmup_iters=0",
                       "--solver.checkpoint_period=1", "--solver.max_iter=5")
    assert result.returncode == 1
    failure = re.search(r"non-finite loss at iteration (\d+): (\w+) = (nan|inf)", result.stderr)
    assert failure and failure.group(2) in LOSS_NAMES, result.stderr[-3000:]
    failed_at = int(failure.group(1))
    saved = Checkpointer(str(tmp_path), 1).latest()
    assert saved.iteration == failed_at >= 1 and all(np.isfinite(v).all() for v in saved.model.values())
    assert not (tmp_path / f"model_{failed_at + 1:07d}.ckpt").exists() and not (tmp_path / "model_final.ckpt").exists()
    assert len((tmp_path / "metrics.json").read_text().splitlines()) == failed_at


@requires_shared
def test_a_missing_or_mismatched_pre_trained_checkpoint_is_an_error_before_training(mindrecord, tmp_path):
    missing = tmp_path / "missing.ckpt"
    result = run_train(tmp_path / "a", mindrecord, missing, *SHORT_RUN)
    assert result.returncode == 1 and f"checkpoint {missing} does not exist" in result.stderr
    other = tmp_path / "other_architecture.ckpt"
    save_checkpoint(other, {"backbone.bottom_up.res3.0.conv1.weight": np.zeros((64, 256, 1, 1), np.float32),
                            "backbone.bottom_up.res6.0.conv1.weight": np.zeros((8, 8, 1, 1), np.float32)}, {})
    result = run_train(tmp_path / "b", mindrecord, other, *SHORT_RUN)
    assert result.returncode == 1
    assert f"--pre_trained {other}" in result.stderr and "backbone.bottom_up.res6.0.conv1.weight" in result.stderr
    assert "res3.0.conv1.weight: checkpoint (64, 256, 1, 1), network (128, 256, 1, 1)" in result.stderr
    for output in (tmp_path / "a", tmp_path / "b"):
        assert not (output / "metrics.json").exists() and not list(output.glob("*.ckpt"))


# ---- train.py on the generated shapes: bad setups stop before training, SIGTERM saves ----

@pytest.fixture(scope="module")
def shapes_mindrecord(shapes_dataset, tmp_path_factory):
    output = tmp_path_factory.mktemp("shapes_mindrecord") / "train"
    convert_coco(shapes_dataset / "annotations" / "instances_train.json", shapes_dataset / "train", output)
    return output


def tiny_train_args(mindrecord_dir, output_dir, *extra):
    return [*TINY_MODEL, f"--mindrecord_dir={mindrecord_dir}", f"--output_dir={output_dir}",
            "--solver.images_per_device=1", "--solver.ims_per_batch=1", "--solver.warmup_iters=1", *extra]


def test_an_output_dir_that_cannot_be_written_stops_the_job_at_once(shapes_mindrecord, tmp_path):
    # the same check (output_files.prepare_output_dir) as for a folder without write permission
    (tmp_path / "taken").write_text("")
    proc = run_entry_point("train.py", *tiny_train_args(shapes_mindrecord, tmp_path / "taken"))
    assert f"ERROR train: --output_dir {tmp_path / 'taken'} exists and is not a folder" in error_line(proc, "")


def test_resume_without_a_checkpoint_is_an_error(shapes_mindrecord, tmp_path):
    proc = run_entry_point("train.py", *tiny_train_args(shapes_mindrecord, tmp_path / "typo"), "--resume")
    assert (f"--resume: {tmp_path / 'typo'} holds no checkpoint to resume (no last_checkpoint file): check "
            "--output_dir, or leave out --resume to start a new run") in error_line(proc, "", alone=False)
    assert not (tmp_path / "typo" / "metrics.json").exists()


def test_an_incomplete_conversion_names_what_to_do(shapes_dataset, tmp_path):
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "shard_000.mindrecord").write_bytes(b"cut short")
    proc = run_entry_point("train.py", *tiny_train_args(partial, tmp_path / "out"), f"--coco_root={shapes_dataset}",
                           "--train_split=train")
    assert (f"{partial} exists and is not a complete conversion: remove it, or convert into it with convert_coco.py "
            "--overwrite") in error_line(proc, "", alone=False)
    assert "pass --overwrite" not in proc.stderr  # train.py has no such option


def test_sigterm_saves_a_checkpoint_of_the_last_iteration_and_stops(shapes_mindrecord, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "GLOG_v"}
    job = subprocess.Popen([sys.executable, str(REPO_ROOT / "train.py"),
                            *tiny_train_args(shapes_mindrecord, tmp_path, "--solver.max_iter=100",
                                             "--solver.checkpoint_period=1000")],
                           cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "metrics.json"
    deadline = time.monotonic() + TIMEOUT
    while not (metrics.exists() and metrics.read_text()) and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    job.send_signal(signal.SIGTERM)
    stderr = job.communicate(timeout=TIMEOUT)[1]
    assert job.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    saved = Checkpointer(str(tmp_path), 1).latest()
    assert 1 <= saved.iteration == len(metrics.read_text().splitlines()) < 100  # no iteration lost
    assert saved.model_path == str(tmp_path / f"model_{saved.iteration:07d}.ckpt")
    assert f"SIGTERM: stopped after iteration {saved.iteration} of 100, checkpoint saved; continue with --resume" \
        in stderr
    assert "Traceback" not in stderr and "[WARNING]" not in stderr
