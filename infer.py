#!/usr/bin/env python3
"""Run PointRend on images and write COCO-format detections (and optionally overlays and raw outputs).

    python infer.py --checkpoint model.ckpt --image a.jpg --image b.png --output dets.json [--visualize DIR]

Images are resized as at test time (shorter side 800, longer at most 1333; settings in the config) and
evaluated in PyNative mode. dets.json is a COCO results list (category_id as in the training categories,
COCO ids for COCO models; bbox XYWH in original image pixels; segmentation as RLE with str counts) that
pycocotools' loadRes reads. image_id is the number in the file name when it is one (COCO names such as
000000397133.jpg), else the image's position in the --image list.
"""
import argparse
import json
import logging
import os
import sys
import tempfile
import time

from maskrcnn_pointrend.checkpoints import CheckpointError
from maskrcnn_pointrend.cli import parse_args, set_context, setup_logging
from maskrcnn_pointrend.data.transforms import ImageReadError, read_image_bgr
from maskrcnn_pointrend.inference import Predictor, coco_results, load_model, save_raw
from maskrcnn_pointrend.visualize import save_results_overlay

logger = logging.getLogger("infer")


def image_id_for(path, position):
    stem = os.path.splitext(os.path.basename(path))[0]
    return int(stem) if stem.isdigit() else position


def write_json_atomically(path, data):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=folder, suffix=".tmp", delete=False) as f:
        json.dump(data, f)
    os.replace(f.name, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="converted or trained .ckpt")
    parser.add_argument("--image", action="append", required=True, help="image file (repeat for several)")
    parser.add_argument("--output", required=True, help="COCO results json to write")
    parser.add_argument("--visualize", metavar="DIR", help="write an overlay PNG per image here (detections "
                        "scoring at least test.visualize_score_thresh)")
    parser.add_argument("--save_raw", metavar="DIR", help="write raw network outputs (postprogress.py format)")
    args, cfg = parse_args(parser, argv)
    setup_logging()
    set_context(cfg)
    try:
        net, cfg, categories = load_model(cfg, args.checkpoint)
    except (CheckpointError, ValueError) as e:
        sys.exit(f"infer.py: error: {e}")
    predictor = Predictor(net, cfg)
    category_ids = [c[0] for c in categories]
    results = []
    for position, path in enumerate(args.image):
        try:
            image = read_image_bgr(path)
        except ImageReadError as e:
            sys.exit(f"infer.py: error: {e}")
        start = time.perf_counter()
        raw = predictor(image, image_id_for(path, position))
        detections = coco_results(raw, category_ids)
        logger.info("%s: image_id %d, %d detections, %.2f s", path, raw.image_id, len(detections),
                    time.perf_counter() - start)
        results += detections
        if args.save_raw:
            save_raw(raw, args.save_raw)
        if args.visualize:
            name = os.path.splitext(os.path.basename(path))[0] + ".png"
            save_results_overlay(os.path.join(args.visualize, name), image, detections, categories,
                                 cfg.test.visualize_score_thresh)
    write_json_atomically(args.output, results)
    logger.info("wrote %d detections for %d images to %s", len(results), len(args.image), args.output)


if __name__ == "__main__":
    main()
