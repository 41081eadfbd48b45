#!/usr/bin/env python3
"""COCO evaluation of a checkpoint: box, mask and Boundary AP on every image of an annotation file.

    python eval.py --checkpoint_path model.ckpt --coco_root /data/coco [--ann_file F] [--mindrecord_dir M]
                   [--output_dir O] [--device_target CPU|GPU] [--visualize N] [--save_raw DIR]

Ground truth: --ann_file, else <coco_root>/annotations/instances_<val_split>.json. Images: the MindRecord
test pipeline of --mindrecord_dir (a split converted by convert_coco.py), else the files
<coco_root>/<val_split>/<file_name> (for a custom --ann_file too, as convert_coco.py reads them). Every
image of the annotation file is evaluated: before the model is loaded, an image it cannot find, cannot decode
or finds of another size than the file says is an error, and so is an annotation file without non-crowd
annotations, or an --output_dir that cannot be written. Images that share an id are left out with their
annotations (a warning counts them), as convert_coco.py leaves them out. Class index i is the annotation
file's i-th category by id; the checkpoint must predict as many classes, and the same category ids when it
names its categories (checkpoints from train.py do; others take the file's).

Runs in PyNative mode, one image at a time. Writes to --output_dir: results_segm_bbox.json (COCO results
that pycocotools' loadRes reads), eval.log (COCOeval's summaries for bbox, segm and boundary),
per_category_ap.csv/.txt, metrics.json (the 12 COCO statistics per IoU type), timing.json (images/s;
seconds reading and preprocessing, in the network, pasting and encoding masks, and in COCOeval per IoU
type), and with --visualize N overlays of the first N images in visualize/. --save_raw DIR writes each
image's raw outputs for postprogress.py.
"""
import argparse
import logging
import os
import sys
import time

from maskrcnn_pointrend.categories import CategoryError, GivenCategories, class_categories
from maskrcnn_pointrend.checkpoints import CheckpointError
from maskrcnn_pointrend.cli import parse_args, set_context, setup_logging
from maskrcnn_pointrend.config import ConfigError
from maskrcnn_pointrend.data.coco_json import AnnotationFileError
from maskrcnn_pointrend.data.mindrecord_reader import IncompleteDatasetError
from maskrcnn_pointrend.data.transforms import ImageReadError
from maskrcnn_pointrend.evaluation.image_sources import image_source
from maskrcnn_pointrend.evaluation.model_run import run_model, write_overlays
from maskrcnn_pointrend.evaluation.ground_truth import EvaluationInputError, annotation_file, load_ground_truth
from maskrcnn_pointrend.evaluation.report import write_evaluation
from maskrcnn_pointrend.model import load_model
from maskrcnn_pointrend.output_files import OutputLocationError, prepare_output_dir
from maskrcnn_pointrend.predictor import Predictor

logger = logging.getLogger("eval")

VISUALIZE_DIR = "visualize"


def evaluate(args, cfg):
    """Check the inputs, run the model on every image of the annotation file, write results, logs and timing."""
    if not cfg.checkpoint_path:
        raise EvaluationInputError("no checkpoint: set --checkpoint_path")
    ann_file = annotation_file(cfg)
    coco_gt = load_ground_truth(ann_file)
    images = coco_gt.dataset["images"]
    source = image_source(cfg, images, ann_file)
    source.check()
    prepare_output_dir(cfg.output_dir, "--output_dir")
    if args.save_raw:
        prepare_output_dir(args.save_raw, "--save_raw")

    set_context(cfg)
    start = time.perf_counter()
    net, categories = load_model(cfg, cfg.checkpoint_path,
                                 GivenCategories(ann_file, class_categories(coco_gt.dataset["categories"])))
    model_load_seconds = time.perf_counter() - start
    predictor = Predictor(net, cfg)
    shown = [image["id"] for image in images[:args.visualize]]  # in the annotation file's order
    run = run_model(predictor, source, coco_gt, [category_id for category_id, _ in categories], args.save_raw, shown)
    if sorted(run.evaluated) != sorted(coco_gt.imgs):
        raise EvaluationInputError(f"the images read cover {len(set(run.evaluated))} of the {len(images)} images of "
                                   f"{ann_file}")
    if args.save_raw:
        logger.info("wrote raw outputs of %d images to %s", len(run.evaluated), args.save_raw)
    if len(run.evaluated) > 1:
        logger.info("model loaded in %.2fs; network: %.2fs on the first image, %.2fs per image on the others",
                    model_load_seconds, run.first_network_seconds,
                    (run.timer.seconds["network"] - run.first_network_seconds) / (len(run.evaluated) - 1))
    if shown:
        folder = os.path.join(cfg.output_dir, VISUALIZE_DIR)
        write_overlays(folder, {i: run.originals[i] for i in shown}, run.results, coco_gt, categories,
                       cfg.test.visualize_score_thresh)
        logger.info("wrote overlays of %d images to %s", len(shown), folder)

    extra_timing = {"device_target": cfg.device_target, "image_source": "mindrecord" if cfg.mindrecord_dir else "files",
                    "model_load_s": model_load_seconds, "network_first_image_s": run.first_network_seconds,
                    **predictor.compile_report()}
    write_evaluation(coco_gt, run.results, cfg.output_dir, len(run.evaluated), run.loop_seconds, run.timer.seconds,
                     logger.info, extra_timing)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--visualize", type=int, default=0, metavar="N",
                        help="write overlays of the first N images to <output_dir>/visualize/")
    parser.add_argument("--save_raw", metavar="DIR", help="write raw network outputs (postprogress.py's format)")
    args, cfg = parse_args(parser, argv)
    if args.visualize < 0:
        parser.error(f"--visualize must be 0 or more, got {args.visualize}")
    setup_logging()
    try:
        evaluate(args, cfg)
    except (AnnotationFileError, EvaluationInputError, CheckpointError, CategoryError, ConfigError,
            IncompleteDatasetError, ImageReadError, OutputLocationError) as e:
        sys.exit(f"eval.py: error: {e}")


if __name__ == "__main__":
    main()
