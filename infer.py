#!/usr/bin/env python3
"""Run PointRend on images and write COCO-format detections (and optionally overlays and raw outputs).

    python infer.py --checkpoint model.ckpt --image a.jpg --image b.png --output dets.json [--visualize DIR]
                    [--save_raw DIR] [--categories categories.json]

Images are resized as at test time (shorter side 800, longer at most 1333; settings in the config) and
evaluated in PyNative mode. dets.json is a COCO results list (category_id as in the training categories,
COCO ids for COCO models; bbox XYWH in original image pixels; segmentation as RLE with str counts) that
pycocotools' loadRes reads. image_id is the number the file name is when every --image's name is a number and
no two are equal (COCO names such as 000000397133.jpg), else the image's position in the --image list (0, 1,
...). Overlays are named <file name>.png, or <image_id>_<file name>.png when two --image share a name.

--categories: a json holding COCO's "categories" list (e.g. the annotation file the model was trained on), for
a checkpoint that names no categories and predicts other than COCO's 80 classes.

Every image, the categories and the output locations are checked before the model is loaded; a problem is a
one-line error naming the file.
"""
import argparse
import json
import logging
import os
import sys
import time

from maskrcnn.atomic_files import atomic_write
from maskrcnn_pointrend.categories import read_categories_file
from maskrcnn_pointrend.cli import parse_args, set_context, setup_logging
from maskrcnn_pointrend.data.image_check import inspect_image
from maskrcnn_pointrend.data.transforms import ImageReadError, read_image_bgr
from maskrcnn_pointrend.image_names import image_ids, overlay_names
from maskrcnn_pointrend.model import load_model
from maskrcnn_pointrend.output_files import check_output_file, prepare_output_dir
from maskrcnn_pointrend.predictor import Predictor
from maskrcnn_pointrend.raw_detections import coco_results, save_raw
from maskrcnn_pointrend.visualize import save_results_overlay

logger = logging.getLogger("infer")


def check_inputs(args):
    """Raise ValueError (ImageReadError, CategoryError, OutputLocationError, ...) naming the first input or
    output location that would stop the run -> the categories of --categories, or None."""
    for path in args.image:
        check = inspect_image(path)
        if check.problem:
            raise ImageReadError(f"cannot read image {path}: {check.detail}")
    check_output_file(args.output, "--output")
    for option, folder in (("--visualize", args.visualize), ("--save_raw", args.save_raw)):
        if folder:
            prepare_output_dir(folder, option)
    return read_categories_file(args.categories) if args.categories else None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="converted or trained .ckpt")
    parser.add_argument("--image", action="append", required=True, help="image file (repeat for several)")
    parser.add_argument("--output", required=True, help="COCO results json to write")
    parser.add_argument("--visualize", metavar="DIR", help="write an overlay PNG per image here (detections "
                        "scoring at least test.visualize_score_thresh)")
    parser.add_argument("--save_raw", metavar="DIR", help="write raw network outputs (postprogress.py format)")
    parser.add_argument("--categories", metavar="FILE", help="json with COCO's categories list, for a checkpoint "
                        "that names none")
    args, cfg = parse_args(parser, argv)
    setup_logging()
    ids = image_ids(args.image)
    names = overlay_names(args.image, ids)
    try:
        given_categories = check_inputs(args)
        set_context(cfg)
        net, categories = load_model(cfg, args.checkpoint, given_categories)
    except (OSError, ValueError) as e:  # ImageReadError, CheckpointError, CategoryError, OutputLocationError, ...
        sys.exit(f"infer.py: error: {e}")
    predictor = Predictor(net, cfg)
    category_ids = [c[0] for c in categories]
    results = []
    for path, image_id, name in zip(args.image, ids, names):
        image = read_image_bgr(path)
        start = time.perf_counter()
        raw = predictor(image, image_id)
        detections = coco_results(raw, category_ids)
        logger.info("%s: image_id %d, %d detections, %.2f s", path, raw.image_id, len(detections),
                    time.perf_counter() - start)
        results += detections
        if args.save_raw:
            save_raw(raw, args.save_raw)
        if args.visualize:
            save_results_overlay(os.path.join(args.visualize, name), image, detections, categories,
                                 cfg.test.visualize_score_thresh)
    with atomic_write(args.output) as f:
        json.dump(results, f)
    logger.info("wrote %d detections for %d images to %s", len(results), len(args.image), args.output)


if __name__ == "__main__":
    main()
