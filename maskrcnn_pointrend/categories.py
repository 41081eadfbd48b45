"""Which category each class index of a model stands for: [(category id, name)] in class order.

Class index i is the i-th category of the training data sorted by id. A checkpoint from train.py names its
categories (metadata "categories": [[id, name], ...]); one converted from detectron2 or the zoo names none
unless convert_checkpoint.py was given --categories. Such a checkpoint takes the categories the user gives
(an annotation file's, or a --categories file), or COCO's 80 when it predicts 80 classes.
"""
import logging
from typing import NamedTuple

from .data.coco_categories import COCO_CATEGORIES
from .data.coco_json import parse_categories, read_annotation_json

logger = logging.getLogger(__name__)


class CategoryError(ValueError):
    """Categories that do not fit a model or each other; the message names the files and both counts."""


class GivenCategories(NamedTuple):
    """Categories from the user, and where they come from (a file name, for messages)."""
    source: str
    categories: list  # [(category id, name)] sorted by id


def class_categories(category_dicts):
    """COCO category dicts -> [(category id, name)] sorted by id, i.e. in class order."""
    return [(c["id"], c["name"]) for c in sorted(category_dicts, key=lambda c: c["id"])]


def category_pairs(categories):
    """[(category id, name)] -> [[id, name], ...], as checkpoint metadata stores them."""
    return [[category_id, name] for category_id, name in categories]


def read_categories_file(path):
    """GivenCategories of a json file holding COCO's "categories" list, alone or as in an annotation file
    ({"categories": [...], ...}); AnnotationFileError or CategoryError naming the file when it holds none."""
    data = read_annotation_json(path, "categories file")
    listed = data.get("categories") if isinstance(data, dict) else data
    if not isinstance(listed, list):
        raise CategoryError(f"{path} holds no categories: expected a list of {{\"id\", \"name\"}} objects, or an "
                            "object with such a list under \"categories\" (as in a COCO annotation file)")
    return GivenCategories(str(path), class_categories(parse_categories(listed, path)))


def model_categories(metadata, num_classes, checkpoint_path, given=None):
    """[(category id, name)] of the `num_classes` classes of the checkpoint at `checkpoint_path` (its
    `metadata`), from `given` (GivenCategories) when there, else its own, else COCO's for an 80-class model.
    CategoryError when the counts differ, or when the checkpoint names categories with other ids than `given`."""
    named = [tuple(c) for c in metadata["categories"]] if "categories" in metadata else None
    if named is not None and len(named) != num_classes:
        raise CategoryError(f"{checkpoint_path} names {len(named)} categories for {num_classes} classes")
    if given is not None:
        if len(given.categories) != num_classes:
            raise CategoryError(f"checkpoint {checkpoint_path} predicts {num_classes} classes, {given.source} has "
                                f"{len(given.categories)} categories")
        if named is None:
            logger.info("%s names no categories: class i is %s's i-th category by id", checkpoint_path,
                        given.source)
            return list(given.categories)
        differing = [i for i, (ours, theirs) in enumerate(zip(named, given.categories)) if ours[0] != theirs[0]]
        if differing:
            i = differing[0]
            raise CategoryError(
                f"checkpoint {checkpoint_path} and {given.source} disagree on {len(differing)} category ids: class "
                f"{i} is {named[i]} in the checkpoint, {given.categories[i]} in {given.source}")
        return list(given.categories)
    if named is not None:
        return named
    if num_classes == len(COCO_CATEGORIES):
        return list(COCO_CATEGORIES)
    raise CategoryError(f"checkpoint {checkpoint_path} predicts {num_classes} classes and names no categories: give "
                        f"its {num_classes} categories (a json with COCO's \"categories\" list, e.g. the annotation "
                        "file it was trained on) with --categories, or convert it with --categories")
