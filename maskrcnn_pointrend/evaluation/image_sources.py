"""Where evaluation reads the images of an annotation file: the image files it names, or a MindRecord conversion
of them. Both are checked before the model loads, and both yield every image ready for the Predictor, in input
shape order (each shape's stages compile once, see predictor.Predictor)."""
import logging
import os
from typing import NamedTuple

import numpy as np

from ..data.coco_layout import image_dir
from ..data.dataset import create_test_dataset
from ..data.image_check import inspect_images
from ..data.mindrecord_reader import read_image_index
from ..data.transforms import read_image_bgr
from .ground_truth import EvaluationInputError, examples

logger = logging.getLogger(__name__)


class EvalImage(NamedTuple):
    source: str             # the file or record it came from, for messages
    image_id: int
    padded: np.ndarray      # (3, Hp, Wp) uint8, the network input
    image_size: tuple       # (h, w) after the test resize
    original_size: tuple    # (H0, W0)
    original: np.ndarray    # (H0, W0, 3) uint8 BGR, or None where it was not asked for


class ImageFiles:
    """The files <image_dir>/<file_name> of the annotation file's images (COCO dicts)."""

    def __init__(self, folder, images, ann_file):
        self.folder, self.images, self.ann_file = folder, images, ann_file

    def check(self):
        """Raise naming the folder and the images it lacks, or that are unreadable, of an unsupported pixel format
        or of another size than the annotation file says (data/image_check)."""
        images = self.images
        checks = inspect_images([(os.path.join(self.folder, im["file_name"]), im["height"], im["width"])
                                 for im in images], os.cpu_count() or 1)
        missing = [im["file_name"] for im, check in zip(images, checks) if check.problem == "missing_file"]
        if missing:
            raise EvaluationInputError(f"{self.folder} lacks {len(missing)} of the {len(images)} images of "
                                       f"{self.ann_file}, e.g. {examples(missing)}")
        unusable = [f"{im['file_name']}: {check.detail}" for im, check in zip(images, checks) if check.problem]
        if unusable:
            raise EvaluationInputError(f"{self.folder}: {len(unusable)} of the {len(images)} images of "
                                       f"{self.ann_file} cannot be evaluated, e.g. {examples(unusable)}")

    def read(self, predictor, keep_original):
        """EvalImage of every image, ordered by predictor.input_shape; `original` kept where keep_original(id)."""
        for image in sorted(self.images, key=lambda im: predictor.input_shape(im["height"], im["width"])):
            path = os.path.join(self.folder, image["file_name"])
            bgr = read_image_bgr(path)
            padded, image_size = predictor.preprocess(bgr)
            yield EvalImage(path, image["id"], padded, image_size, bgr.shape[:2],
                            bgr if keep_original(image["id"]) else None)


class ImageRecords:
    """The records of a converted split (convert_coco.py) that are images of the annotation file, decoded and
    preprocessed by the MindRecord test pipeline (cfg.input)."""

    def __init__(self, mindrecord_dir, images, ann_file, cfg):
        self.mindrecord_dir, self.images, self.ann_file, self.cfg = mindrecord_dir, images, ann_file, cfg

    def check(self):
        """Raise naming the conversion and the images of the annotation file it lacks."""
        known = {int(i) for i in read_image_index(self.mindrecord_dir)["image_id"]}
        missing = [f"{im['id']} ({im['file_name']})" for im in self.images if im["id"] not in known]
        if missing:
            raise EvaluationInputError(f"{self.mindrecord_dir} lacks {len(missing)} of the {len(self.images)} images "
                                       f"of {self.ann_file}, e.g. {examples(missing)} (convert_coco.py lists the "
                                       "images it skipped in summary.json)")
        others = len(known - {im["id"] for im in self.images})
        logger.info("%s: %d records, %d of them images of %s; the other %d are not evaluated", self.mindrecord_dir,
                    len(known), len(known) - others, self.ann_file, others)

    def read(self, predictor, keep_original):
        """EvalImage of every image, ordered by predictor.input_shape; `original` kept where keep_original(id)."""
        index = read_image_index(self.mindrecord_dir)
        wanted = {im["id"] for im in self.images}
        records = sorted((r for r, image_id in enumerate(index["image_id"]) if int(image_id) in wanted),
                         key=lambda r: predictor.input_shape(index["height"][r], index["width"][r]))
        with_original = any(keep_original(int(index["image_id"][r])) for r in records)
        rows = create_test_dataset(self.mindrecord_dir, self.cfg, record_order=records,
                                   with_original=with_original).create_dict_iterator(output_numpy=True, num_epochs=1)
        for row in rows:
            image_id = int(row["image_id"])
            yield EvalImage(f"record {image_id} of {self.mindrecord_dir}", image_id, row["image"],
                            tuple(row["image_size"]), tuple(row["original_size"]),
                            row["original"] if with_original and keep_original(image_id) else None)


def image_source(cfg, images, ann_file):
    """ImageRecords of cfg.mindrecord_dir when set, else ImageFiles of <coco_root>/<val_split>."""
    if cfg.mindrecord_dir:
        return ImageRecords(cfg.mindrecord_dir, images, ann_file, cfg)
    if not cfg.coco_root:
        raise EvaluationInputError("no images: set --coco_root (images are read from <coco_root>/<val_split>/), "
                                   "or --mindrecord_dir")
    return ImageFiles(image_dir(cfg.coco_root, cfg.val_split), images, ann_file)
