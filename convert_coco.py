"""Converts a COCO-format instance segmentation dataset to MindRecord, once, for train.py / eval.py.

    python convert_coco.py --coco_root /data/coco --split train2017 --output /data/mindrecord/train2017 --workers 8

Reads <coco_root>/annotations/instances_<split>.json (or --ann_file) and the images in <coco_root>/<split>.
Stores what COCO stores (image file bytes, boxes, classes, polygons / RLE), no bitmaps. Bad images and
annotations are skipped and counted by reason in a summary table, also written to <output>/summary.json.
"""
import argparse
import logging
import os
import sys

from maskrcnn_pointrend.data.coco_layout import annotation_path, image_dir
from maskrcnn_pointrend.data.conversion_summary import summary_table
from maskrcnn_pointrend.data.mindrecord_writer import OutputExistsError, convert_coco


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--coco_root", required=True, help="COCO root: annotations/ and one folder of images per split")
    parser.add_argument("--split", required=True, help="e.g. train2017: the images are in <coco_root>/<split>")
    parser.add_argument("--output", required=True, help="directory to create for the converted split")
    parser.add_argument("--ann_file", default="",
                        help="a COCO-format json to use instead of <coco_root>/annotations/instances_<split>.json")
    parser.add_argument("--shards", type=int, default=1, help="number of MindRecord files")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="processes checking the images")
    parser.add_argument("--overwrite", action="store_true", help="replace a complete earlier conversion")
    args = parser.parse_args(argv)
    if args.shards < 1 or args.workers < 1:
        parser.error("--shards and --workers must be at least 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    ann_file = args.ann_file or annotation_path(args.coco_root, args.split)
    images = image_dir(args.coco_root, args.split)
    try:
        summary = convert_coco(ann_file, images, args.output, args.shards, args.workers, args.overwrite)
    except OutputExistsError as e:
        logging.error("%s; pass --overwrite to replace it", e)
        return 1
    except ValueError as e:  # AnnotationFileError, OutputLocationError, no convertible image
        logging.error("%s", e)
        return 1
    print(summary_table(summary).to_string(index=False))
    logging.info("wrote %s (summary in %s)", args.output, os.path.join(args.output, "summary.json"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
