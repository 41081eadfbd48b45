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
from maskrcnn_pointrend.data.mindrecord_reader import IncompleteDatasetError, read_image_index, read_record_images
from maskrcnn_pointrend.data.dataset import create_test_dataset
from maskrcnn_pointrend.data.image_check import inspect_images
from maskrcnn_pointrend.data.transforms import ImageReadError, read_image_bgr
from maskrcnn_pointrend.evaluation.runner import (EvaluationInputError, StageTimer, annotation_file, examples,
                                                  load_ground_truth, raw_to_results, write_evaluation)
from maskrcnn_pointrend.image_names import overlay_names
from maskrcnn_pointrend.model import load_model
from maskrcnn_pointrend.output_files import OutputLocationError, prepare_output_dir
from maskrcnn_pointrend.predictor import Predictor
from maskrcnn_pointrend.progress import progress_bar
from maskrcnn_pointrend.raw_detections import save_raw
from maskrcnn_pointrend.visualize import save_results_overlay

logger = logging.getLogger("eval")

VISUALIZE_DIR = "visualize"


def image_directory(cfg):
    """<coco_root>/<val_split>, where the annotation file's file_names are."""
    if not cfg.coco_root:
        raise EvaluationInputError("no image directory: set --coco_root (images are read from "
                                   "<coco_root>/<val_split>/), or --mindrecord_dir")
    return os.path.join(cfg.coco_root, cfg.val_split)


def check_image_files(image_dir, images, ann_file):
    """Raise naming the directory and images of the annotation file it lacks, or that are unreadable, of an
    unsupported pixel format or of another size than the file says (image_check), before any is evaluated."""
    checks = inspect_images([(os.path.join(image_dir, im["file_name"]), im["height"], im["width"]) for im in images],
                            os.cpu_count() or 1)
    missing = [im["file_name"] for im, check in zip(images, checks) if check.problem == "missing_file"]
    if missing:
        raise EvaluationInputError(f"{image_dir} lacks {len(missing)} of the {len(images)} images of {ann_file}, "
                                   f"e.g. {examples(missing)}")
    unusable = [f"{im['file_name']}: {check.detail}" for im, check in zip(images, checks) if check.problem]
    if unusable:
        raise EvaluationInputError(f"{image_dir}: {len(unusable)} of the {len(images)} images of {ann_file} cannot be "
                                   f"evaluated, e.g. {examples(unusable)}")


def check_records(mindrecord_dir, images, ann_file):
    """-> the converted split's image ids; raise naming the directory when it lacks images of the annotation file."""
    record_ids = [int(i) for i in read_image_index(mindrecord_dir)["image_id"]]
    known = set(record_ids)
    missing = [f"{im['id']} ({im['file_name']})" for im in images if im["id"] not in known]
    if missing:
        raise EvaluationInputError(f"{mindrecord_dir} lacks {len(missing)} of the {len(images)} images of "
                                   f"{ann_file}, e.g. {examples(missing)} (convert_coco.py lists the images it "
                                   "skipped in summary.json)")
    return record_ids


def file_inputs(image_dir, images, predictor):
    """-> per image (source, image_id, padded (3, Hp, Wp) uint8, (h, w), (H0, W0)), read from image files."""
    for image in images:
        path = os.path.join(image_dir, image["file_name"])
        bgr = read_image_bgr(path)
        padded, image_size = predictor.preprocess(bgr)
        yield path, image["id"], padded, image_size, bgr.shape[:2]


def record_inputs(mindrecord_dir, cfg, image_ids, predictor):
    """The same as file_inputs from the MindRecord test pipeline, for the records whose id is in `image_ids`,
    grouped by input shape as evaluate() orders image files."""
    index = read_image_index(mindrecord_dir)
    records = sorted((r for r, image_id in enumerate(index["image_id"]) if int(image_id) in image_ids),
                     key=lambda r: predictor.input_shape(index["height"][r], index["width"][r]))
    rows = create_test_dataset(mindrecord_dir, cfg, record_order=records).create_dict_iterator(
        output_numpy=True, num_epochs=1)
    for row in rows:
        image_id = int(row["image_id"])
        yield (f"record {image_id} of {mindrecord_dir}", image_id, row["image"], tuple(row["image_size"]),
               tuple(row["original_size"]))


def timed(iterable, timer, stage):
    """Yield from `iterable`, adding the time each item takes to produce to `timer`'s `stage`."""
    iterator = iter(iterable)
    while True:
        with timer(stage):
            item = next(iterator, None)
        if item is None:
            return
        yield item


def predict_all(predictor, inputs, coco_gt, category_ids, total, raw_dir):
    """Run the model on `inputs` (file_inputs / record_inputs) -> (COCO results, image ids in the order run,
    StageTimer, seconds of the whole loop, network seconds of the first image); raw outputs go to raw_dir."""
    timer = StageTimer()
    results, evaluated, first_network_seconds = [], [], None
    start = time.perf_counter()
    with progress_bar(total, "eval", "img") as bar:
        for source, image_id, padded, image_size, original_size in timed(inputs, timer, "read_preprocess"):
            with timer("network"):
                raw = predictor.predict_preprocessed(padded, image_size, original_size, image_id)
            if first_network_seconds is None:
                first_network_seconds = timer.seconds["network"]
            with timer("paste_encode"):
                results += raw_to_results(raw, coco_gt, category_ids, source)
            if raw_dir:
                with timer("save_raw"):
                    save_raw(raw, raw_dir)
            evaluated.append(image_id)
            bar.update()
    return results, evaluated, timer, time.perf_counter() - start, first_network_seconds


def write_overlays(folder, originals, results, coco_gt, categories, score_thresh):
    """One PNG per image of `originals` ({image_id: (H, W, 3) BGR}), named after its file (image_names), in
    `folder`."""
    ids = list(originals)
    names = overlay_names([coco_gt.imgs[image_id]["file_name"] for image_id in ids], ids)
    for image_id, name in zip(ids, names):
        save_results_overlay(os.path.join(folder, name), originals[image_id],
                             [r for r in results if r["image_id"] == image_id], categories, score_thresh)


def evaluate(args, cfg):
    """Check the inputs, run the model on every image of the annotation file, write results, logs and timing."""
    if not cfg.checkpoint_path:
        raise EvaluationInputError("no checkpoint: set --checkpoint_path")
    ann_file = annotation_file(cfg)
    coco_gt = load_ground_truth(ann_file)
    images = coco_gt.dataset["images"]
    if cfg.mindrecord_dir:
        record_ids = check_records(cfg.mindrecord_dir, images, ann_file)
        extra = len(set(record_ids) - set(coco_gt.imgs))
        logger.info("%s: %d records, %d of them images of %s; the other %d are not evaluated", cfg.mindrecord_dir,
                    len(record_ids), len(record_ids) - extra, ann_file, extra)
    else:
        image_dir = image_directory(cfg)
        check_image_files(image_dir, images, ann_file)
    prepare_output_dir(cfg.output_dir, "--output_dir")
    if args.save_raw:
        prepare_output_dir(args.save_raw, "--save_raw")

    set_context(cfg)
    start = time.perf_counter()
    net, cfg, categories = load_model(cfg, cfg.checkpoint_path,
                                      GivenCategories(ann_file, class_categories(coco_gt.dataset["categories"])))
    model_load_seconds = time.perf_counter() - start
    predictor = Predictor(net, cfg)

    if cfg.mindrecord_dir:
        inputs = record_inputs(cfg.mindrecord_dir, cfg, set(coco_gt.imgs), predictor)
    else:
        # Images of the same input shape in a row: each shape is compiled once (see Predictor).
        by_shape = sorted(images, key=lambda image: predictor.input_shape(image["height"], image["width"]))
        inputs = file_inputs(image_dir, by_shape, predictor)
    results, evaluated, timer, loop_seconds, first_network_seconds = predict_all(
        predictor, inputs, coco_gt, [category_id for category_id, _ in categories], len(images), args.save_raw)
    if sorted(evaluated) != sorted(coco_gt.imgs):
        raise EvaluationInputError(f"the images read cover {len(set(evaluated))} of the {len(images)} images of "
                                   f"{ann_file}")
    if args.save_raw:
        logger.info("wrote raw outputs of %d images to %s", len(evaluated), args.save_raw)
    if len(evaluated) > 1:
        logger.info("model loaded in %.2fs; network: %.2fs on the first image, %.2fs per image on the others",
                    model_load_seconds, first_network_seconds,
                    (timer.seconds["network"] - first_network_seconds) / (len(evaluated) - 1))

    if args.visualize:
        shown = [image["id"] for image in images[:args.visualize]]  # in the annotation file's order
        if cfg.mindrecord_dir:
            originals = read_record_images(cfg.mindrecord_dir, shown)
        else:
            originals = {i: read_image_bgr(os.path.join(image_dir, coco_gt.imgs[i]["file_name"])) for i in shown}
        folder = os.path.join(cfg.output_dir, VISUALIZE_DIR)
        write_overlays(folder, originals, results, coco_gt, categories, cfg.test.visualize_score_thresh)
        logger.info("wrote overlays of %d images to %s", len(shown), folder)

    extra_timing = {"device_target": cfg.device_target, "image_source": "mindrecord" if cfg.mindrecord_dir else "files",
                    "model_load_s": model_load_seconds, "network_first_image_s": first_network_seconds,
                    **predictor.compile_report()}
    write_evaluation(coco_gt, results, cfg.output_dir, len(evaluated), loop_seconds, timer.seconds, logger.info,
                     extra_timing)


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
