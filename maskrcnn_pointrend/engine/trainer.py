"""A training job: its data (converted when missing), its starting weights (resumed, pre-trained or fresh), the
loop of compiled training steps with metrics, periodic checkpoints and a clean stop on SIGTERM/SIGINT, and its
final checkpoint. train.py parses the arguments and runs `train`."""
import contextlib
import json
import logging
import os
import time

import mindspore as ms

from ..categories import category_pairs, class_categories
from ..checkpoints import config_overrides_from_metadata, read_checkpoint
from ..cli import set_context, setup_logging
from ..config import ConfigError
from ..data.coco_layout import annotation_path, image_dir
from ..data.dataset import create_train_dataset
from ..data.mindrecord_reader import is_complete, read_category_map
from ..data.mindrecord_writer import OutputExistsError, convert_coco
from ..model import LOSS_NAMES, build_pointrend
from maskrcnn.atomic_files import atomic_write
from ..output_files import prepare_output_dir
from ..stop_signals import StopSignals
from .checkpointer import LAST_CHECKPOINT, Checkpointer, restore_parameters
from .distributed import init_distributed, launcher_device_id, parameter_digest, rank0_prepares
from .metrics import TrainingMetrics
from .pretrained import load_pretrained
from .solver import build_lr_schedule, build_optimizer
from .train_step import TrainStep, loss_inputs, step_randomness

logger = logging.getLogger("train")

METRICS_FILE = "metrics.json"
LOAD_REPORT_FILE = "pretrained_load.json"


class TrainingSetupError(ValueError):
    """Inputs of a training job that do not fit together; the message names them."""


class TrainingStopped(Exception):
    """The job stopped early on SIGTERM or SIGINT, after rank 0 saved a checkpoint."""

    def __init__(self, received):
        super().__init__(received.name)
        self.received = received


def ensure_training_data(cfg, rank):
    """Convert the training split to cfg.mindrecord_dir unless it holds a complete conversion (rank 0 does,
    the other ranks wait for its completion marker)."""
    if not cfg.mindrecord_dir:
        raise ConfigError("set --mindrecord_dir: the converted training split (created from --coco_root if missing)")

    def convert():
        if not cfg.coco_root:
            raise ConfigError(f"{cfg.mindrecord_dir} holds no complete conversion; set --coco_root (and --ann_file "
                              "for another annotation file) to create it, or convert it with convert_coco.py")
        ann_file = cfg.ann_file or annotation_path(cfg.coco_root, cfg.train_split)
        images = image_dir(cfg.coco_root, cfg.train_split)
        logger.info("converting %s (images in %s) to %s", ann_file, images, cfg.mindrecord_dir)
        try:
            convert_coco(ann_file, images, cfg.mindrecord_dir, workers=os.cpu_count() or 1)
        except OutputExistsError as e:
            raise TrainingSetupError(f"{e}: remove it, or convert into it with convert_coco.py --overwrite "
                                     "(train.py converts only into a new or empty --mindrecord_dir)") from None

    rank0_prepares(rank, lambda: is_complete(cfg.mindrecord_dir), convert,
                   f"convert the dataset to {cfg.mindrecord_dir}")


def model_metadata(cfg, categories):
    """What our model checkpoints record besides the iteration: classes, input conventions, the config."""
    return {"source": "train.py", "categories": category_pairs(categories), "num_classes": len(categories),
            "input_format": cfg.input.format, "pixel_mean": cfg.input.pixel_mean, "pixel_std": cfg.input.pixel_std,
            "stride_in_1x1": cfg.model.backbone.stride_in_1x1, "config": cfg.to_dict()}


def check_resumable(saved, categories, stream):
    """A checkpoint resumes only a job over the same classes and the same data stream and LR."""
    if saved.model_metadata.get("categories") != category_pairs(categories):
        raise TrainingSetupError(f"{saved.model_path} was trained on other categories than the "
                                 f"{len(categories)} of the dataset")
    trained_with = {key: saved.solver_metadata.get(key) for key in stream}
    if trained_with != stream:
        raise TrainingSetupError(f"cannot resume from {saved.model_path}: it was trained with {trained_with}, this "
                                 f"job has {stream} (they decide the data and the LR); start a new run with "
                                 "--pre_trained instead")


def check_job_settings(cfg):
    """Settings the solver's LR schedule does not check (build_lr_schedule checks its own)."""
    if cfg.solver.images_per_device < 1:
        raise ConfigError(f"solver.images_per_device must be at least 1, got {cfg.solver.images_per_device}")
    if cfg.solver.mixed_precision and cfg.device_target != "GPU":
        logger.warning("solver.mixed_precision on %s: meant for testing there (float16 is slower than float32 on "
                       "the CPU); it speeds up training on GPU", cfg.device_target)


def starting_point(cfg, checkpointer):
    """-> (SavedCheckpoint to resume from, or None; (params, metadata) of --pre_trained, or None)."""
    saved = checkpointer.latest() if cfg.resume else None
    if saved:
        logger.info("resuming from %s at iteration %d%s", saved.model_path, saved.iteration,
                    f" (--pre_trained {cfg.pre_trained} is not used)" if cfg.pre_trained else "")
        return saved, None
    if cfg.resume:
        raise TrainingSetupError(f"--resume: {cfg.output_dir} holds no checkpoint to resume (no {LAST_CHECKPOINT} "
                                 "file): check --output_dir, or leave out --resume to start a new run")
    if os.path.exists(checkpointer.path(LAST_CHECKPOINT)):
        raise TrainingSetupError(f"{cfg.output_dir} holds the checkpoints of an earlier run: pass --resume to "
                                 "continue it, or choose another --output_dir")
    return None, read_checkpoint(cfg.pre_trained) if cfg.pre_trained else None


def write_load_report(path, checkpoint, report):
    with atomic_write(path) as f:
        json.dump({"checkpoint": checkpoint, "loaded": report.loaded, "fresh": report.fresh,
                   "class_specific_not_loaded": report.class_specific}, f, indent=1)


def initialise_weights(net, cfg, saved, pretrained, num_classes, rank):
    """Set `net`'s weights from the checkpoint resumed, else from --pre_trained (rank 0 writes the report)."""
    if saved:
        restore_parameters(net.parameters_dict(), saved.model, saved.model_path)
    elif pretrained:
        report = load_pretrained(net, pretrained[0], cfg.pre_trained, num_classes, logger)
        if rank == 0:
            path = os.path.join(cfg.output_dir, LOAD_REPORT_FILE)
            write_load_report(path, cfg.pre_trained, report)
            logger.info("%d tensors loaded from %s, %d start fresh: listed in %s", len(report.loaded),
                        cfg.pre_trained, len(report.fresh), path)
    else:
        logger.warning("no --pre_trained checkpoint: every tensor starts from its initialisation")


def run_iterations(step, net, dataset, cfg, schedule, start_iter, rank, checkpointer, checkpoint_metadata, stream):
    """Iterations start_iter .. schedule.max_iter - 1 over `dataset`, with metrics and (rank 0) periodic
    checkpoints. SIGTERM or SIGINT stops the loop after the current iteration, rank 0 saving a checkpoint there
    first (TrainingStopped)."""
    batch_size, max_iter = cfg.solver.images_per_device, schedule.max_iter
    metrics = TrainingMetrics(os.path.join(cfg.output_dir, METRICS_FILE) if rank == 0 else None, LOSS_NAMES,
                              start_iter, max_iter, cfg.solver.log_period, logger)
    iteration = start_iter
    with StopSignals() as stop, contextlib.closing(metrics):
        started = time.perf_counter()
        for batch in dataset.create_tuple_iterator(output_numpy=True, num_epochs=1):
            data_time = time.perf_counter() - started
            randomness = step_randomness(net, cfg.seed, iteration, rank * batch_size, batch_size, batch[0].shape[2:],
                                         cfg.input.max_instances)
            lr = schedule(iteration)
            losses, applied, nms_converged = step(iteration, loss_inputs(batch, randomness), lr)
            if not applied:
                logger.warning("iteration %d: the gradients overflowed in float16; update skipped, loss scale now %g",
                               iteration, float(step.loss_scaler.scale_value.asnumpy()))
            metrics.record(iteration, losses, lr, time.perf_counter() - started, data_time, nms_converged)
            iteration += 1
            periodic = iteration % cfg.solver.checkpoint_period == 0
            if rank == 0 and iteration < max_iter and (periodic or stop.received):
                logger.info("saved %s", checkpointer.save(iteration, net, step.state(), checkpoint_metadata, stream))
            if stop.received and iteration < max_iter:
                logger.warning("%s: stopped after iteration %d of %d%s; continue with --resume", stop.received.name,
                               iteration, max_iter, ", checkpoint saved" if rank == 0 else "")
                raise TrainingStopped(stop.received)
            started = time.perf_counter()
    if iteration != max_iter:
        raise RuntimeError(f"the dataset ended after iteration {iteration} of {max_iter}")


def train(cfg):
    """The training job `cfg` describes (see train.py), from start or resumed, to its last checkpoint."""
    check_job_settings(cfg)
    set_context(cfg, device_id=launcher_device_id(cfg.device_id) if cfg.run_distribute else None)
    rank, world_size = init_distributed(cfg.run_distribute)
    batch_size = cfg.solver.images_per_device
    stream = {"seed": cfg.seed, "global_batch": batch_size * world_size}
    schedule = build_lr_schedule(cfg.solver, stream["global_batch"])
    max_iter = schedule.max_iter
    prepare_output_dir(cfg.output_dir, "--output_dir")
    setup_logging(os.path.join(cfg.output_dir, f"train_rank{rank}.log"))
    logger.info("rank %d of %d, %d images per device, %d per iteration, %d iterations (LR steps at %s)", rank,
                world_size, batch_size, stream["global_batch"], max_iter, list(schedule.steps))
    checkpointer = Checkpointer(cfg.output_dir, cfg.solver.keep_checkpoints)
    saved, pretrained = starting_point(cfg, checkpointer)
    start_iter = saved.iteration if saved else 0

    ensure_training_data(cfg, rank)
    categories = class_categories(read_category_map(cfg.mindrecord_dir))
    if saved:
        check_resumable(saved, categories, stream)
    # the model as the checkpoint it starts from was built (input conventions), for the dataset's classes
    conventions = saved.model_metadata if saved else pretrained[1] if pretrained else {}
    model_cfg = cfg.merged({**config_overrides_from_metadata(conventions), "model.num_classes": len(categories)})
    ms.set_seed(cfg.seed)
    net = build_pointrend(model_cfg)
    initialise_weights(net, cfg, saved, pretrained, len(categories), rank)
    net.set_train(True)
    step = TrainStep(net, build_optimizer(net, cfg.solver), LOSS_NAMES, world_size, cfg.solver.mixed_precision)
    if saved:
        restore_parameters(step.state(), saved.solver, saved.solver_path)
    if start_iter >= max_iter:
        logger.info("the checkpoint is at iteration %d of %d: training is complete", start_iter, max_iter)
        return

    dataset = create_train_dataset(cfg.mindrecord_dir, cfg, batch_size, max_iter - start_iter, world_size, rank,
                                   cfg.seed, max(1, (os.cpu_count() or 1) // world_size), start_iter)
    checkpoint_metadata = model_metadata(model_cfg, categories)
    run_iterations(step, net, dataset, cfg, schedule, start_iter, rank, checkpointer, checkpoint_metadata, stream)
    if rank == 0:
        logger.info("saved %s", checkpointer.save(max_iter, net, step.state(), checkpoint_metadata, stream,
                                                  final=True))
    logger.info("rank %d: parameters sha256 %s after %d iterations", rank, parameter_digest(net), max_iter)
