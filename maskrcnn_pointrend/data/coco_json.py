"""Reads a COCO instances json into per-image instance lists; bad annotations are skipped and counted.

Skipped annotations, by reason (an annotation is counted under the first reason that applies):
- `unknown_image`: its image_id names no image of the file;
- `duplicate_annotation_id`: an earlier annotation has the same id (the first one is kept);
- `unknown_category`: its category_id is not among `categories`;
- `zero_area_box`: its bbox has no area inside the image (width or height <= 0 once clipped to the
  image, or not finite);
- `polygon_lt_3_points`: no polygon part with at least 3 points is left. Parts with fewer points (or an
  odd number of coordinates) are dropped from a multi-part polygon and counted as dropped parts; the
  annotation is skipped only when none is left (what detectron2 does);
- `rle_size_mismatch`: an RLE whose `size` is not the image's (height, width);
- `on_skipped_image`: its image is skipped (here: its id is a duplicate; the converter skips more).
Skipped images: `duplicate_image_id`: every image whose id another image also has (which of them an
annotation with that id belongs to cannot be told, so all of them and all their annotations are left out).
A file that is not JSON, or an entry without a required key or with a value of the wrong type, raises
AnnotationFileError naming the file and the key. `iscrowd` may be absent (0, as in detectron2).
"""
import json
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np
import pycocotools.mask as mask_util

ANNOTATION_SKIP_REASONS = ("unknown_image", "duplicate_annotation_id", "unknown_category", "zero_area_box",
                           "polygon_lt_3_points", "rle_size_mismatch", "on_skipped_image")
IMAGE_SKIP_REASONS = ("duplicate_image_id",)
MAX_EXAMPLES = 20  # ids / file names kept per skip reason for the summary


class AnnotationFileError(ValueError):
    pass


@dataclass
class Instance:
    """One kept annotation; exactly one of `polygons` and `rle` is set."""
    ann_id: int
    box: tuple            # (x0, y0, x1, y1) = (x, y, x + w, y + h) of the json bbox in float32, not clipped
    category: int         # contiguous class index (categories sorted by id)
    iscrowd: int
    polygons: list = None  # list of (2P,) float64 [x0, y0, x1, y1, ...] with P >= 3
    rle: bytes = None      # compressed RLE counts of an (height, width) mask


@dataclass
class ImageEntry:
    image_id: int
    file_name: str
    height: int
    width: int
    instances: list = field(default_factory=list)


@dataclass
class Skips:
    """Counts per reason, with the first few ids (annotations) or file names (images) for each."""
    counts: Counter = field(default_factory=Counter)
    examples: dict = field(default_factory=lambda: defaultdict(list))

    def add(self, reason, example, count=1):
        self.counts[reason] += count
        if len(self.examples[reason]) < MAX_EXAMPLES:
            self.examples[reason].append(example)


@dataclass
class CocoAnnotations:
    path: str
    categories: list       # COCO category dicts sorted by id: list index = contiguous class index
    images: list           # ImageEntry, in file order
    num_annotations: int   # annotations in the file
    image_skips: Skips
    annotation_skips: Skips
    dropped_polygon_parts: int  # parts with < 3 points dropped from annotations that were kept


def read_annotation_json(path, what="annotation file"):
    """The JSON object in `path` (an annotation file, or `what`), or AnnotationFileError naming the file when it
    cannot be read or parsed."""
    try:
        with open(path) as f:
            return json.load(f)
    except OSError as e:
        raise AnnotationFileError(f"cannot read {what} {path}: {e.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise AnnotationFileError(f"{path} is not valid JSON: {e}") from None


def load_coco_annotations(path):
    """Reads and checks `path`; -> CocoAnnotations."""
    return parse_coco(read_annotation_json(path), path)


def parse_coco(data, path):
    """A loaded COCO instances dict -> CocoAnnotations (`path` names the file in errors)."""
    if not isinstance(data, dict):
        raise AnnotationFileError(f"{path}: the top level must be an object with images, annotations, categories")
    categories = parse_categories(_field(data, "categories", list, "the top level", path), path)
    images, image_skips, duplicate_ids = _parse_images(_field(data, "images", list, "the top level", path), path)
    annotations = _field(data, "annotations", list, "the top level", path)
    category_index = {c["id"]: i for i, c in enumerate(categories)}
    image_by_id = {im.image_id: im for im in images}
    skips = Skips()
    seen_ids = set()
    dropped_parts = 0
    for i, ann in enumerate(annotations):
        where = f"annotations[{i}]"
        ann_id = _field(ann, "id", int, where, path)
        image_id = _field(ann, "image_id", int, where, path)
        category_id = _field(ann, "category_id", int, where, path)
        box = _parse_bbox(_field(ann, "bbox", list, where, path), where, path)
        segmentation = _field(ann, "segmentation", (list, dict), where, path)
        iscrowd = ann.get("iscrowd", 0)
        if iscrowd not in (0, 1) or isinstance(iscrowd, bool):
            raise AnnotationFileError(f"{path}: {where}.iscrowd must be 0 or 1, got {iscrowd!r}")
        image = image_by_id.get(image_id)
        duplicate = ann_id in seen_ids
        seen_ids.add(ann_id)
        if image_id in duplicate_ids:
            skips.add("on_skipped_image", ann_id)
            continue
        if image is None:
            skips.add("unknown_image", ann_id)
            continue
        if duplicate:
            skips.add("duplicate_annotation_id", ann_id)
            continue
        if category_id not in category_index:
            skips.add("unknown_category", ann_id)
            continue
        if not _has_area_inside(box, image.height, image.width):
            skips.add("zero_area_box", ann_id)
            continue
        instance = Instance(ann_id, box, category_index[category_id], iscrowd)
        if isinstance(segmentation, list):
            instance.polygons = _parse_polygons(segmentation, f"{where}.segmentation", path)
            if not instance.polygons:
                skips.add("polygon_lt_3_points", ann_id)
                continue
            dropped_parts += len(segmentation) - len(instance.polygons)
        else:
            instance.rle = _parse_rle(segmentation, image, f"{where}.segmentation", path)
            if instance.rle is None:
                skips.add("rle_size_mismatch", ann_id)
                continue
        image.instances.append(instance)
    return CocoAnnotations(str(path), categories, images, len(annotations), image_skips, skips, dropped_parts)


def _field(entry, key, kind, where, path):
    if not isinstance(entry, dict):
        raise AnnotationFileError(f"{path}: {where} must be an object, got {type(entry).__name__}")
    if key not in entry:
        raise AnnotationFileError(f"{path}: {where} has no key {key!r}")
    value = entry[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise AnnotationFileError(f"{path}: {where}.{key} must be {names}, got {str(value)[:60]!r}")
    return value


def parse_categories(categories, path):
    """A COCO "categories" list -> its category dicts sorted by id, each checked for an int id (unique) and a
    str name; AnnotationFileError naming `path` otherwise."""
    ids = set()
    for i, category in enumerate(categories):
        category_id = _field(category, "id", int, f"categories[{i}]", path)
        _field(category, "name", str, f"categories[{i}]", path)
        if category_id in ids:
            raise AnnotationFileError(f"{path}: categories[{i}].id {category_id} is used twice")
        ids.add(category_id)
    if not categories:
        raise AnnotationFileError(f"{path}: categories is empty")
    return sorted(categories, key=lambda c: c["id"])


def _parse_images(images, path):
    """-> (ImageEntry of each image whose id is unique, Skips of the others, their ids)."""
    entries = []
    for i, image in enumerate(images):
        where = f"images[{i}]"
        image_id = _field(image, "id", int, where, path)
        file_name = _field(image, "file_name", str, where, path)
        height = _field(image, "height", int, where, path)
        width = _field(image, "width", int, where, path)
        if height <= 0 or width <= 0:
            raise AnnotationFileError(f"{path}: {where} has size {height}x{width}")
        entries.append(ImageEntry(image_id, file_name, height, width))
    counts = Counter(entry.image_id for entry in entries)
    duplicate_ids = {image_id for image_id, count in counts.items() if count > 1}
    skips = Skips()
    for entry in entries:
        if entry.image_id in duplicate_ids:
            skips.add("duplicate_image_id", entry.file_name)
    return [e for e in entries if e.image_id not in duplicate_ids], skips, duplicate_ids


def _parse_bbox(bbox, where, path):
    if len(bbox) != 4 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox):
        raise AnnotationFileError(f"{path}: {where}.bbox must be 4 numbers [x, y, w, h], got {str(bbox)[:60]!r}")
    with np.errstate(over="ignore"):  # an overflowing box is skipped as not finite
        # in float32, as detectron2's BoxMode.convert computes XYWH -> XYXY
        x, y, w, h = np.asarray(bbox, np.float32)
        return (float(x), float(y), float(x + w), float(y + h))


def _has_area_inside(box, height, width):
    if not all(math.isfinite(v) for v in box):
        return False
    x0, y0, x1, y1 = box
    return min(x1, width) > max(x0, 0) and min(y1, height) > max(y0, 0)


def _parse_polygons(parts, where, path):
    """-> the parts with >= 3 points, as float64 arrays (float32 would change pycocotools' rasterization)."""
    kept = []
    for j, part in enumerate(parts):
        if not isinstance(part, list):
            raise AnnotationFileError(f"{path}: {where}[{j}] must be a list of coordinates")
        try:
            coords = np.asarray(part, dtype=np.float64)
        except (TypeError, ValueError):
            raise AnnotationFileError(f"{path}: {where}[{j}] holds a value that is not a number") from None
        if coords.ndim == 1 and len(coords) >= 6 and len(coords) % 2 == 0:
            kept.append(coords)
    return kept


def _parse_rle(rle, image, where, path):
    """-> compressed RLE counts, or None when the RLE's size is not the image's; list counts are compressed."""
    counts = _field(rle, "counts", (list, str), where, path)
    size = _field(rle, "size", list, where, path)
    if size != [image.height, image.width]:
        return None
    if isinstance(counts, str):
        return counts.encode("ascii")
    return mask_util.frPyObjects(rle, image.height, image.width)["counts"]
