#!/usr/bin/env python3
"""Trains PointRend (R50-FPN by default) on a COCO-format dataset with detectron2's recipe, on one device or
data-parallel (scripts/run_distribute_train_gpu.sh launches one process per device with --run_distribute True).

    python train.py --device_target GPU --coco_root /data/coco --mindrecord_dir /data/mindrecord/train2017
                    --pre_trained r50.ckpt --output_dir out [--resume] [--key=value ...]

Data: --mindrecord_dir, converted from <coco_root>/annotations/instances_<train_split>.json (or --ann_file)
and <coco_root>/<train_split>/ when it holds no complete conversion (rank 0 converts, the other ranks wait).
Weights: --pre_trained, a checkpoint from convert_checkpoint.py (or from this script): its input
conventions are applied; tensors it lacks start fresh, and so do its class-specific ones when its number of
classes differs from the dataset's (<output_dir>/pretrained_load.json lists what was loaded and what not).
Schedule: solver.* -- SGD with momentum, base_lr for solver.ims_per_batch images scaled to the real batch
(devices x solver.images_per_device), linear warmup, solver.steps and solver.max_iter (detectron2's 1x
schedule; configs/pointrend_rcnn_R_50_FPN_3x.yaml holds the 3x one).

Writes to --output_dir: train_rank<r>.log per rank; metrics.json (a JSON line per iteration: the losses,
total_loss, lr, time, data_time, eta_seconds); checkpoints every solver.checkpoint_period iterations, the
last solver.keep_checkpoints of them kept, and model_final.ckpt (see maskrcnn_pointrend/engine/checkpointer.py).
--resume continues from the checkpoint <output_dir>/last_checkpoint names, exactly where it stopped; without
one it is an error (a mistyped --output_dir must not start a new run). A loss that becomes NaN or Inf stops the
job (exit status 1) before its update, naming the iteration and the loss. SIGTERM (what schedulers send before
they kill a job) or SIGINT stops it after the current iteration, rank 0 saving a checkpoint there first (exit
status 128 + the signal's number). An --output_dir that cannot be written is an error before anything runs.
"""
import argparse
import logging
import sys

from maskrcnn_pointrend.cli import parse_args, setup_logging
from maskrcnn_pointrend.data.mindrecord_reader import IncompleteDatasetError
from maskrcnn_pointrend.data.transforms import ImageReadError
from maskrcnn_pointrend.engine.train_step import NonFiniteLossError
from maskrcnn_pointrend.engine.trainer import TrainingStopped, train
from maskrcnn_pointrend.stop_signals import exit_status

logger = logging.getLogger("train")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    _, cfg = parse_args(parser, argv)
    setup_logging()
    try:
        train(cfg)
    # ValueError covers the checkpoint, config, annotation, dataset and output folder errors, whose messages name
    # the problem
    except (NonFiniteLossError, ValueError, IncompleteDatasetError, ImageReadError) as e:
        logger.error("%s", e)
        sys.exit(1)
    except TrainingStopped as e:
        sys.exit(exit_status(e.received))


if __name__ == "__main__":
    main()
