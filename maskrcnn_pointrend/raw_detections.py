"""Raw detections: one image's network outputs before pasting -- their file format, checked when read, and the
COCO results made from them. Numpy only (no MindSpore), so postprogress.py reads them without a network.

The format: one numpy `.npz` file per image, named `<image_id>.npz`, as written by eval.py / infer.py
--save_raw or by any runtime running the model (e.g. the exported MindIR), with the arrays
  image_id       ()         int     the image's id in the annotation file
  original_size  (2,)       int     (H0, W0) of the image as read (EXIF orientation applied), positive
  image_size     (2,)       int     (h, w) of the resized image the network saw, before padding, positive
  scale          (2,)       float   (sx, sy) = (w / W0, h / H0)
  boxes          (D, 4)     float32 XYXY in network-input pixels (the resized image)
  scores         (D,)       float32 by descending score
  classes        (D,)       int32   contiguous class index: i is the annotation file's i-th category by id
  mask_probs     (D, S, S)  float32 mask probabilities in the box frame (S = 224 for PointRend)
for the D valid detections (D may be 0); boxes, scores and mask_probs are finite. A file that breaks any of
this is a RawFileError naming it and the field.
"""
import os
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np
from pycocotools import mask as mask_util

from maskrcnn.postprocess import paste_mask, rescale_detections

from maskrcnn.atomic_files import atomic_write

RAW_FIELDS = ("image_id", "original_size", "image_size", "scale", "boxes", "scores", "classes", "mask_probs")
RAW_SUFFIX = ".npz"


class RawFileError(ValueError):
    """A raw detections file that cannot be read or breaks the format; the message names it."""


@dataclass
class RawDetections:
    """One image's detections as the network returns them (valid ones only, by descending score)."""
    image_id: int
    original_size: tuple  # (H0, W0) of the image as read
    image_size: tuple  # (h, w) of the resized image the network saw
    boxes: np.ndarray  # (D, 4) float32 XYXY in network-input pixels
    scores: np.ndarray  # (D,) float32
    classes: np.ndarray  # (D,) int32 contiguous class indices
    mask_probs: np.ndarray  # (D, S, S) float32 mask probabilities in the box frame

    @property
    def scale(self):
        """(sx, sy): network-input pixels per original pixel."""
        return self.image_size[1] / self.original_size[1], self.image_size[0] / self.original_size[0]


def raw_path(directory, image_id):
    """The raw file of image `image_id` in `directory`."""
    return os.path.join(directory, f"{image_id}{RAW_SUFFIX}")


def save_raw(raw, directory):
    """Write `<directory>/<image_id>.npz` (fields RAW_FIELDS; sizes as (h, w), scale as (sx, sy)) atomically."""
    path = raw_path(directory, raw.image_id)
    with atomic_write(path, "wb") as f:
        np.savez_compressed(f, image_id=raw.image_id, original_size=raw.original_size, image_size=raw.image_size,
                            scale=raw.scale, boxes=raw.boxes, scores=raw.scores, classes=raw.classes,
                            mask_probs=raw.mask_probs)
    return path


def _integer_array(data, name, shape):
    value = np.asarray(data[name])
    if value.dtype.kind not in "iu" or value.shape != shape:
        raise RawFileError(f"{name} must be {'an integer' if not shape else f'{shape[0]} integers'}, "
                           f"got {value.dtype} of shape {value.shape}")
    return value


def _size(data, name):
    size = _integer_array(data, name, (2,))
    if (size <= 0).any():
        raise RawFileError(f"{name} {tuple(int(v) for v in size)} must be two positive integers (h, w)")
    return tuple(int(v) for v in size)


def _finite_float_array(data, name, ndim):
    value = np.asarray(data[name])
    if value.dtype.kind not in "fiu" or value.ndim != ndim:
        raise RawFileError(f"{name} must be a {ndim}-D array of numbers, got {value.dtype} of shape {value.shape}")
    value = value.astype(np.float32)
    bad = int(np.count_nonzero(~np.isfinite(value)))
    if bad:
        raise RawFileError(f"{name} holds {bad} non-finite values (NaN or Inf)")
    return value


def _parse_raw(data):
    missing = [name for name in RAW_FIELDS if name not in data]
    if missing:
        raise RawFileError(f"raw detections lack {', '.join(missing)}")
    image_id = int(_integer_array(data, "image_id", ()))
    original_size, image_size = _size(data, "original_size"), _size(data, "image_size")
    boxes = _finite_float_array(data, "boxes", 2)
    scores = _finite_float_array(data, "scores", 1)
    classes = np.asarray(data["classes"])
    if classes.dtype.kind not in "iu" or classes.ndim != 1:
        raise RawFileError(f"classes must be a 1-D array of integers, got {classes.dtype} of shape {classes.shape}")
    mask_probs = _finite_float_array(data, "mask_probs", 3)
    count = len(scores)
    if not (boxes.shape == (count, 4) and len(classes) == count and len(mask_probs) == count
            and mask_probs.shape[1] == mask_probs.shape[2] and (count == 0 or mask_probs.shape[1] > 0)):
        raise RawFileError(f"boxes {boxes.shape}, scores {scores.shape}, classes {classes.shape} and mask_probs "
                           f"{mask_probs.shape} are not (D, 4), (D,), (D,) and (D, S, S) for one D")
    return RawDetections(image_id, original_size, image_size, boxes, scores, classes.astype(np.int32), mask_probs)


def load_raw(path):
    """RawDetections from a file written by save_raw (or any runtime writing the same fields), checked against
    the format; RawFileError naming the file otherwise."""
    try:
        with np.load(path) as data:
            return _parse_raw(data)
    except RawFileError as e:
        raise RawFileError(f"{path}: {e}") from None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise RawFileError(f"cannot read raw detections {path}: {e}") from None


def raw_from_outputs(outputs, image_id, original_size, image_size):
    """RawDetections of one image from the network's numpy outputs for it (boxes (D, 4), scores (D,), classes
    (D,), valid (D,), complete, mask probabilities (D, S, S)), as any runtime of the exported model returns them."""
    boxes, scores, classes, valid, _, mask_probs = outputs
    valid = np.asarray(valid, bool)
    return RawDetections(int(image_id), tuple(int(v) for v in original_size), tuple(int(v) for v in image_size),
                         np.asarray(boxes, np.float32)[valid], np.asarray(scores, np.float32)[valid],
                         np.asarray(classes)[valid].astype(np.int32), np.asarray(mask_probs, np.float32)[valid])


def coco_results(raw, category_ids, mask_threshold=0.5):
    """COCO result dicts for one image: boxes rescaled to the original image (XYWH), masks pasted there and
    RLE-encoded (str counts); detections whose box becomes empty are dropped, as detectron2 does."""
    boxes, nonempty = rescale_detections(raw.boxes, raw.image_size, raw.original_size)
    results = []
    for i in np.flatnonzero(nonempty):
        mask = paste_mask(raw.mask_probs[i], boxes[i], raw.original_size, mask_threshold)
        rle = mask_util.encode(np.asfortranarray(mask))
        rle["counts"] = rle["counts"].decode("ascii")
        x0, y0, x1, y1 = (float(v) for v in boxes[i])
        results.append({"image_id": raw.image_id, "category_id": int(category_ids[raw.classes[i]]),
                        "bbox": [x0, y0, x1 - x0, y1 - y0], "score": float(raw.scores[i]), "segmentation": rle})
    return results
