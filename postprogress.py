#!/usr/bin/env python3
"""Offline post-processing: raw network outputs -> COCO results, evaluated as eval.py does.

    python postprogress.py --raw_dir DIR --ann_file F --output_dir O
    python postprogress.py --raw_dir DIR --coco_root /data/coco [--val_split val2017] --output_dir O

Reads the raw outputs of every image of the annotation file (--ann_file, else
<coco_root>/annotations/instances_<val_split>.json) from DIR, pastes the masks into the original images as
detectron2 does, and writes what eval.py writes: results_segm_bbox.json, eval.log, per_category_ap.csv/.txt,
metrics.json and timing.json (seconds reading the raw files, pasting and encoding, and in COCOeval per IoU
type). For the same raw outputs the results and AP are eval.py's.

Raw format: one numpy `.npz` file per image, named `<image_id>.npz`, as written by eval.py / infer.py
--save_raw or by any runtime running the model (e.g. the exported MindIR); its arrays are listed in
maskrcnn_pointrend/raw_detections.py. Boxes that become empty in the original image are dropped, as
detectron2 does. Files of images not in the annotation file are ignored and counted in the log; a missing
file, an unreadable one, one that breaks the format (a missing array, a wrong shape, a size that is not
positive, a NaN or Inf value), or one whose image_id or original_size disagrees with the annotation file is an
error naming it, and nothing is written. An --output_dir that cannot be written is an error before any file
is read.
"""
import argparse
import logging
import os
import sys
import time

from maskrcnn_pointrend.categories import class_categories
from maskrcnn_pointrend.cli import parse_args, setup_logging
from maskrcnn_pointrend.data.coco_json import AnnotationFileError
from maskrcnn_pointrend.evaluation.ground_truth import (EvaluationInputError, annotation_file, examples,
                                                        load_ground_truth, raw_to_results)
from maskrcnn_pointrend.evaluation.report import StageTimer, write_evaluation
from maskrcnn_pointrend.output_files import OutputLocationError, prepare_output_dir
from maskrcnn_pointrend.progress import progress_bar
from maskrcnn_pointrend.raw_detections import RAW_SUFFIX, RawFileError, load_raw, raw_path

logger = logging.getLogger("postprogress")


def raw_files(raw_dir, images, ann_file):
    """-> {image_id: path} of the raw file of every image of the annotation file, and the number of other
    raw files in raw_dir; raise naming the directory when files are missing."""
    try:
        names = [n for n in os.listdir(raw_dir) if n.endswith(RAW_SUFFIX)]
    except OSError as e:
        raise EvaluationInputError(f"cannot list raw outputs in {raw_dir}: {e.strerror}") from None
    present = set(names)
    paths = {im["id"]: raw_path(raw_dir, im["id"]) for im in images}
    missing = [image_id for image_id, path in paths.items() if os.path.basename(path) not in present]
    if missing:
        raise EvaluationInputError(f"{raw_dir} lacks the raw outputs of {len(missing)} of the {len(images)} images "
                                   f"of {ann_file}, e.g. image ids {examples(missing)}")
    return paths, len(present) - len(paths)


def postprocess(args, cfg):
    """Read the raw outputs of every image of the annotation file, paste them, write results, logs and timing."""
    ann_file = annotation_file(cfg)
    coco_gt = load_ground_truth(ann_file)
    images = coco_gt.dataset["images"]
    paths, others = raw_files(args.raw_dir, images, ann_file)
    prepare_output_dir(cfg.output_dir, "--output_dir")
    logger.info("%s: raw outputs of the %d images of %s; %d other raw files ignored", args.raw_dir, len(paths),
                ann_file, others)
    category_ids = [category_id for category_id, _ in class_categories(coco_gt.dataset["categories"])]
    timer = StageTimer()
    results = []
    start = time.perf_counter()
    with progress_bar(len(paths), "postprocess", "img") as bar:
        for image_id, path in paths.items():
            with timer("read_raw"):
                raw = load_raw(path)
            if raw.image_id != image_id:
                raise EvaluationInputError(f"{path} holds image_id {raw.image_id}, not the {image_id} its name says")
            with timer("paste_encode"):
                results += raw_to_results(raw, coco_gt, category_ids, path)
            bar.update()
    write_evaluation(coco_gt, results, cfg.output_dir, len(paths), time.perf_counter() - start, timer.seconds,
                     logger.info, {"raw_dir": args.raw_dir})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--raw_dir", required=True, help="folder of <image_id>.npz raw outputs")
    args, cfg = parse_args(parser, argv)
    setup_logging()
    try:
        postprocess(args, cfg)
    except (AnnotationFileError, EvaluationInputError, OutputLocationError, RawFileError) as e:
        sys.exit(f"postprogress.py: error: {e}")


if __name__ == "__main__":
    main()
