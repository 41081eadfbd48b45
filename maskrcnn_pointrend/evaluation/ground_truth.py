"""The ground truth of an evaluation (eval.py, postprogress.py): the annotation file, checked for what COCOeval
needs, and raw detections -> COCO results checked against it.

Class index i of a model is the i-th category of the annotation file sorted by id (categories.class_categories).
"""
import contextlib
import io
import logging

from pycocotools.coco import COCO

from ..data.coco_json import AnnotationFileError, parse_coco, read_annotation_json
from ..data.coco_layout import annotation_path
from ..raw_detections import coco_results

logger = logging.getLogger(__name__)

MAX_EXAMPLES = 5  # ids or file names an error message lists


class EvaluationInputError(ValueError):
    """Inputs that do not fit together (images, raw outputs, categories); the message names them."""


def examples(items):
    """The first MAX_EXAMPLES items as 'a, b, c, ...' for an error message."""
    items = list(items)
    shown = ", ".join(str(i) for i in items[:MAX_EXAMPLES])
    return shown + (", ..." if len(items) > MAX_EXAMPLES else "")


def annotation_file(cfg):
    """cfg.ann_file, else the annotation file of cfg.val_split under cfg.coco_root (data/coco_layout)."""
    if cfg.ann_file:
        return cfg.ann_file
    if not cfg.coco_root:
        raise EvaluationInputError("no annotation file: set --ann_file, or --coco_root (with --val_split)")
    return annotation_path(cfg.coco_root, cfg.val_split)


def load_ground_truth(path):
    """A COCO instances json -> pycocotools COCO, checked for what COCOeval reads (AnnotationFileError naming
    the file otherwise). A missing `iscrowd` counts as 0, as in data.coco_json. Images whose id another image
    also has are left out with their annotations, as data.coco_json leaves them out of training (a warning
    counts them); a file left without non-crowd annotations, whose every AP would be -1, is an error."""
    data = read_annotation_json(path)
    parsed = parse_coco(data, path)
    for i, ann in enumerate(data["annotations"]):
        area = ann.get("area")
        if not isinstance(area, (int, float)) or isinstance(area, bool):
            raise AnnotationFileError(f"{path}: annotations[{i}] needs a numeric 'area' (COCOeval's size ranges "
                                      f"use it), got {area!r}")
        ann.setdefault("iscrowd", 0)
    duplicates = parsed.image_skips.counts["duplicate_image_id"]
    if duplicates:
        kept = {image.image_id for image in parsed.images}
        shared = {image["id"] for image in data["images"]} - kept
        data["images"] = [image for image in data["images"] if image["id"] in kept]
        data["annotations"] = [ann for ann in data["annotations"] if ann["image_id"] not in shared]
        logger.warning("%s: %d images share their id with another image (e.g. %s); they and the %d annotations of "
                       "their ids are left out of the evaluation", path, duplicates,
                       examples(parsed.image_skips.examples["duplicate_image_id"]),
                       parsed.annotation_skips.counts["on_skipped_image"])
    if not parsed.images:
        raise AnnotationFileError(f"{path} has no images to evaluate")
    if all(ann["iscrowd"] for ann in data["annotations"]):
        raise AnnotationFileError(f"{path} has no non-crowd annotations on its {len(parsed.images)} images: there is "
                                  "nothing to score (every AP would be -1); infer.py runs a model without ground truth")
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def raw_to_results(raw, coco_gt, category_ids, source):
    """RawDetections of one image -> its COCO result dicts, after checking the raw outputs fit the annotation
    file (EvaluationInputError naming `source`, the file or record they came from, otherwise)."""
    image = coco_gt.imgs.get(raw.image_id)
    if image is None:
        raise EvaluationInputError(f"{source}: image_id {raw.image_id} is not an image of the annotation file")
    if tuple(raw.original_size) != (image["height"], image["width"]):
        raise EvaluationInputError(f"{source}: image {raw.image_id} is {raw.original_size[0]}x{raw.original_size[1]}"
                                   f" (HxW), the annotation file says {image['height']}x{image['width']}")
    if len(raw.classes) and (raw.classes.min() < 0 or raw.classes.max() >= len(category_ids)):
        raise EvaluationInputError(f"{source}: class indices {raw.classes.min()}..{raw.classes.max()} fall outside "
                                   f"the annotation file's {len(category_ids)} categories")
    return coco_results(raw, category_ids)
